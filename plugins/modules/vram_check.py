#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vram_check
short_description: Verify the resting GPU memory (VRAM) of a host with NVML
version_added: 0.1.0
description:
  - Reads GPU memory through NVML (the NVIDIA Management Library, via the nvidia-ml-py binding),
    waits until it has settled (resting), and fails when the used memory of the selected GPUs is
    not where it should be.
  - C(used) means what C(nvidia-smi) shows, the v2 memory structure of NVML, which excludes the
    memory the driver reserves for itself; that is reported apart as RV(gpus[].reserved_mib).
    On drivers without the v2 query the module falls back to v1, whose C(used) includes the
    reserved memory, and says so in RV(notes) and RV(memory_api).
  - Resting detection samples every O(settle_interval) seconds until O(settle_samples)
    consecutive samples of every selected GPU lie within O(settle_delta_mib) of each other, or
    O(timeout) seconds pass; then it fails with C(did not settle) and the samples.
  - Per-process usage comes from NVML's list of compute processes. A process running in a Docker
    container is mapped to it through C(/proc/<pid>/cgroup), and the container id is resolved to
    its name through the Docker Engine API on O(docker_host) when that socket answers.
  - Failure messages state the measured against the expected figure and the per-GPU,
    per-process and per-container breakdown.
  - Read-only; never reports a change.
author:
  - llmops.multillm maintainers (@llmops)
requirements:
  - nvidia-ml-py (Python module C(pynvml)) on the managed host
  - the NVIDIA driver (C(libnvidia-ml.so.1) and the loaded kernel module) on the managed host
extends_documentation_fragment:
  - llmops.multillm.attributes.read_only
attributes:
  platform:
    platforms: posix
    support: full
    description: Linux hosts with NVIDIA GPUs.
options:
  devices:
    description:
      - Indexes of the GPUs to check (NVML order, as C(nvidia-smi -L) lists them).
      - All GPUs when omitted.
    type: list
    elements: int
  expected_gib:
    description:
      - Expected used VRAM in GiB, summed over the selected GPUs.
      - The module fails unless the sum lies within O(expected_gib) +/- O(tolerance_gib), edges included.
    type: float
  tolerance_gib:
    description:
      - Allowed deviation from O(expected_gib) in GiB.
      - Also the default tolerance of the entries of O(containers).
    type: float
    default: 2.0
  max_gib:
    description:
      - Fail when the summed used VRAM of the selected GPUs exceeds this many GiB.
    type: float
  settle_interval:
    description:
      - Seconds between two samples while waiting for VRAM to settle.
    type: float
    default: 1.0
  settle_samples:
    description:
      - Number of consecutive samples that must stay within O(settle_delta_mib) of each other.
      - V(1) takes a single sample and does not wait (the quickest answer).
    type: int
    default: 5
  settle_delta_mib:
    description:
      - Largest spread in MiB (maximum minus minimum, per GPU) that counts as settled.
    type: int
    default: 256
  timeout:
    description:
      - Seconds to wait for VRAM to settle before failing with C(did not settle).
    type: float
    default: 120
  require_gpu:
    description:
      - When true, fail if NVML or a GPU is missing, naming the cause (no Python binding, no
        library, driver not loaded, driver/library mismatch, no permission, no device).
      - When false, return RV(gpus) empty and a message naming the cause instead.
    type: bool
    default: true
  containers:
    description:
      - Optional per-container expectations, so that the play says which model is off.
      - Keys are Docker container names (or ids, 12 hex digits or more); values are either a
        number (the expected GiB, with O(tolerance_gib)) or a dictionary with C(expected_gib)
        and optionally C(tolerance_gib) and C(gpus).
      - A container's figure is the sum of its processes' usage on the selected GPUs. A
        container without a process there counts as 0 GiB.
      - C(gpus) lists the GPUs (indexes or UUIDs) the container must run on, exactly. The module
        fails naming the GPU when the container has no process on one of them, or has one on
        another GPU. With C(gpus), C(expected_gib) may be left out.
    type: dict
  gpus:
    description:
      - Optional per-GPU expectations, for hosts whose models are placed on chosen GPUs.
      - Keys are GPU indexes or UUIDs; values are a number (the expected GiB of that GPU, with
        O(tolerance_gib)), a dictionary with any of C(expected_gib), C(tolerance_gib) and
        C(max_gib), or null (the GPU must only exist).
      - Every GPU named here, or in the C(gpus) of O(containers), must exist; the module fails
        naming the missing index or UUID. These GPUs are checked even when O(devices) leaves
        them out.
    type: dict
  docker_host:
    description:
      - The Docker Engine API socket used to turn container ids into names.
      - Only C(unix://) sockets are asked; without an answer the short id stands in for the name.
      - Falls back to the E(DOCKER_HOST) environment variable.
    type: str
    default: unix:///var/run/docker.sock
notes:
  - NVML reports host PIDs. Run the module on the host itself (not inside a container with its
    own PID namespace) for processes and containers to be named.
  - Per-process figures include each process's CUDA context (a few hundred MiB per process and
    GPU); the GPU's C(used) also holds memory no listed process accounts for, which the result
    reports as RV(gpus[].unattributed_mib).
seealso:
  - name: NVML API reference (memory queries)
    description: nvmlDeviceGetMemoryInfo and nvmlDeviceGetMemoryInfo_v2.
    link: https://docs.nvidia.com/deploy/nvml-api/group__nvmlDeviceQueries.html
'''

EXAMPLES = r'''
- name: Ensure the resting VRAM of the reference deployment is about 58 GB
  llmops.multillm.vram_check:
    expected_gib: 54.0
    tolerance_gib: 2.0
    containers:
      qwen2.5-14b:
        expected_gib: 40.0
        tolerance_gib: 1.5
      paddleocr-vl: 14.0

- name: Read the VRAM once, without waiting for it to settle
  llmops.multillm.vram_check:
    settle_samples: 1
  register: vram

- name: Ensure GPUs 0 and 1 stay below 150 GiB, waiting up to 5 minutes for models to load
  llmops.multillm.vram_check:
    devices: [0, 1]
    max_gib: 150
    timeout: 300

- name: Report VRAM where a GPU is optional (CI hosts without one)
  llmops.multillm.vram_check:
    require_gpu: false
    settle_samples: 1
'''

RETURN = r'''
gpus:
  description: One entry per selected GPU, figures from the last sample.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: NVML index of the GPU.
      type: int
      sample: 0
    name:
      description: Product name.
      type: str
      sample: NVIDIA H100 80GB HBM3
    uuid:
      description: GPU UUID.
      type: str
      sample: GPU-4f2c1a7e-8f3b-2d6e-9a1c-0b5e7d3f9a21
    total_mib:
      description: Total memory in MiB.
      type: int
      sample: 81559
    used_mib:
      description: Used memory in MiB (v2 C(used), as nvidia-smi shows; v1 C(used) on old drivers).
      type: int
      sample: 59220
    free_mib:
      description: Free memory in MiB.
      type: int
      sample: 21728
    reserved_mib:
      description: Memory reserved by the driver in MiB; null when only the v1 query exists.
      type: int
      sample: 610
    unattributed_mib:
      description: Used memory that the listed processes do not account for, in MiB.
      type: int
      sample: 0
    processes:
      description: Compute processes on the GPU.
      type: list
      elements: dict
      contains:
        pid:
          description: Host PID.
          type: int
        used_mib:
          description: Memory the process holds on this GPU, its CUDA context included; null when the driver cannot tell.
          type: int
        command:
          description: Short command name from C(/proc/<pid>/comm), null when unreadable.
          type: str
        container:
          description: Name of the Docker container the process runs in (short id when the name cannot be resolved); only for processes in a container.
          type: str
        container_id:
          description: Full id of that container; only for processes in a container.
          type: str
used_gib:
  description: Used memory summed over the selected GPUs, in GiB.
  returned: always
  type: float
  sample: 57.832
used_mib:
  description: Used memory summed over the selected GPUs, in MiB.
  returned: always
  type: int
  sample: 59220
settled:
  description: Whether VRAM settled (always true when O(settle_samples=1); false without a GPU).
  returned: always
  type: bool
samples:
  description: The samples taken, oldest first (the last 100 at most).
  returned: always
  type: list
  elements: dict
  contains:
    elapsed_s:
      description: Seconds since the first sample.
      type: float
    used_mib:
      description: Used MiB summed over the selected GPUs.
      type: int
    per_gpu_mib:
      description: Used MiB of each selected GPU, in the order of RV(gpus).
      type: list
      elements: int
gpu_report:
  description: Each selected GPU's figure against its expectation from O(gpus), with the containers on it.
  returned: always
  type: list
  elements: dict
  sample:
    - index: 1
      uuid: GPU-00000000-1111-2222-3333-444444444444
      used_mib: 40960
      used_gib: 40.0
      total_gib: 79.647
      expected_gib: 40.0
      tolerance_gib: 2.0
      max_gib: null
      ok: true
      containers:
        multillm-model-tp: 40.0
gpu_summary:
  description: One line per selected GPU (used, expectation and verdict, containers on it), for the play's summary.
  returned: always
  type: list
  elements: str
  sample: ["GPU 0 40.00 GiB, expected 40.00 ± 2.00 GiB: ok; multillm-model-tp 20.00 GiB, multillm-model-a 20.00 GiB"]
containers:
  description:
    - Per-container totals over the selected GPUs, keyed by container name.
    - C(gpus) lists the GPU indexes the container has processes on.
    - Entries for containers named in O(containers) carry their expectation and whether it holds.
  returned: always
  type: dict
  sample:
    qwen2.5-14b:
      container_id: 3f1e...
      used_mib: 40960
      used_gib: 40.0
      pids: [4242]
      expected_gib: 40.0
      tolerance_gib: 1.5
      ok: true
driver_version:
  description: NVIDIA driver version NVML reports.
  returned: when NVML answers
  type: str
  sample: 580.159.04
memory_api:
  description: Which NVML memory query gave the figures, V(v2) or V(v1) (older drivers).
  returned: when a GPU was read
  type: str
  sample: v2
process_api:
  description: Which version of the compute-process query answered (V(v3), V(v2) or V(v1)).
  returned: when a GPU was read
  type: str
  sample: v3
cause:
  description:
    - Why no GPU could be read; one of V(no_python_binding), V(no_library), V(driver_not_loaded),
      V(driver_mismatch), V(no_permission), V(no_device), V(nvml_error).
  returned: when NVML or a GPU is missing
  type: str
  sample: driver_not_loaded
notes:
  description: Caveats about the figures (v1 fallback, older process query, unresolved container names).
  returned: always
  type: list
  elements: str
msg:
  description: A sentence with the result, or the reason of the failure with the breakdown.
  returned: always
  type: str
  sample: "Resting VRAM is 57.83 GiB on GPU 0, within 58.00 ± 2.00 GiB (settled after 5 samples in 4.0 s)"
'''

import collections
import math
import time

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.llmops.multillm.plugins.module_utils import _nvml
from ansible_collections.llmops.multillm.plugins.module_utils import _vram_containers
from ansible_collections.llmops.multillm.plugins.module_utils import _vram_eval as ev

MAX_SAMPLES_RETURNED = 100


def argument_spec():
    return dict(
        devices=dict(type='list', elements='int'),
        expected_gib=dict(type='float'),
        tolerance_gib=dict(type='float', default=2.0),
        max_gib=dict(type='float'),
        settle_interval=dict(type='float', default=1.0),
        settle_samples=dict(type='int', default=5),
        settle_delta_mib=dict(type='int', default=256),
        timeout=dict(type='float', default=120),
        require_gpu=dict(type='bool', default=True),
        containers=dict(type='dict'),
        gpus=dict(type='dict'),
        docker_host=dict(type='str', default=_vram_containers.DEFAULT_DOCKER_HOST,
                         fallback=(env_fallback, ['DOCKER_HOST'])),
    )


class VramCheck(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = dict(changed=False, gpus=[], used_gib=0.0, used_mib=0, settled=False, samples=[],
                           containers={}, gpu_report=[], gpu_summary=[], notes=[], msg='')
        self.placements = {}

    def fail(self, msg, **extra):
        data = dict(self.result, **extra)
        data['msg'] = msg
        self.module.fail_json(**data)

    # -- input -----------------------------------------------------------------------------------
    def validate(self):
        p = self.params
        # Before any GPU is read: nan passes every comparison (max_gib=nan would always pass) and
        # inf never ends a wait, so every float argument must be finite.
        for name in ('expected_gib', 'tolerance_gib', 'max_gib', 'settle_interval', 'timeout'):
            if p[name] is not None and not math.isfinite(p[name]):
                self.fail('%s=%r: must be a finite number (not nan or inf)' % (name, p[name]))
        rules = [
            ('tolerance_gib', p['tolerance_gib'] is not None and p['tolerance_gib'] < 0, 'must be 0 or more'),
            ('expected_gib', p['expected_gib'] is not None and p['expected_gib'] < 0, 'must be 0 or more'),
            ('max_gib', p['max_gib'] is not None and p['max_gib'] <= 0, 'must be more than 0'),
            ('settle_interval', p['settle_interval'] < 0, 'must be 0 or more'),
            ('settle_samples', p['settle_samples'] < 1, 'must be 1 or more (1 means: one sample, no settling)'),
            ('settle_delta_mib', p['settle_delta_mib'] < 0, 'must be 0 or more'),
            ('timeout', p['timeout'] < 0, 'must be 0 or more'),
        ]
        for name, broken, rule in rules:
            if broken:
                self.fail('%s=%r: %s' % (name, p[name], rule))
        devices = p['devices']
        if devices is not None:
            if not devices:
                self.fail('devices=[]: list at least one GPU index, or omit devices for all GPUs')
            bad = [d for d in devices if d < 0]
            if bad or len(set(devices)) != len(devices):
                self.fail('devices=%r: GPU indexes must be distinct and 0 or more' % (devices,))
        self.expectations = self._container_expectations(p['containers'] or {})
        self.gpu_expectations = self._gpu_expectations(p['gpus'] or {})

    def _gpu_keys(self, where, values):
        keys = [ev.gpu_key(v) for v in values]
        if any(k is None for k in keys) or len(set(keys)) != len(keys):
            self.fail('%s: name GPUs by index (0, 1, ...) or UUID (GPU-...), each once' % where)
        return keys

    def _gpu_expectations(self, gpus):
        """{GPU index or UUID: (expected_gib, tolerance_gib, max_gib)}, each None when not given."""
        parsed = {}
        for key, spec in gpus.items():
            where = 'gpus[%r]=%r' % (key, spec)
            (gpu,) = self._gpu_keys(where, [key])
            if spec is None:
                spec = {}
            elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
                spec = {'expected_gib': spec}
            if not isinstance(spec, dict) or set(spec) - {'expected_gib', 'tolerance_gib', 'max_gib'}:
                self.fail('%s: give a number of GiB, null, or a dictionary with any of expected_gib, '
                          'tolerance_gib and max_gib' % where)
            try:
                values = tuple(None if spec.get(k) is None else float(spec[k])
                               for k in ('expected_gib', 'tolerance_gib', 'max_gib'))
            except (TypeError, ValueError):
                self.fail('%s: expected_gib, tolerance_gib and max_gib must be numbers' % where)
            if any(v is not None and (not math.isfinite(v) or v < 0) for v in values):
                self.fail('%s: expected_gib, tolerance_gib and max_gib must be finite, 0 or more' % where)
            parsed[gpu] = values
        return parsed

    def _container_expectations(self, containers):
        parsed = {}
        for name, spec in containers.items():
            where = 'containers[%r]=%r' % (name, spec)
            if isinstance(spec, (int, float)) and not isinstance(spec, bool):
                spec = {'expected_gib': spec}
            if isinstance(spec, dict) and 'gpus' in spec:
                if not isinstance(spec['gpus'], list) or not spec['gpus']:
                    self.fail('%s: gpus must be a non-empty list of GPU indexes or UUIDs' % where)
                self.placements[str(name)] = self._gpu_keys(where, spec['gpus'])
                spec = dict((k, v) for k, v in spec.items() if k != 'gpus')
                if 'expected_gib' not in spec and not set(spec) - {'tolerance_gib'}:
                    continue  # where it runs is all that is asked
            if not isinstance(spec, dict) or 'expected_gib' not in spec or set(spec) - {'expected_gib', 'tolerance_gib'}:
                self.fail('%s: give a number of GiB or a dictionary with expected_gib and optionally '
                          'tolerance_gib and gpus' % where)
            try:
                expected = float(spec['expected_gib'])
                tolerance = None if spec.get('tolerance_gib') is None else float(spec['tolerance_gib'])
            except (TypeError, ValueError):
                self.fail('%s: expected_gib and tolerance_gib must be numbers' % where)
            if not math.isfinite(expected) or (tolerance is not None and not math.isfinite(tolerance)):
                self.fail('%s: expected_gib and tolerance_gib must be finite numbers (not nan or inf)' % where)
            if expected < 0 or (tolerance is not None and tolerance < 0):
                self.fail('%s: expected_gib and tolerance_gib must be 0 or more' % where)
            parsed[str(name)] = (expected, tolerance)
        return parsed

    # -- no GPU ------------------------------------------------------------------------------------
    def unavailable(self, exc):
        self.result['cause'] = exc.cause
        if exc.cause == 'no_python_binding':
            reason = missing_required_lib('nvidia-ml-py', reason='to read GPU memory through NVML')
            extra = dict(exception=_nvml.PYNVML_IMPORT_ERROR)
        else:
            reason = 'no GPU can be read: %s' % exc
            extra = {}
        if self.params['require_gpu']:
            self.fail(reason, **extra)
        self.result['msg'] = '%s; require_gpu=false, so nothing was checked' % reason
        self.module.exit_json(**self.result)

    # -- the check -----------------------------------------------------------------------------------
    def run(self):
        self.validate()
        nvml = _nvml.Nvml()
        try:
            try:
                nvml.open()
                self.result['driver_version'] = nvml.driver_version()
                count = nvml.device_count()
                if count == 0:
                    raise _nvml.NvmlUnavailable('no_device', 'driver %s' % self.result['driver_version'])
            except _nvml.NvmlUnavailable as exc:
                self.unavailable(exc)
            indexes = self.select(count, self.resolve_gpus(nvml, count))
            gpus = [self.describe(nvml, index) for index in indexes]
            readings, settled, elapsed = self.sample(nvml, gpus)
            for gpu, mem in zip(gpus, readings):
                self.fill(nvml, gpu, mem)
        except _nvml.NvmlCallError as exc:
            self.result['notes'] = nvml.notes
            self.fail('NVML query failed: %s' % exc, cause='nvml_error')
        finally:
            nvml.close()
        self.result['memory_api'] = nvml.memory_api
        self.result['process_api'] = nvml.process_api
        self.result['notes'] = list(nvml.notes)
        self.name_containers(gpus)
        self.report(gpus, settled, elapsed)

    def select(self, count, named=()):
        devices = self.params['devices']
        if devices is None:
            return list(range(count))
        missing = [d for d in devices if d >= count]
        if missing:
            self.fail('devices=%r: GPU %s not present; this host has %d GPU(s), indexes 0 to %d' % (
                devices, ', '.join(str(d) for d in missing), count, count - 1))
        return list(devices) + sorted(set(named) - set(devices))

    def resolve_gpus(self, nvml, count):
        """Turn the GPUs named in gpus and in containers[].gpus into indexes; fail naming the
        ones this host lacks. Returns the indexes named."""
        named = set(self.gpu_expectations)
        for keys in self.placements.values():
            named.update(keys)
        if not named:
            return []
        uuids = {}
        if any(isinstance(k, str) for k in named):
            for index in range(count):
                uuids[nvml.uuid(nvml.handle(index))] = index
        index_of = dict((k, k if isinstance(k, int) else uuids.get(k)) for k in named)
        missing = sorted((str(k) for k, i in index_of.items() if i is None or i >= count))
        if missing:
            self.fail('%s not present: this host has %d GPU(s), indexes 0 to %d%s; the inventory places models '
                      'there (gpus of the model entries, multillm_gpu_count)' % (
                          ', '.join('GPU %s' % k for k in missing), count, count - 1,
                          ' (UUIDs: %s)' % ', '.join(sorted(uuids)) if uuids else ''))
        self.gpu_expectations = dict((index_of[k], v) for k, v in self.gpu_expectations.items())
        self.placements = dict((name, [index_of[k] for k in keys]) for name, keys in self.placements.items())
        return sorted(set(index_of.values()))

    @staticmethod
    def describe(nvml, index):
        handle = nvml.handle(index)
        return {'index': index, 'handle': handle, 'name': nvml.name(handle), 'uuid': nvml.uuid(handle)}

    def sample(self, nvml, gpus):
        """Sample until settled or timed out; returns (last readings, settled, seconds)."""
        p = self.params
        start = time.monotonic()
        # bounded: a long timeout with a short interval must not grow memory without end
        history = collections.deque(maxlen=p['settle_samples'])
        samples = collections.deque(maxlen=MAX_SAMPLES_RETURNED)
        count = 0
        while True:
            readings = [nvml.memory(gpu['handle']) for gpu in gpus]
            elapsed = time.monotonic() - start
            used = [mem.used for mem in readings]
            history.append(used)
            count += 1
            samples.append({'elapsed_s': round(elapsed, 3), 'used_mib': ev.to_mib(sum(used)),
                            'per_gpu_mib': [ev.to_mib(u) for u in used]})
            if ev.settled(history, p['settle_samples'], p['settle_delta_mib']):
                settled = True
                break
            if elapsed + p['settle_interval'] > p['timeout']:
                settled = False
                break
            time.sleep(p['settle_interval'])
        self.sample_count = count
        self.result['samples'] = list(samples)
        return readings, settled, elapsed

    def fill(self, nvml, gpu, mem):
        procs = []
        for proc in nvml.processes(gpu['handle']):
            entry = {'pid': proc.pid, 'used_bytes': proc.used,
                     'command': _vram_containers.command_of_pid(proc.pid)}
            cid = _vram_containers.container_id_of_pid(proc.pid)
            if cid:
                entry['container_id'] = cid
                entry['container'] = cid[:12]
            procs.append(entry)
        attributed = sum(p['used_bytes'] or 0 for p in procs)
        gpu.update(total_bytes=mem.total, used_bytes=mem.used, free_bytes=mem.free,
                   reserved_bytes=mem.reserved, processes=procs,
                   unattributed_bytes=max(mem.used - attributed, 0))

    def name_containers(self, gpus):
        ids = [p['container_id'] for gpu in gpus for p in gpu['processes'] if p.get('container_id')]
        if not ids:
            return
        resolver = _vram_containers.ContainerNames(self.params['docker_host'])
        names = resolver.resolve(ids)
        for gpu in gpus:
            for proc in gpu['processes']:
                if proc.get('container_id') in names:
                    proc['container'] = names[proc['container_id']]
        if resolver.problem:
            self.result['notes'].append(resolver.problem)

    # -- the verdict -----------------------------------------------------------------------------
    def report(self, gpus, settled, elapsed):
        p = self.params
        total = sum(gpu['used_bytes'] for gpu in gpus)
        containers, container_problems = ev.check_containers(gpus, self.expectations, p['tolerance_gib'])
        for name, per_gpu in ev.container_gpus(gpus).items():
            containers.setdefault(name, {})['gpus'] = sorted(per_gpu)
        gpu_report, gpu_problems = ev.check_gpus(gpus, self.gpu_expectations, p['tolerance_gib'])
        container_problems = container_problems + ev.check_placement(gpus, self.placements) + gpu_problems
        self.result.update(
            gpus=[public(gpu) for gpu in gpus], used_gib=ev.to_gib(total), used_mib=ev.to_mib(total),
            settled=settled, containers=containers, gpu_report=gpu_report,
            gpu_summary=ev.gpu_summary(gpu_report))
        where = '%s %s' % ('GPUs' if len(gpus) > 1 else 'GPU', ', '.join(str(gpu['index']) for gpu in gpus))
        lines = ev.breakdown(gpus)
        count = self.sample_count
        samples = self.result['samples']

        if not settled:
            window = [s['per_gpu_mib'] for s in samples[-p['settle_samples']:]]
            spreads = ['GPU %d spread %d MiB' % (gpu['index'], ev.spread([w[i] for w in window]))
                       for i, gpu in enumerate(gpus)]
            self.fail(
                'VRAM on %s did not settle within %.1f s: settling needs %d consecutive samples within %d MiB '
                'of each other per GPU; over the last %d of %d samples %s. Samples: %s. Last reading: %s' % (
                    where, p['timeout'], p['settle_samples'], p['settle_delta_mib'], len(window), count,
                    ', '.join(spreads), ev.sample_line(samples, total=count), ' | '.join(lines)))

        problems = ev.check_total(total, p['expected_gib'], p['tolerance_gib'], p['max_gib']) + container_problems
        how = 'settled after %d sample%s in %.1f s' % (count, '' if count == 1 else 's', elapsed) \
            if p['settle_samples'] > 1 else 'one sample, no settling asked'
        if problems:
            self.fail('Resting VRAM check failed on %s (%s): %s. Breakdown: %s' % (
                where, how, '; '.join(problems), ' | '.join(lines)))

        verdicts = []
        if p['expected_gib'] is not None:
            verdicts.append('within %.2f ± %.2f GiB' % (p['expected_gib'], p['tolerance_gib']))
        if p['max_gib'] is not None:
            verdicts.append('below max %.2f GiB' % p['max_gib'])
        if self.expectations:
            verdicts.append('%d container expectation%s met' % (
                len(self.expectations), '' if len(self.expectations) == 1 else 's'))
        if self.placements:
            verdicts.append('%d container%s on %s GPUs' % (
                len(self.placements), '' if len(self.placements) == 1 else 's', 'its' if len(self.placements) == 1
                else 'their'))
        if self.gpu_expectations:
            verdicts.append('%d GPU expectation%s met' % (
                len(self.gpu_expectations), '' if len(self.gpu_expectations) == 1 else 's'))
        per_gpu = '. Per GPU: %s' % ' | '.join(self.result['gpu_summary']) if len(gpus) > 1 else ''
        self.result['msg'] = 'Resting VRAM is %s on %s%s (%s)%s' % (
            ev.fmt_gib(total), where, ', ' + ', '.join(verdicts) if verdicts else '', how, per_gpu)
        self.module.exit_json(**self.result)


def public(gpu):
    """The returned form of a GPU: MiB figures, no handle."""
    return {
        'index': gpu['index'], 'name': gpu['name'], 'uuid': gpu['uuid'],
        'total_mib': ev.to_mib(gpu['total_bytes']), 'used_mib': ev.to_mib(gpu['used_bytes']),
        'free_mib': ev.to_mib(gpu['free_bytes']), 'reserved_mib': ev.to_mib(gpu['reserved_bytes']),
        'unattributed_mib': ev.to_mib(gpu['unattributed_bytes']),
        'processes': [public_process(proc) for proc in gpu['processes']],
    }


def public_process(proc):
    entry = {'pid': proc['pid'], 'used_mib': ev.to_mib(proc['used_bytes']), 'command': proc.get('command')}
    if proc.get('container_id'):
        entry.update(container=proc['container'], container_id=proc['container_id'])
    return entry


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    VramCheck(module).run()


if __name__ == '__main__':
    main()
