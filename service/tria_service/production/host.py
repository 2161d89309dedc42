"""The diagnostics ``host`` section: the resources of the machine the service runs on.

A remote gate cannot measure the service's host itself; its preflight compares these figures with
the target's minimums. Each figure is read on its own, so one that cannot be read (a deleted
working directory, a platform without load averages) is None with its error, and the rest stay.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psutil

MIB = 1024 * 1024


def _mib(size: int) -> float:
    return round(size / MIB, 1)


_READINGS: dict[str, Callable[[], object]] = {
    "cpus": psutil.cpu_count,
    "memory_total_mb": lambda: _mib(psutil.virtual_memory().total),
    "memory_available_mb": lambda: _mib(psutil.virtual_memory().available),
    "disk_path": os.getcwd,
    "disk_free_mb": lambda: _mib(psutil.disk_usage(os.getcwd()).free),
    "load_1m": lambda: round(psutil.getloadavg()[0], 2),
    "process_rss_mb": lambda: _mib(psutil.Process().memory_info().rss),
}


def host_section() -> dict[str, Any]:
    """Logical CPUs, memory total and available, free disk of the working directory's
    filesystem (``disk_path``), the 1-minute load average and this process's resident memory;
    sizes in MiB. ``errors`` names each figure that could not be read, and why."""
    section: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, read in _READINGS.items():
        try:
            section[name] = read()
        except (psutil.Error, OSError) as exc:
            section[name] = None
            errors[name] = f"{type(exc).__name__}: {exc}"
    section["errors"] = errors
    return section
