"""Facts about the host the benchmark runs on: available memory and the CPU's name."""

from __future__ import annotations

import os
import pathlib
import platform


def available_memory(meminfo: str = "/proc/meminfo") -> int:
    """Bytes of host memory available to a new process now (``MemAvailable`` on Linux)."""
    try:
        for line in pathlib.Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def total_memory() -> int | None:
    """Bytes of host memory installed, when the platform says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name and the cores this process may use: ``"Xeon ... (2 cores)"``."""
    name = platform.processor() or platform.machine() or "CPU"
    try:
        for line in pathlib.Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return f"{name} ({cores} cores)"
