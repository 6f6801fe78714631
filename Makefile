# llmops.multillm: `make lab` and `make test` bootstrap everything they need.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export PY_COLORS ?= 0
export ANSIBLE_FORCE_COLOR ?= 0

# Molecule scenarios run by `make test`, in this order (fast ones first).
SCENARIOS ?= $(shell scripts/scenarios.sh)
SCENARIO ?= multillm
STAGE := scripts/stage.sh

.PHONY: help venv docker images lint sanity unit molecule test lab lab-down build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.stamp: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.stamp ## Create the pinned virtualenv

docker: ## Make sure a Docker engine answers (installs docker.io, starts dockerd)
	@scripts/ensure-docker.sh

images: docker ## Build the local test images (no registry)
	@images/build-all.sh

lint: venv ## yamllint and ansible-lint (production profile)
	@$(STAGE) yamllint yamllint --strict .
	@$(STAGE) ansible-lint ansible-lint --profile production

sanity: venv ## ansible-test sanity on a copy of the collection
	@$(STAGE) sanity scripts/sanity.sh

unit: venv ## Unit tests (no Docker, no GPU)
	@$(STAGE) unit pytest -q tests/unit tests/preflight

molecule: venv images ## Every Molecule scenario (SCENARIOS="a b" for some)
	@for s in $(SCENARIOS); do $(STAGE) "molecule $$s" molecule test -s "$$s" || exit 1; done

scenario: venv images ## One Molecule scenario: make scenario SCENARIO=name
	@$(STAGE) "molecule $(SCENARIO)" molecule test -s "$(SCENARIO)"

test: venv images ## Lint, sanity, unit tests and Molecule scenarios
	@$(STAGE) test $(MAKE) --no-print-directory lint sanity unit molecule

lab: venv images ## Run site.yml against the local lab host
	@images/export.sh multillm-standin:latest .cache/images
	@$(STAGE) "lab host" ansible-playbook playbooks/lab_host.yml
	@$(STAGE) "site.yml" ansible-playbook -i inventories/lab site.yml
	@scripts/lab-usage.sh

lab-down: venv ## Remove everything `make lab` created
	@ansible-playbook playbooks/lab_host.yml -e multillm_lab_state=absent

build: venv ## Build the collection tarball
	ansible-galaxy collection build --force --output-path build .

clean: ## Remove the virtualenv and build output
	rm -rf $(VENV) build tests/output
