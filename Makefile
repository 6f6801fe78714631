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
# The one scenario `make scenario` runs: no default, it must be named.
SCENARIO ?=
STAGE := scripts/stage.sh

.PHONY: help venv docker images lint changelog changelog-release sanity unit floor integration molecule scenario \
	test lab lab-installed lab-down build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# The development toolchain (requirements-dev.txt, which includes the collection's own
# requirements.txt); users need neither file (README: Install).
$(VENV)/.stamp: requirements-dev.txt requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp ## Create the pinned development virtualenv

docker: ## Make sure a Docker engine answers (installs docker.io, starts dockerd)
	@scripts/ensure-docker.sh

images: docker ## Build the local test images (no registry)
	@images/build-all.sh

lint: venv ## yamllint, ansible-lint (production profile), changelog fragments
	@$(STAGE) yamllint yamllint --strict .
	@$(STAGE) ansible-lint ansible-lint --profile production
	@$(STAGE) changelog $(MAKE) --no-print-directory changelog

changelog: venv ## Lint changelogs/ and check CHANGELOG.md is generated from it
	antsibull-changelog lint
	antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	@out=$$(mktemp); trap 'rm -f "$$out"' EXIT; antsibull-changelog generate --output "$$out" && \
	  diff -u "$$out" CHANGELOG.md || { echo "CHANGELOG.md is not generated from changelogs/: run antsibull-changelog generate"; exit 1; }

changelog-release: venv ## Fold changelogs/fragments into the release galaxy.yml names, regenerate CHANGELOG.md
	antsibull-changelog release --version "$$(sed -n 's/^version: *//p' galaxy.yml)"

sanity: venv ## ansible-test sanity on a copy of the collection
	@$(STAGE) sanity scripts/sanity.sh

unit: venv ## Unit tests (no Docker, no GPU)
	@$(STAGE) unit pytest -q tests/unit tests/preflight

floor: venv ## Controller-side tests on the oldest ansible-core meta/runtime.yml supports
	@$(STAGE) floor scripts/floor.sh

integration: venv ## The built tarball installed and run by FQCN; the EE build context
	@$(STAGE) integration pytest -q tests/integration

molecule: venv images ## Every Molecule scenario (SCENARIOS="a b" for some)
	@for s in $(SCENARIOS); do $(STAGE) "molecule $$s" molecule test -s "$$s" || exit 1; done

scenario: venv ## One Molecule scenario: make scenario SCENARIO=name
	@[[ -n "$(SCENARIO)" && -f molecule/$(SCENARIO)/molecule.yml ]] || \
	  { echo "make scenario SCENARIO=<name>, one of: $(SCENARIOS)" >&2; exit 2; }
	@$(MAKE) --no-print-directory images
	@$(STAGE) "molecule $(SCENARIO)" molecule test -s "$(SCENARIO)"

test: venv images ## Lint, sanity, unit, floor and integration tests, Molecule scenarios
	@$(STAGE) test $(MAKE) --no-print-directory lint sanity unit floor integration molecule

lab: venv images ## Run site.yml against the local lab host
	@images/export.sh multillm-vllm-cpu:latest .cache/images
	@$(STAGE) "lab host" ansible-playbook playbooks/lab_host.yml
	@$(STAGE) "site.yml" ansible-playbook -i inventories/lab site.yml
	@scripts/lab-usage.sh

lab-installed: venv images ## The lab from the built tarball: installed into an empty path, run by FQCN from outside the clone
	@scripts/lab-installed.sh

lab-down: venv ## Remove everything `make lab` created
	@ansible-playbook playbooks/lab_host.yml -e multillm_lab_state=absent

build: venv ## Build the collection tarball
	ansible-galaxy collection build --force --output-path build .

clean: ## Remove the virtualenvs and build output
	rm -rf $(VENV) .cache/floor-venv build tests/output
