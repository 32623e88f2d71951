"""Idle-GPU culling, the pure parts: which servers to read, what they said, the decision per
server, the GPU-hours arithmetic and Prometheus' answers.

The culler service (``gpu_devbox_culler``) does the I/O around these: the hub's REST API, the
servers' status through the proxy, Prometheus, SQLite and the admin pages.
"""

from __future__ import annotations

from gpu_devbox.culling.accounting import Usage, day_of, interval_usage, split_days, totals
from gpu_devbox.culling.decide import REASONS, Action, Decision, decide, human_duration
from gpu_devbox.culling.observe import (
    GPUs,
    KeepRunning,
    Observation,
    ServerCull,
    Unreadable,
    describe_gpus,
    parse_gpus,
    parse_status,
)
from gpu_devbox.culling.servers import RunningServer, parse_time, running_servers

__all__ = [
    "REASONS",
    "Action",
    "Decision",
    "GPUs",
    "KeepRunning",
    "Observation",
    "RunningServer",
    "ServerCull",
    "Unreadable",
    "Usage",
    "day_of",
    "decide",
    "describe_gpus",
    "human_duration",
    "interval_usage",
    "parse_gpus",
    "parse_status",
    "parse_time",
    "running_servers",
    "split_days",
    "totals",
]
