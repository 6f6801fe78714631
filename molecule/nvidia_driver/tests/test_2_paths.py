"""The role's other paths, each a real ansible-playbook run against the converged test host."""
FAKE_SMI = r"""#!/bin/sh
# Stand-in nvidia-smi of a host that already runs the pinned driver on an H100.
case "$*" in
  *--query-gpu=index,*) echo "0, NVIDIA H100 80GB HBM3, 580.95.05, Enabled, 00000000:18:00.0" ;;
  *--query-gpu=*) echo "NVIDIA H100 80GB HBM3, 580.95.05, Enabled, 00000000:18:00.0" ;;
  -q) printf 'GPU 00000000:18:00.0\n    Fabric\n        State                             : N/A\n' ;;
  *) exit 1 ;;
esac
"""


def _with_file(host, path, content):
    host.run(f"cat > {path} <<'EOF'\n{content}\nEOF\nchmod 0755 {path}")


def test_no_gpu_and_gpu_required_fails_early(host, run_playbook):
    before = host.check_output("stat -c %Y /etc/apt/preferences.d/nvidia-driver-branch.pref")
    rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": True})
    assert rc != 0
    assert "no NVIDIA GPU found" in out and "multillm_gpu_required=true" in out
    assert host.check_output("stat -c %Y /etc/apt/preferences.d/nvidia-driver-branch.pref") == before


def test_bad_version_fails_before_any_change(run_playbook):
    rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": False, "nvidia_driver_version": "570.86.15"})
    assert rc != 0
    assert "nvidia_driver_version=570.86.15" in out and "nothing was changed" in out


def test_unknown_flavour_is_rejected_by_the_argument_spec(run_playbook):
    rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": False, "nvidia_driver_kernel_modules": "closed"})
    assert rc != 0
    assert "nvidia_driver_kernel_modules" in out and "closed" in out


def test_secure_boot_without_signing_fails_early(host, run_playbook):
    _with_file(host, "/usr/bin/mokutil", "#!/bin/sh\necho 'SecureBoot enabled'")
    try:
        rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": False})
    finally:
        host.run("rm -f /usr/bin/mokutil")
    assert rc != 0
    assert "Secure Boot is enabled" in out and "nvidia_driver_secure_boot_signing=false" in out


def test_secure_boot_with_unenrolled_key_fails(host, run_playbook):
    _with_file(host, "/usr/bin/mokutil",
               "#!/bin/sh\ncase \"$1\" in --sb-state) echo 'SecureBoot enabled';; *) echo \"$2 is not enrolled\";; esac")
    try:
        rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": False, "nvidia_driver_secure_boot_signing": True})
    finally:
        host.run("rm -f /usr/bin/mokutil")
    assert rc != 0
    assert "is not an enrolled Machine Owner Key" in out


def test_host_running_the_pinned_branch_is_left_untouched(host, run_playbook, recap):
    _with_file(host, "/usr/local/bin/nvidia-smi", FAKE_SMI)
    try:
        # The stand-in nvidia-smi comes without an NVML library: the NVML check has its own test below.
        rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": True, "nvidia_driver_nvml": False})
    finally:
        host.run("rm -f /usr/local/bin/nvidia-smi")
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out
    assert "left untouched" in out
    assert "NVIDIA H100 80GB HBM3" in out and "580.95.05" in out and "Enabled" in out


def test_gpu_whose_nvml_does_not_answer_fails_verification(host, run_playbook):
    # nvidia-smi answers but libnvidia-ml.so.1 cannot be loaded through the binding: vram_check
    # would fail later, after the models loaded, so the GPU-host stage stops here, naming it.
    _with_file(host, "/usr/local/bin/nvidia-smi", FAKE_SMI)
    try:
        rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": True})
    finally:
        host.run("rm -f /usr/local/bin/nvidia-smi")
    assert rc != 0
    assert "nvmlInit through /opt/multillm/nvml-venv/bin/python failed with NVMLError_LibraryNotFound" in out, out


def test_check_mode_on_the_converged_host_changes_nothing(run_playbook, recap):
    rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": False}, check=True)
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out


def _versions(host, names):
    return {n: host.package(n).version for n in names}


def test_branch_switch_moves_pins_and_holds_and_back(host, run_playbook):
    names = ["nvidia-open", "nvidia-kernel-open-dkms", "nvidia-driver-cuda", "nvidia-persistenced", "nvidia-fabricmanager"]
    rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": False, "nvidia_driver_branch": "590"})
    assert rc == 0, out
    assert set(_versions(host, names).values()) == {"590.44.01-1"}, out
    assert all(host.check_output(f"dpkg-query -W -f='${{Status}}' {n}").startswith("hold ") for n in names)
    rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": False, "nvidia_driver_version": "580.95.05"})
    assert rc == 0, out
    assert set(_versions(host, names).values()) == {"580.95.05-1"}, out
    assert all(host.check_output(f"dpkg-query -W -f='${{Status}}' {n}").startswith("hold ") for n in names)
    # Back to the scenario's own settings (branch pin, no exact version), as the other tests expect.
    rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": False})
    assert rc == 0, out
    assert "Pin: version 580.*" in host.file("/etc/apt/preferences.d/nvidia-driver-branch.pref").content_string
