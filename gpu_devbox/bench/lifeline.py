"""The benchmark worker dies with the process that started it, however that process ends.

A worker holds GPU memory; if the Jupyter server is killed hard (SIGKILL, the OOM killer, a
crashed container runtime), nothing runs the runner's cancel, and a worker busy in a long kernel
would only notice when it next writes to its closed stdout. Two independent lifelines:

* On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment the
  thread that started it ends. The runner starts each worker from the thread that supervises it
  for its whole life, so that moment is the death of the server process. The race where the
  parent dies before the ``prctl`` is closed by comparing ``getppid()`` with the parent the
  runner named.
* Everywhere, a pipe: the runner keeps the write end of the worker's stdin open and never writes
  to it. Every open file of a process is closed by the kernel when it dies, so end-of-file on
  stdin means the parent is gone; a watchdog thread then kills the worker's process group (the
  worker and anything it started).

Both are armed only when the runner names the parent in :data:`PARENT_ENV`, so running the worker
by hand is unaffected.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import sys
import threading

#: The variable through which the runner names the worker's parent process id.
PARENT_ENV = "GPU_DEVBOX_WORKER_PARENT"
#: Exit status of a worker whose parent was already gone when it started.
EXIT_ORPHANED = 3
#: ``prctl`` option number (``linux/prctl.h``).
_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Have Linux send ``sig`` to this process when its parent thread ends (``False``: cannot)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _kill_own_group() -> None:
    """SIGKILL this process and, when it leads its own group, everything it started."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 4096):
            pass  # the runner never writes; anything read is ignored
    _kill_own_group()  # end-of-file (or an error): the parent is gone


def watch_pipe(fd: int = 0) -> threading.Thread | None:
    """Kill this process group when ``fd`` (a pipe from the parent) reaches end-of-file.

    Returns the watchdog thread, or ``None`` when ``fd`` is not a pipe (nothing to watch).
    """
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
    except OSError:
        return None
    thread = threading.Thread(target=_watch, args=(fd,), name="parent-watchdog", daemon=True)
    thread.start()
    return thread


def bind_to_parent(environ: dict[str, str] | None = None, *, pdeathsig: bool = True) -> bool:
    """Arm both lifelines when the runner named a parent; whether it did.

    Exits at once (status :data:`EXIT_ORPHANED`) when the named parent is already gone.
    """
    raw = (os.environ if environ is None else environ).get(PARENT_ENV, "")
    if not raw.isdigit():
        return False
    if pdeathsig:
        set_parent_death_signal()
    if os.getppid() != int(raw):  # the parent died before the signal was armed
        os._exit(EXIT_ORPHANED)
    watch_pipe(0)
    return True
