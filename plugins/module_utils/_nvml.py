# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""NVML access for llmops.multillm modules, and nothing else.

Everything that touches the NVIDIA Management Library goes through this file, by way of the
official binding nvidia-ml-py (module ``pynvml``), so that the modules above it deal with plain
numbers and one exception type (:class:`NvmlUnavailable`) that names why there is no GPU to read.

Memory figures:

* ``used`` is what ``nvidia-smi`` shows: the v2 memory structure (``nvmlDeviceGetMemoryInfo_v2``),
  which reports driver-reserved memory apart as ``reserved``. The v1 structure folds the reserved
  memory into ``used`` (on an H200 with 10 GiB allocated, v1 said 11.12 GiB used, v2 10.51 GiB
  used + 0.60 GiB reserved).
* Drivers without the v2 query get v1, with ``reserved`` unknown (``None``); ``memory_api`` and
  :attr:`Nvml.notes` say so.

Per-process figures come from ``nvmlDeviceGetComputeRunningProcesses_v3``, falling back to
``_v2`` and then to the unversioned v1 entry point of old drivers (which the binding no longer
wraps, so it is called here through ctypes with the v1 structure of nvml.h).
"""

from __future__ import annotations

import ctypes
import traceback

try:
    import pynvml
except ImportError:
    pynvml = None
    PYNVML_IMPORT_ERROR = traceback.format_exc()
else:
    PYNVML_IMPORT_ERROR = None

HAS_PYNVML = pynvml is not None

MIB = 1024 * 1024

# NVML return codes (nvml.h); kept here so the mapping works even when the binding is absent.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_VALUE_NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFF

# Return codes that mean "this driver does not have that (versioned) query".
_MISSING_API = (NVML_ERROR_FUNCTION_NOT_FOUND, NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_ARGUMENT_VERSION_MISMATCH)

# Why there is no GPU to read, and what to do about it.
CAUSES = {
    'no_python_binding': 'the Python binding nvidia-ml-py (module pynvml) is not installed for the '
                         'interpreter running this module; install nvidia-ml-py (not the PyPI package named pynvml)',
    'no_library': 'the NVML library libnvidia-ml.so.1 cannot be loaded: the NVIDIA driver\'s user-space part is '
                  'not installed on this host; install the NVIDIA driver (role llmops.multillm.nvidia_driver)',
    'driver_not_loaded': 'libnvidia-ml.so.1 is installed but the NVIDIA kernel driver is not loaded; check '
                         '`lsmod | grep nvidia` and `dmesg`, and reboot after a driver install or run `modprobe nvidia`',
    'driver_mismatch': 'the NVML library and the loaded kernel driver have different versions (the driver was '
                       'upgraded without a reboot); reboot the host',
    'no_permission': 'NVML refused access; run the module as root (become: true) or give this user access to /dev/nvidia*',
    'no_device': 'NVML works but reports no GPU; check `nvidia-smi -L` and that the GPU is attached to this host',
    'nvml_error': 'NVML failed',
}


class NvmlUnavailable(Exception):
    """No GPU can be read. ``cause`` is a key of :data:`CAUSES`."""

    def __init__(self, cause, detail=None):
        self.cause = cause
        self.detail = detail
        message = CAUSES[cause]
        if detail:
            message = '%s (%s)' % (message, detail)
        super().__init__(message)


class NvmlCallError(Exception):
    """One NVML query failed on an initialised library (a GPU lost, say)."""


def error_code(exc):
    """The NVML return code carried by a pynvml exception, or None."""
    return getattr(exc, 'value', None)


def cause_of(exc):
    """Map a pynvml exception raised by nvmlInit to a key of :data:`CAUSES`."""
    return {
        NVML_ERROR_LIBRARY_NOT_FOUND: 'no_library',
        NVML_ERROR_DRIVER_NOT_LOADED: 'driver_not_loaded',
        NVML_ERROR_LIB_RM_VERSION_MISMATCH: 'driver_mismatch',
        NVML_ERROR_NO_PERMISSION: 'no_permission',
    }.get(error_code(exc), 'nvml_error')


class MemoryInfo(object):
    """One memory reading of one GPU, in bytes. ``reserved`` is None when only v1 was available."""

    __slots__ = ('total', 'used', 'free', 'reserved')

    def __init__(self, total, used, free, reserved):
        self.total = total
        self.used = used
        self.free = free
        self.reserved = reserved


class ProcessInfo(object):
    """A compute process on a GPU; ``used`` in bytes, None where the driver cannot tell."""

    __slots__ = ('pid', 'used')

    def __init__(self, pid, used):
        self.pid = pid
        self.used = used


class _ProcessInfoV1(ctypes.Structure):
    # nvmlProcessInfo_v1_t of nvml.h: what the unversioned nvmlDeviceGetComputeRunningProcesses fills
    _fields_ = [('pid', ctypes.c_uint), ('usedGpuMemory', ctypes.c_ulonglong)]


class Nvml(object):
    """An NVML session: ``with Nvml() as nvml: ...`` initialises the library and shuts it down."""

    def __init__(self):
        self.memory_api = None  # 'v2' or 'v1', decided on the first reading
        self.process_api = None  # 'v3', 'v2' or 'v1'
        self.notes = []
        self._open = False

    # -- session -------------------------------------------------------------------------------
    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def open(self):
        if not HAS_PYNVML:
            raise NvmlUnavailable('no_python_binding')
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise NvmlUnavailable(cause_of(exc), 'nvmlInit: %s' % _describe(exc))
        self._open = True

    def close(self):
        if self._open:
            self._open = False
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass

    # -- system and devices --------------------------------------------------------------------
    def driver_version(self):
        return self._call('nvmlSystemGetDriverVersion', pynvml.nvmlSystemGetDriverVersion)

    def device_count(self):
        return self._call('nvmlDeviceGetCount', pynvml.nvmlDeviceGetCount)

    def handle(self, index):
        return self._call('nvmlDeviceGetHandleByIndex(%d)' % index, pynvml.nvmlDeviceGetHandleByIndex, index)

    def name(self, handle):
        return self._call('nvmlDeviceGetName', pynvml.nvmlDeviceGetName, handle)

    def uuid(self, handle):
        return self._call('nvmlDeviceGetUUID', pynvml.nvmlDeviceGetUUID, handle)

    # -- memory --------------------------------------------------------------------------------
    def memory(self, handle):
        """A :class:`MemoryInfo`; v2 unless this driver lacks it (then v1, once decided)."""
        if self.memory_api != 'v1':
            try:
                version = getattr(pynvml, 'nvmlMemory_v2', None)
                if version is None:  # a binding older than the v2 query (nvidia-ml-py < 11.510)
                    raise pynvml.NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
                mem = pynvml.nvmlDeviceGetMemoryInfo(handle, version=version)
            except pynvml.NVMLError as exc:
                if self.memory_api == 'v2' or error_code(exc) not in _MISSING_API:
                    raise NvmlCallError('nvmlDeviceGetMemoryInfo_v2: %s' % _describe(exc))
                self.memory_api = 'v1'
                self.notes.append(
                    'NVML has no v2 memory query on this driver (nvmlDeviceGetMemoryInfo_v2: %s): used_mib comes '
                    'from the v1 query, which counts driver-reserved memory as used, and reserved_mib is unknown'
                    % _describe(exc))
            else:
                self.memory_api = 'v2'
                return MemoryInfo(mem.total, mem.used, mem.free, mem.reserved)
        mem = self._call('nvmlDeviceGetMemoryInfo', pynvml.nvmlDeviceGetMemoryInfo, handle)
        return MemoryInfo(mem.total, mem.used, mem.free, None)

    # -- processes -----------------------------------------------------------------------------
    def processes(self, handle):
        """Compute processes on the GPU as :class:`ProcessInfo` (v3, else v2, else v1 entry point)."""
        order = ('v3', 'v2', 'v1')
        if self.process_api is not None:
            order = order[order.index(self.process_api):]
        for api in order:
            try:
                if api == 'v1':
                    found = self._processes_v1(handle)
                else:
                    query = getattr(pynvml, 'nvmlDeviceGetComputeRunningProcesses_%s' % api)
                    found = [ProcessInfo(p.pid, p.usedGpuMemory) for p in query(handle)]
            except pynvml.NVMLError as exc:
                if error_code(exc) == NVML_ERROR_FUNCTION_NOT_FOUND and api != 'v1':
                    continue
                raise NvmlCallError('nvmlDeviceGetComputeRunningProcesses (%s): %s' % (api, _describe(exc)))
            if self.process_api != api:
                self.process_api = api
                if api != 'v3':
                    self.notes.append('per-process figures come from the %s process query (older driver)' % api)
            return found
        raise NvmlCallError('nvmlDeviceGetComputeRunningProcesses: no version of the query exists')

    @staticmethod
    def _processes_v1(handle):
        # The binding wraps only _v2/_v3; old drivers export just this symbol, with the v1 layout.
        fn = pynvml._nvmlGetFunctionPointer('nvmlDeviceGetComputeRunningProcesses')
        count = ctypes.c_uint(0)
        ret = fn(handle, ctypes.byref(count), None)
        if ret == 0:
            return []
        while ret == NVML_ERROR_INSUFFICIENT_SIZE:
            count.value = count.value * 2 + 5  # room for processes started meanwhile
            infos = (_ProcessInfoV1 * count.value)()
            ret = fn(handle, ctypes.byref(count), infos)
        if ret != 0:
            raise pynvml.NVMLError(ret)
        return [ProcessInfo(infos[i].pid, None if infos[i].usedGpuMemory == NVML_VALUE_NOT_AVAILABLE
                            else infos[i].usedGpuMemory) for i in range(count.value)]

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _call(what, fn, *args):
        try:
            return fn(*args)
        except pynvml.NVMLError as exc:
            raise NvmlCallError('%s: %s' % (what, _describe(exc)))


def _describe(exc):
    try:
        text = str(exc)
    except Exception:  # pylint: disable=broad-except
        text = exc.__class__.__name__
    code = error_code(exc)
    return '%s, NVML error %s' % (text, code) if code is not None else text
