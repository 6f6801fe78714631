# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure logic of vram_check: when VRAM has settled, whether it is where it should be, and how to
say so. No NVML, no I/O: the unit tests call these directly with numbers.

Figures are compared in bytes; GiB and MiB are binary (2**30, 2**20) as in nvidia-smi.
"""

from __future__ import annotations

GIB = 1024 ** 3
MIB = 1024 ** 2


def to_mib(value):
    """Bytes to whole MiB (floored, as nvidia-smi prints), None stays None."""
    return None if value is None else int(value // MIB)


def to_gib(value, digits=3):
    return None if value is None else round(value / GIB, digits)


def fmt_gib(value):
    return '%.2f GiB' % (value / GIB)


def spread(values):
    return max(values) - min(values) if values else 0


def settled(history, samples, delta_mib):
    """True when the last ``samples`` readings of every GPU lie within ``delta_mib`` of each other.

    ``history`` is a list of readings, each a list of used bytes per selected GPU.
    """
    if len(history) < samples:
        return False
    window = list(history)[-samples:]
    for column in range(len(window[0])):
        if spread([reading[column] for reading in window]) > delta_mib * MIB:
            return False
    return True


def within(measured, expected_gib, tolerance_gib):
    """measured (bytes) lies in expected ± tolerance (GiB), edges included."""
    return abs(measured - expected_gib * GIB) <= tolerance_gib * GIB


def check_total(measured, expected_gib=None, tolerance_gib=2.0, max_gib=None):
    """Problems with the summed VRAM, as sentences (empty when it is fine)."""
    problems = []
    if expected_gib is not None and not within(measured, expected_gib, tolerance_gib):
        problems.append('used VRAM is %s, expected %.2f ± %.2f GiB (off by %+.2f GiB)' % (
            fmt_gib(measured), expected_gib, tolerance_gib, (measured - expected_gib * GIB) / GIB))
    if max_gib is not None and measured > max_gib * GIB:
        problems.append('used VRAM is %s, above max_gib %.2f GiB by %.2f GiB' % (
            fmt_gib(measured), max_gib, (measured - max_gib * GIB) / GIB))
    return problems


def container_matches(key, process):
    """A containers option key names a process's container by name or by id (12+ hex prefix)."""
    if process.get('container') is None:
        return False
    if key == process['container']:
        return True
    cid = process.get('container_id') or ''
    return len(key) >= 12 and cid.startswith(key)


def check_containers(gpus, expectations, default_tolerance_gib):
    """Per-container totals against expectations.

    Returns (report, problems): report maps every container seen (or expected) to its figures;
    problems are sentences for the containers that are off.
    """
    report = {}
    for gpu in gpus:
        for proc in gpu['processes']:
            if proc.get('container') is None:
                continue
            entry = report.setdefault(proc['container'], {
                'container_id': proc.get('container_id'), 'used_bytes': 0, 'pids': [],
                'expected_gib': None, 'tolerance_gib': None, 'ok': None})
            entry['used_bytes'] += proc.get('used_bytes') or 0
            if proc['pid'] not in entry['pids']:
                entry['pids'].append(proc['pid'])

    problems = []
    for key in sorted(expectations):
        expected_gib, tolerance_gib = expectations[key]
        if tolerance_gib is None:
            tolerance_gib = default_tolerance_gib
        matched = [name for name, entry in report.items()
                   if container_matches(key, {'container': name, 'container_id': entry['container_id']})]
        if matched:
            name = matched[0]
            entry = report[name]
        else:
            name = key
            entry = report.setdefault(key, {'container_id': None, 'used_bytes': 0, 'pids': [],
                                            'expected_gib': None, 'tolerance_gib': None, 'ok': None})
        entry['expected_gib'] = expected_gib
        entry['tolerance_gib'] = tolerance_gib
        entry['ok'] = within(entry['used_bytes'], expected_gib, tolerance_gib)
        if not entry['ok']:
            if not entry['pids']:
                problems.append('container %s has no process on the selected GPUs, expected %.2f ± %.2f GiB' % (
                    name, expected_gib, tolerance_gib))
            else:
                problems.append('container %s uses %s, expected %.2f ± %.2f GiB (off by %+.2f GiB)' % (
                    name, fmt_gib(entry['used_bytes']), expected_gib, tolerance_gib,
                    (entry['used_bytes'] - expected_gib * GIB) / GIB))

    for entry in report.values():
        entry['used_mib'] = to_mib(entry['used_bytes'])
        entry['used_gib'] = to_gib(entry.pop('used_bytes'))
    return report, problems


def breakdown(gpus):
    """One line per GPU: used, reserved, then each process (and its container), biggest first."""
    lines = []
    for gpu in gpus:
        reserved = '' if gpu['reserved_bytes'] is None else ', reserved %s' % fmt_gib(gpu['reserved_bytes'])
        parts = []
        for proc in sorted(gpu['processes'], key=lambda p: -(p.get('used_bytes') or 0)):
            label = 'pid %d' % proc['pid']
            if proc.get('container'):
                label += ' [container %s]' % proc['container']
            elif proc.get('command'):
                label += ' (%s)' % proc['command']
            used = 'n/a' if proc.get('used_bytes') is None else fmt_gib(proc['used_bytes'])
            parts.append('%s %s' % (label, used))
        if gpu['unattributed_bytes']:
            parts.append('not attributed to a listed process %s' % fmt_gib(gpu['unattributed_bytes']))
        lines.append('GPU %d (%s): used %s%s; %s' % (
            gpu['index'], gpu['name'], fmt_gib(gpu['used_bytes']), reserved,
            ', '.join(parts) if parts else 'no compute process'))
    return lines


def sample_line(samples, limit=20, total=None):
    """The last ``limit`` samples as 't=..s: MiB per GPU' text for a message.

    ``total`` is how many samples were taken, when ``samples`` holds only the latest ones.
    """
    shown = list(samples)[-limit:]
    text = ', '.join('t=%.1fs %s MiB' % (s['elapsed_s'], '/'.join(str(m) for m in s['per_gpu_mib'])) for s in shown)
    total = len(samples) if total is None else total
    if total > len(shown):
        text = '(%d earlier samples left out) %s' % (total - len(shown), text)
    return text


# -- per GPU (hosts with several GPUs) --------------------------------------------------------------

def gpu_key(value):
    """A GPU as the options name it: an index (int, or a string of digits) -> int, a UUID -> str.
    None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if text.startswith(('GPU-', 'MIG-')) and len(text) > 4:
        return text
    return None


def gpu_name(key):
    return 'GPU %s' % key


def container_gpus(gpus):
    """container -> {GPU index: bytes its processes hold there}."""
    out = {}
    for gpu in gpus:
        for proc in gpu['processes']:
            if proc.get('container') is None:
                continue
            per_gpu = out.setdefault(proc['container'], {})
            per_gpu[gpu['index']] = per_gpu.get(gpu['index'], 0) + (proc.get('used_bytes') or 0)
    return out


def check_gpus(gpus, expectations, default_tolerance_gib):
    """Each GPU's used memory against its own expectation.

    ``expectations`` maps a GPU index to (expected_gib or None, tolerance_gib or None, max_gib or None).
    Returns (report, problems): one report entry per GPU (index, used, expectation, verdict, the
    containers on it), problems as sentences naming the GPU and what is on it.
    """
    by_container = container_gpus(gpus)
    report, problems = [], []
    for gpu in gpus:
        expected, tolerance, ceiling = expectations.get(gpu['index'], (None, None, None))
        tolerance = default_tolerance_gib if tolerance is None else tolerance
        on_it = dict((name, per_gpu[gpu['index']]) for name, per_gpu in sorted(by_container.items())
                     if gpu['index'] in per_gpu)
        entry = {'index': gpu['index'], 'uuid': gpu.get('uuid'), 'used_mib': to_mib(gpu['used_bytes']),
                 'used_gib': to_gib(gpu['used_bytes']), 'total_gib': to_gib(gpu.get('total_bytes')),
                 'expected_gib': expected, 'tolerance_gib': tolerance if expected is not None else None,
                 'max_gib': ceiling, 'ok': None,
                 'containers': dict((name, to_gib(used)) for name, used in on_it.items())}
        found = []
        if expected is not None and not within(gpu['used_bytes'], expected, tolerance):
            found.append('uses %s, expected %.2f ± %.2f GiB (off by %+.2f GiB)' % (
                fmt_gib(gpu['used_bytes']), expected, tolerance, (gpu['used_bytes'] - expected * GIB) / GIB))
        if ceiling is not None and gpu['used_bytes'] > ceiling * GIB:
            found.append('uses %s, above its max_gib %.2f GiB' % (fmt_gib(gpu['used_bytes']), ceiling))
        if expected is not None or ceiling is not None:
            entry['ok'] = not found
        for sentence in found:
            problems.append('%s %s; on it: %s' % (gpu_name(gpu['index']), sentence, ', '.join(
                'container %s %s' % (name, fmt_gib(used)) for name, used in on_it.items()) or 'no container'))
        report.append(entry)
    return report, problems


def check_placement(gpus, placements):
    """Each named container runs on exactly its GPUs. ``placements`` maps a container name (or id
    prefix) to the GPU indexes it must use; returns problems as sentences."""
    by_container = container_gpus(gpus)
    ids = {}
    for gpu in gpus:
        for proc in gpu['processes']:
            if proc.get('container') is not None:
                ids[proc['container']] = proc.get('container_id')
    problems = []
    for key in sorted(placements):
        want = sorted(placements[key])
        names = [name for name in by_container
                 if container_matches(key, {'container': name, 'container_id': ids.get(name)})]
        seen = sorted(by_container[names[0]]) if names else []
        missing = [g for g in want if g not in seen]
        extra = [g for g in seen if g not in want]
        if missing or extra:
            where = ', '.join(gpu_name(g) for g in want)
            parts = []
            if missing:
                parts.append('has no process on %s' % ', '.join(gpu_name(g) for g in missing))
            if extra:
                parts.append('runs on %s, which is not one of its GPUs' % ', '.join(gpu_name(g) for g in extra))
            name = names[0] if names else key
            problems.append('container %s should run on %s but %s' % (name, where, ' and '.join(parts)))
    return problems


def gpu_summary(report):
    """One line per GPU for the play's summary: used, expectation and verdict, containers on it."""
    lines = []
    for entry in report:
        want = ''
        if entry['expected_gib'] is not None:
            want += ', expected %.2f ± %.2f GiB' % (entry['expected_gib'], entry['tolerance_gib'])
        if entry['max_gib'] is not None:
            want += ', max %.2f GiB' % entry['max_gib']
        verdict = {True: ': ok', False: ': OFF', None: ''}[entry['ok']]
        containers = ', '.join('%s %.2f GiB' % (name, gib) for name, gib in entry['containers'].items())
        lines.append('%s %.2f GiB%s%s; %s' % (
            gpu_name(entry['index']), entry['used_gib'], want, verdict, containers or 'no container'))
    return lines
