"""Runs benchmarks: one worker subprocess at a time, cancellable, bounded in time, never hung.

The runner is plain Python (threads and a subprocess); the Jupyter server and the CLI both use
it. Each run gets a worker process in a new session (its own process group), so a cancel or a
timeout kills the worker and anything it started at once, and the driver frees the run's GPU
memory with it. A worker also dies at once when the process that started it dies, even by
SIGKILL (:mod:`gpu_devbox.bench.lifeline`). The runner reads the worker's JSON-lines protocol (see
:mod:`gpu_devbox.bench.worker`), keeps the run's progress and results, compares each figure with
the datasheet, tells a listener about every step, and appends the finished run to the history.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from gpu_devbox._version import __version__
from gpu_devbox.bench import lifeline, suites
from gpu_devbox.bench.history import History
from gpu_devbox.bench.peaks import load_table
from gpu_devbox.bench.run import DeviceTarget, Run, RunRequest

log = logging.getLogger("gpu_devbox.bench")

#: How the worker is started (tests pass other programs that speak the same protocol).
WORKER_ARGV = (sys.executable, "-m", "gpu_devbox.bench.worker")
#: Seconds a cancelled worker gets to exit on SIGTERM before SIGKILL.
TERM_GRACE = 0.5
#: Seconds the output readers get to drain once the worker has exited.
READ_GRACE = 2.0
#: Lines longer than this on the worker's stdout are ignored (a runaway print, not an event).
MAX_LINE = 1 << 20

Listener = Callable[[dict[str, Any]], None]

__all__ = ["BenchmarkRunner", "DeviceTarget", "RunFinished", "RunRequest", "RunnerBusy"]


class RunnerBusy(Exception):
    """A run is in progress; only one runs at a time."""

    def __init__(self, running_id: str) -> None:
        super().__init__(f"benchmark {running_id} is still running")
        self.running_id = running_id


class RunFinished(Exception):
    """The run to cancel has already finished."""


class BenchmarkRunner:
    """Starts, watches, cancels and records benchmark runs, one at a time.

    Args:
        history: where finished runs are appended (``None``: nowhere).
        on_event: called from the runner's threads with every progress event.
        worker_argv: the worker command (the default runs :mod:`gpu_devbox.bench.worker`).
        keep: how many finished runs stay in memory besides the history.
        logger: where to log.
    """

    def __init__(
        self,
        *,
        history: History | None = None,
        on_event: Listener | None = None,
        worker_argv: Sequence[str] = WORKER_ARGV,
        keep: int = 20,
        logger: logging.Logger | None = None,
    ) -> None:
        self.history = history
        self.on_event = on_event
        self.worker_argv = tuple(worker_argv)
        self.keep = keep
        self.log = logger or log
        self._lock = threading.Lock()
        self._runs: collections.OrderedDict[str, Run] = collections.OrderedDict()
        self._current: Run | None = None
        self._closed = False

    # ------------------------------------------------------------------ queries
    @property
    def running_id(self) -> str | None:
        """The id of the run in progress, if any."""
        with self._lock:
            return self._current.id if self._current is not None else None

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The document of a run started by this runner (``None``: unknown here)."""
        with self._lock:
            run = self._runs.get(run_id)
        return run.document() if run is not None else None

    def current(self) -> dict[str, Any] | None:
        """The document of the run in progress, if any."""
        with self._lock:
            run = self._current
        return run.document() if run is not None else None

    # ------------------------------------------------------------------ lifecycle
    def start(self, request: RunRequest) -> dict[str, Any]:
        """Start a run in a worker process and return its first document.

        Raises:
            RunnerBusy: another run is in progress.
            suites.SuiteError: the request names an unknown suite.
            OSError: the worker could not be started.
        """
        spec = suites.suite(request.suite)
        timeout = request.timeout or spec.timeout * max(1, len(request.targets))
        readers: list[threading.Thread] = []
        registered = threading.Event()
        with self._lock:
            if self._closed:
                raise RuntimeError("the benchmark runner is closed")
            if self._current is not None:
                raise RunnerBusy(self._current.id)
            run = Run(uuid.uuid4().hex, request, timeout=timeout)
            run.environment.update({"gpu_devbox": __version__, "host": platform.node()})
            spawned: concurrent.futures.Future[None] = concurrent.futures.Future()
            threading.Thread(
                target=self._own,
                args=(run, request, spawned, registered, readers),
                name=f"gpu-devbox-bench-{run.id[:8]}",
                daemon=True,
            ).start()
            try:
                spawned.result()  # the worker's OSError, if it could not start
                assert run.proc is not None
                run.started = time.time()
                run.environment["worker_pid"] = run.proc.pid
                self._current = run
                self._runs[run.id] = run
                while len(self._runs) > self.keep:
                    oldest = next(iter(self._runs))
                    if oldest == run.id:
                        break
                    del self._runs[oldest]
            except BaseException:
                self._kill(run, signal.SIGKILL)  # started but not registered: no one would read it
                registered.set()
                raise
        try:
            self.log.info(
                "benchmark %s: %s suite started (pid %d)", run.id, spec.name, run.proc.pid
            )
            # Announced before anything is read from the worker, so "started" is always first.
            self._emit(run, "started", {"run": run.document()})
            run.timer = threading.Timer(timeout, self._time_out, (run,))
            run.timer.daemon = True
            run.timer.start()
            readers += [
                threading.Thread(target=self._read_stdout, args=(run,), daemon=True),
                threading.Thread(target=self._read_stderr, args=(run,), daemon=True),
            ]
            for reader in readers:
                reader.start()
        finally:
            registered.set()
        return run.document()

    def cancel(self, run_id: str, timeout: float = 2.0) -> dict[str, Any]:
        """Stop a run: its worker (and everything in its process group) is gone on return.

        Raises:
            KeyError: no run with this id is known here.
            RunFinished: the run has already finished.
        """
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            raise KeyError(run_id)
        if run.done.is_set():
            raise RunFinished(f"benchmark {run_id} already finished ({run.state})")
        run.cancel_requested = True
        self._kill(run, signal.SIGTERM)
        if not run.exited.wait(TERM_GRACE):
            self._kill(run, signal.SIGKILL)
        run.done.wait(timeout)
        return run.document()

    def wait(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run has finished (or ``timeout`` passed); its document."""
        with self._lock:
            run = self._runs[run_id]
        run.done.wait(timeout)
        return run.document()

    def close(self) -> None:
        """Cancel the run in progress (if any) and refuse new ones."""
        with self._lock:
            self._closed = True
            run = self._current
        if run is not None and not run.done.is_set():
            with contextlib.suppress(KeyError, RunFinished):
                self.cancel(run.id)

    # ------------------------------------------------------------------ the worker
    def _own(
        self,
        run: Run,
        request: RunRequest,
        spawned: concurrent.futures.Future[None],
        registered: threading.Event,
        readers: list[threading.Thread],
    ) -> None:
        """Start the worker, then supervise it until it exits (a thread of its own).

        The thread that starts a worker is its parent as far as Linux's parent-death signal is
        concerned (see :mod:`gpu_devbox.bench.lifeline`); this one lives exactly as long as the
        worker, so the signal fires when the server process dies and at no other time.
        """
        try:
            run.proc = subprocess.Popen(
                [*self.worker_argv, *self._worker_args(request)],
                stdin=subprocess.PIPE,  # never written: its end-of-file tells the worker we died
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._worker_env(request),
                start_new_session=True,
            )
        except OSError as exc:
            spawned.set_exception(exc)
            return
        spawned.set_result(None)
        registered.wait()
        self._supervise(run, readers)

    @staticmethod
    def _worker_args(request: RunRequest) -> list[str]:
        return [
            "--suite",
            request.suite,
            "--gpus",
            str(len(request.targets)),
            "--backend",
            request.backend,
            "--max-memory-fraction",
            repr(request.max_memory_fraction),
            "--sizes",
            json.dumps(dict(request.sizes)),
        ]

    @staticmethod
    def _worker_env(request: RunRequest) -> dict[str, str]:
        env = dict(os.environ)
        # The worker measures exactly the chosen GPUs, in the order asked for, as CUDA
        # devices 0..n-1 (UUIDs: immune to CUDA's own device ordering, and MIG-aware).
        env["CUDA_VISIBLE_DEVICES"] = ",".join(t.uuid for t in request.targets)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUPY_TF32"] = "0"  # fp32 must be fp32; tf32 is measured separately
        env["PYTHONUNBUFFERED"] = "1"
        env[lifeline.PARENT_ENV] = str(os.getpid())
        return env

    def _kill(self, run: Run, sig: signal.Signals) -> None:
        proc = run.proc
        if proc is None or run.exited.is_set():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _time_out(self, run: Run) -> None:
        if run.exited.is_set():
            return
        run.timed_out = True
        self.log.warning("benchmark %s: timed out after %.0f s", run.id, run.timeout)
        self._kill(run, signal.SIGKILL)

    def _read_stderr(self, run: Run) -> None:
        assert run.proc is not None
        assert run.proc.stderr is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in run.proc.stderr:
                text = raw.decode("utf-8", errors="replace").rstrip()
                if text:
                    run.stderr_tail.append(text[:500])

    def _read_stdout(self, run: Run) -> None:
        assert run.proc is not None
        assert run.proc.stdout is not None
        table = load_table()
        try:
            while True:
                raw = run.proc.stdout.readline(MAX_LINE)
                if not raw:
                    break
                for kind, data in run.handle_line(raw, table):
                    self._emit(run, kind, data)
        except (OSError, ValueError):
            self.log.exception("benchmark %s: reading the worker failed", run.id)

    def _supervise(self, run: Run, readers: list[threading.Thread]) -> None:
        proc = run.proc
        assert proc is not None
        try:
            _wait_unreaped(proc)
            # Whatever the worker started dies with it: the group id stays reserved while the
            # worker is an unreaped zombie, so this can only reach the worker's own group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
            run.exited.set()
            if run.timer is not None:
                run.timer.cancel()
            for reader in readers:
                reader.join(READ_GRACE)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            run.finish(proc.returncode)
            self.log.info("benchmark %s: %s", run.id, run.summary())
            document = run.document()
            if self.history is not None:
                try:
                    self.history.append(document)
                except OSError as exc:
                    self.log.warning("benchmark %s: not saved to the history: %s", run.id, exc)
            with self._lock:
                if self._current is run:
                    self._current = None
            run.done.set()
            self._emit(run, "finished", {"error": document["error"], "run": document})

    def _emit(self, run: Run, kind: str, data: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        event = {"id": run.id, "event": kind, "state": run.state, "progress": run.progress()}
        event.update(data)
        try:
            self.on_event(event)
        except Exception:
            self.log.exception("benchmark %s: a listener failed", run.id)


def _wait_unreaped(proc: subprocess.Popen[bytes]) -> None:
    """Block until ``proc`` exits, leaving it a zombie (its pid and group id stay reserved)."""
    if hasattr(os, "waitid"):
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            return
    proc.wait()
