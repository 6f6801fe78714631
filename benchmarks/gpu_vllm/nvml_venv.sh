#!/usr/bin/env bash
# Issue 15 item 1: vram_check under the NVML venv the nvidia_driver role creates, on a GPU host,
# run as Ansible runs a module. From the repository root, on the GPU machine (or here with
# dryrun.sh's fake NVML: NVML_DRY=1).
#
#   nvml_venv.sh setup   ansible-core (carried wheel, no dependencies beyond the machine's jinja2,
#                        PyYAML, packaging) for the machine's python3 as the controller, through a
#                        .pth file (no PYTHONPATH, which would reach the module's interpreter too);
#                        then nvml_venv.yml: the role's tasks/nvml.yml makes the venv
#   nvml_venv.sh check   while a model rests (bench.py --at-rest): ad-hoc `ansible localhost` with
#                        ansible_python_interpreter = the venv's python: which interpreter and
#                        pynvml the module side gets, vram_check with the harness's own resting
#                        figure per GPU and each container on its GPUs (must pass), and the last
#                        GPU at half its figure plus the first container at 4 GiB (must fail,
#                        naming the GPU and the container); exit 1 unless both do as they must
#
# Environment: GV (default /root/gv), NVML_WHEELS (default .whl/nvml), ACTL (ansible-core's folder,
# default /tmp/actl), GV_CONTAINERS / GV_REST_USED_MIB / GV_REST_GPU_MIB (bench.py --at-rest).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
GV=${GV:-/root/gv}
ACTL=${ACTL:-/tmp/actl}
PY=${CTL_PY:-python3}
VENV_PY=${VENV_PY:-/opt/multillm/nvml-venv/bin/python}
export LC_ALL=C.UTF-8 ANSIBLE_CONFIG=$root/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$root/collections
export ANSIBLE_NOCOLOR=1 ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_LOCALHOST_WARNING=0
unset PYTHONPATH LD_PRELOAD

adhoc() {
  "$ACTL/bin/ansible" localhost -i localhost, -c local -e "ansible_python_interpreter=$VENV_PY" "$@"
}

case ${1:-} in
  setup)
    wheel=${ANSIBLE_WHEEL:-$(ls "$GV"/parts/small/ansible_core-*.whl 2>/dev/null | head -1)}
    [ -f "$wheel" ] || { echo "no ansible-core wheel (ANSIBLE_WHEEL or $GV/parts/small)"; exit 1; }
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$ACTL" "$wheel" || exit 1
    site=$($PY -c 'import site; print(site.getsitepackages()[0])')
    echo "$ACTL" >"$site/zz-gv-ansible.pth"
    echo "controller: $($PY -c 'import sys, ansible.release as r; print(sys.executable, "ansible-core", r.__version__)')"
    echo "system python: $(ls -l /usr/bin/python3 2>&1); $(/usr/bin/python3 --version 2>&1)"
    echo "python3-venv: $(dpkg-query -W -f='${Status} ${Version}' python3-venv 2>&1)"
    wheels=$(cd "${NVML_WHEELS:-$root/.whl/nvml}" && pwd) || exit 1
    "$ACTL/bin/ansible-playbook" -i localhost, "$root/benchmarks/gpu_vllm/nvml_venv.yml" -e "gv_nvml_wheels=$wheels" \
      -e "ansible_python_interpreter=$($PY -c 'import sys; print(sys.executable)')" ${NVML_PLAY_ARGS:-}
    rc=$?
    echo "role's nvml tasks rc=$rc; fact: $(cat /etc/ansible/facts.d/multillm_nvml.fact 2>&1 | tr -d '\n')"
    ls -l "$VENV_PY" && "$VENV_PY" -m pip list --disable-pip-version-check 2>&1 | tail -n +3
    exit $rc
    ;;
  check)
    echo "containers (model=short id@GPUs): $GV_CONTAINERS; harness's resting reading $GV_REST_USED_MIB MiB, per GPU $GV_REST_GPU_MIB"
    echo "== the module side's interpreter"
    adhoc -m ansible.builtin.setup -a 'filter=ansible_python'
    echo "== its pynvml, from that interpreter as the module's environment starts it"
    adhoc -m ansible.builtin.command -a "$VENV_PY -c 'import sys, pynvml, importlib.metadata as m; print(pynvml.__file__, m.version(\"nvidia-ml-py\"), sys.prefix, sys.flags.no_site, [p for p in sys.path if p])'"
    # must pass: every GPU at the harness's own reading +-1 GiB, every container on exactly its GPUs;
    # must fail: the last GPU expected at half its reading, the first container at 4 GiB.
    args=$(python3 - <<'PY'
import json, os
gpus = dict(x.split("=") for x in os.environ["GV_REST_GPU_MIB"].split())
cont = [x.split("=")[1].split("@") for x in os.environ["GV_CONTAINERS"].split()]
ok = {"settle_samples": 5, "gpus": {g: {"expected_gib": round(int(m) / 1024, 2), "tolerance_gib": 1.0} for g, m in gpus.items()},
      "containers": {c: {"gpus": [int(x) for x in gs.split(",")]} for c, gs in cont}}
bad = json.loads(json.dumps(ok))
last = sorted(gpus)[-1]
bad["gpus"][last]["expected_gib"] = round(int(gpus[last]) / 2048, 2)
bad["containers"][cont[0][0]].update(expected_gib=4.0, tolerance_gib=0.5)
print(json.dumps(ok))
print(json.dumps(bad))
PY
)
    pass=$(echo "$args" | sed -n 1p)
    fail=$(echo "$args" | sed -n 2p)
    echo "== vram_check, must pass: $pass"
    adhoc -m llmops.multillm.vram_check -a "$pass"
    rc_pass=$?
    echo "== vram_check, must fail: $fail"
    adhoc -m llmops.multillm.vram_check -a "$fail"
    rc_fail=$?
    echo "PROOF must-pass rc=$rc_pass must-fail rc=$rc_fail"
    [ "$rc_pass" = 0 ] && [ "$rc_fail" = 2 ]
    ;;
  *)
    sed -n '2,20p' "$0"
    exit 2
    ;;
esac
