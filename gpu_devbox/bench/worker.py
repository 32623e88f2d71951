"""The benchmark worker: ``python -m gpu_devbox.bench.worker --suite quick --gpus 1``.

It runs in its own process (its own process group, started by the runner) so that the Jupyter
server never loads a CUDA library, and so that cancelling a run frees its GPU memory at once. It
dies with the server, however the server ends (see :mod:`gpu_devbox.bench.lifeline`).
The GPUs to measure are chosen by the caller through ``CUDA_VISIBLE_DEVICES``; the worker
measures CUDA devices ``0 .. gpus-1``, or the CPU with ``--gpus 0``.

Protocol: one JSON object per line on stdout (anything libraries print to stdout is sent to
stderr instead), each with an ``event`` key:

``hello``        ``{backend, kind, timer, versions, pid, suite, devices, total}``: once, first.
``device``       ``{device: DeviceInfo, sizes}``: before the steps of each device.
``step``         ``{index, total, device, id, label}``: before each measurement.
``measurement``  ``{device, measurement}``: after each measurement.
``error``        ``{code, message}``: the run cannot go on (exit status 1, or 2 for bad input).
``done``         ``{}``: every step finished (exit status 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import sys
import traceback
from collections.abc import Sequence
from typing import IO, Any

from gpu_devbox.bench import lifeline, suites
from gpu_devbox.bench.backends import BACKEND_NAMES, BackendUnavailable, select_backend
from gpu_devbox.bench.measure import Backend, run_step

#: Exit status of a run whose request was impossible (sizes that do not fit, ...).
EXIT_BAD_REQUEST = 2


class Emitter:
    """Writes protocol events, one JSON document per line, flushed at once."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: str, **data: Any) -> None:
        """Send one event."""
        self.stream.write(json.dumps({"event": event, **data}, allow_nan=False) + "\n")
        self.stream.flush()


def protocol_stream() -> IO[str]:
    """Keep the real stdout for the protocol and point file descriptor 1 at stderr.

    CUDA libraries and frameworks sometimes print to stdout; they must not corrupt the
    protocol.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(protocol_fd, "w", buffering=1, encoding="utf-8")


def prefer_as_oom_victim() -> None:
    """Ask Linux to kill this worker first if the host runs out of memory.

    Raising one's own ``oom_score_adj`` needs no privilege; the server, the kernels and the
    notebook's data are then spared, and the runner reports the run as killed.
    """
    with contextlib.suppress(OSError):
        pathlib.Path("/proc/self/oom_score_adj").write_text("1000")


def build_parser() -> argparse.ArgumentParser:
    """The worker's arguments (the runner builds them; people rarely call the worker)."""
    parser = argparse.ArgumentParser(prog="python -m gpu_devbox.bench.worker")
    parser.add_argument("--suite", choices=list(suites.SUITES), default="quick")
    parser.add_argument("--gpus", type=int, default=0, help="CUDA devices to measure (0: CPU)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    parser.add_argument("--max-memory-fraction", type=float, default=0.5)
    parser.add_argument("--sizes", default="{}", help="explicit sizes as a JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and report it on the protocol stream; returns the exit status."""
    lifeline.bind_to_parent()  # first: a worker must never outlive the server that started it
    args = build_parser().parse_args(argv)
    emit = Emitter(protocol_stream())
    prefer_as_oom_victim()
    try:
        spec = suites.suite(args.suite)
        requested = suites.parse_sizes(json.loads(args.sizes))
        if not 0 < args.max_memory_fraction <= 1 or args.gpus < 0:
            raise suites.SuiteError("max memory fraction must be in (0, 1] and gpus >= 0")
    except (suites.SuiteError, ValueError) as exc:
        emit("error", code="bad_request", message=str(exc))
        return EXIT_BAD_REQUEST
    try:
        backend = select_backend(args.backend, args.gpus)
    except BackendUnavailable as exc:
        emit("error", code="no_backend", message=str(exc))
        return 1
    steps = spec.steps[backend.kind]
    devices = backend.device_count()
    emit(
        "hello",
        backend=backend.name,
        kind=backend.kind,
        timer=backend.timer,
        versions=backend.versions(),
        pid=os.getpid(),
        suite=spec.name,
        devices=devices,
        total=devices * len(steps),
    )
    try:
        for ordinal in range(devices):
            _measure_device(backend, spec, ordinal, requested, args.max_memory_fraction, emit)
    except suites.SuiteError as exc:
        emit("error", code="bad_request", message=str(exc))
        return EXIT_BAD_REQUEST
    except Exception as exc:  # noqa: BLE001 - any failure must end as a reported, failed run
        if backend.is_out_of_memory(exc):
            emit("error", code="out_of_memory", message=f"out of memory: {_one_line(exc)}")
        else:
            traceback.print_exc()
            emit("error", code="error", message=f"{type(exc).__name__}: {_one_line(exc)}")
        return 1
    emit("done")
    return 0


def _measure_device(
    backend: Backend,
    spec: suites.SuiteSpec,
    ordinal: int,
    requested: dict[str, int],
    fraction: float,
    emit: Emitter,
) -> None:
    info = backend.use(ordinal)
    host_budget = int(backend.host_available() * fraction)
    device_budget = int((info.memory_free or 0) * fraction) if backend.kind == "gpu" else 0
    sizes = suites.suite_sizes(
        spec,
        backend.kind,
        device_budget=device_budget,
        host_budget=host_budget,
        requested=requested,
    )
    emit("device", device=info.as_dict(), sizes=sizes.as_dict())
    steps = spec.steps[backend.kind]
    for number, step in enumerate(steps):
        emit(
            "step",
            index=ordinal * len(steps) + number,
            total=backend.device_count() * len(steps),
            device=ordinal,
            id=step,
            label=suites.MEASUREMENTS[step].label,
        )
        emit("measurement", device=ordinal, measurement=run_step(backend, step, sizes, spec))


def _one_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
