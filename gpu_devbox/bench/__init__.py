"""The GPU benchmark: measured TFLOP/s and bandwidth next to the datasheet peaks.

Plain Python: nothing here imports jupyter_server or tornado, and nothing in the calling
process imports a GPU library. Measurements run in a worker subprocess
(:mod:`gpu_devbox.bench.worker`) that the :class:`BenchmarkRunner` starts, watches and stops.
"""

from __future__ import annotations

from gpu_devbox.bench.history import History
from gpu_devbox.bench.peaks import PeakTable, load_table
from gpu_devbox.bench.run import DeviceTarget, RunRequest
from gpu_devbox.bench.runner import BenchmarkRunner, RunFinished, RunnerBusy
from gpu_devbox.bench.suites import SUITES, SuiteError

__all__ = [
    "SUITES",
    "BenchmarkRunner",
    "DeviceTarget",
    "History",
    "PeakTable",
    "RunFinished",
    "RunRequest",
    "RunnerBusy",
    "SuiteError",
    "load_table",
]
