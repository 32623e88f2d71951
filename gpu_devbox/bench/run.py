"""One benchmark run: what was asked, what the worker said, and the document clients read.

The runner owns the process; this module owns the state. :meth:`Run.handle_line` turns one line
of the worker's protocol into state changes (and the events to publish), :meth:`Run.finish`
decides how the run ended, and :meth:`Run.document` is the JSON served by ``GET
benchmarks/{id}``, published on the stream and stored in the history.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

from gpu_devbox.bench.peaks import ModelMatch, PeakTable


@dataclasses.dataclass(frozen=True)
class DeviceTarget:
    """A GPU to measure, as gpu-devbox's sampler sees it."""

    #: The NVML index shown by ``GET gpus`` and ``gpu-devbox metrics``.
    index: int
    #: ``GPU-...`` or ``MIG-...``: how the worker is pointed at it (CUDA_VISIBLE_DEVICES).
    uuid: str
    name: str
    compute_capability: str | None = None
    memory_free: int | None = None
    driver_version: str | None = None


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What to run."""

    suite: str
    #: The GPUs, in order; empty: benchmark the CPU.
    targets: tuple[DeviceTarget, ...] = ()
    #: Explicit sizes (``matmul_n``, ``copy_bytes``, ``transfer_bytes``), already range-checked.
    sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    backend: str = "auto"
    #: Seconds before the run is stopped (default: the suite's limit x number of devices).
    timeout: float | None = None
    max_memory_fraction: float = 0.5


class Run:
    """The mutable state of one run; every method is safe to call from any thread."""

    def __init__(self, run_id: str, request: RunRequest, *, timeout: float) -> None:
        self.id = run_id
        self.request = request
        self.timeout = timeout
        self.state = "running"
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.error: dict[str, str] | None = None
        self.environment: dict[str, Any] = {
            "backend": None,
            "kind": None,
            "timer": None,
            "versions": {},
            "driver_version": next((t.driver_version for t in request.targets), None),
        }
        self.devices: list[dict[str, Any]] = []
        self.total: int | None = None
        self.completed = 0
        self.step: dict[str, Any] | None = None
        self.worker_error: dict[str, str] | None = None
        self.got_done = False
        self.cancel_requested = False
        self.timed_out = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.timer: threading.Timer | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.exited = threading.Event()
        self.done = threading.Event()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ protocol
    def handle_line(self, raw: bytes, table: PeakTable) -> list[tuple[str, dict[str, Any]]]:
        """Apply one protocol line; the events to publish (none for noise)."""
        try:
            event = json.loads(raw)
        except ValueError:
            self.stderr_tail.append("stdout: " + raw.decode("utf-8", "replace").strip()[:500])
            return []
        if not isinstance(event, dict):
            return []
        kind = event.get("event")
        with self._lock:
            if kind == "hello":
                self.environment.update(
                    backend=event.get("backend"),
                    kind=event.get("kind"),
                    timer=event.get("timer"),
                    versions=event.get("versions") or {},
                )
                self.total = event.get("total")
                return [("progress", {})]
            if kind == "device":
                self.devices.append(self._device(event, table))
                return []
            if kind == "step":
                self.step = {
                    "id": event.get("id"),
                    "label": event.get("label"),
                    "device": self._device_index(event.get("device")),
                }
                return [("step", {})]
            if kind == "measurement" and self.devices:
                device = self.devices[-1]
                measurement = table.annotate(event["measurement"], device.get("_row"))
                device["measurements"].append(measurement)
                self.completed += 1
                return [("measurement", {"device": device["index"], "measurement": measurement})]
            if kind == "error":
                self.worker_error = {
                    "code": str(event.get("code", "error")),
                    "message": str(event.get("message", "")),
                }
                return []
            if kind == "done":
                self.got_done = True
        return []

    def _device_index(self, ordinal: Any) -> int | None:
        targets = self.request.targets
        if isinstance(ordinal, int) and 0 <= ordinal < len(targets):
            return targets[ordinal].index
        return None

    def _device(self, event: dict[str, Any], table: PeakTable) -> dict[str, Any]:
        info = event.get("device") or {}
        ordinal = info.get("ordinal", 0)
        targets = self.request.targets
        target = targets[ordinal] if isinstance(ordinal, int) and ordinal < len(targets) else None
        if target is not None:
            match = table.match(target.name, info.get("compute_capability"))
        else:
            match = ModelMatch(None, "a CPU has no datasheet figures in gpu-devbox's table")
        return {
            "index": target.index if target else None,
            "uuid": target.uuid if target else None,
            "name": target.name if target else info.get("name"),
            "driver_version": target.driver_version if target else None,
            "backend_device": info,
            "datasheet": match.describe(),
            "sizes": event.get("sizes"),
            "measurements": [],
            # The matched row, kept for this device's measurements; never serialised.
            "_row": match.row,
        }

    # ------------------------------------------------------------------ the end
    def finish(self, returncode: int | None) -> None:
        """Decide the final state from how the worker ended."""
        with self._lock:
            self.finished = time.time()
            self.step = None
            if self.cancel_requested:
                self.state = "cancelled"
                return
            self.state = "failed"
            if self.timed_out:
                self.error = {
                    "code": "timeout",
                    "message": f"stopped after {self.timeout:g} s, the time limit of the "
                    f"{self.request.suite!r} suite",
                }
            elif self.worker_error is not None:
                self.error = dict(self.worker_error)
            elif returncode is not None and returncode < 0:
                name = _signal_name(-returncode)
                hint = " (the kernel's out-of-memory killer sends it)" if name == "SIGKILL" else ""
                self.error = {"code": "killed", "message": f"the worker was killed by {name}{hint}"}
            elif returncode:
                last = self.stderr_tail[-1] if self.stderr_tail else "no output"
                self.error = {
                    "code": "crashed",
                    "message": f"the worker exited with status {returncode}: {last}",
                }
            elif not self.got_done:
                self.error = {
                    "code": "protocol",
                    "message": "the worker ended without reporting a result",
                }
            else:
                self.state = "succeeded"

    def summary(self) -> str:
        """One line for the log."""
        with self._lock:
            if self.error:
                return f"{self.state}: {self.error['message']}"
            return f"{self.state} ({self.completed} measurements)"

    # ------------------------------------------------------------------ documents
    def progress(self) -> dict[str, Any]:
        """``{done, total, fraction, step}``: how far the run is."""
        with self._lock:
            total = self.total
            fraction = 1.0 if self.state != "running" else 0.0
            if total and self.state == "running":
                fraction = min(1.0, self.completed / total)
            return {
                "done": self.completed,
                "total": total,
                "fraction": round(fraction, 4),
                "step": dict(self.step) if self.step else None,
            }

    def document(self) -> dict[str, Any]:
        """The run as clients see it (``GET benchmarks/{id}``) and the history stores it."""
        with self._lock:
            devices = [{k: v for k, v in d.items() if not k.startswith("_")} for d in self.devices]
            flagged = sum(1 for d in devices for m in d["measurements"] if m.get("flag"))
            end = self.finished if self.finished is not None else time.time()
            return {
                "id": self.id,
                "suite": self.request.suite,
                "state": self.state,
                "created": self.created,
                "started": self.started,
                "finished": self.finished,
                "duration": round(end - self.started, 3) if self.started else None,
                "request": {
                    "suite": self.request.suite,
                    "devices": [t.index for t in self.request.targets],
                    "sizes": dict(self.request.sizes),
                    "backend": self.request.backend,
                },
                "timeout": self.timeout,
                "max_memory_fraction": self.request.max_memory_fraction,
                "progress": self.progress(),
                "error": dict(self.error) if self.error else None,
                "environment": json.loads(json.dumps(self.environment)),
                "devices": json.loads(json.dumps(devices)),
                "flagged": flagged,
            }


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
