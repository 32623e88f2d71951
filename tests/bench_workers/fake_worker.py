"""A stand-in for the benchmark worker that misbehaves on purpose: ``fake_worker.py MODE``.

It speaks the worker's protocol (see gpu_devbox.bench.worker) and then, by MODE:

hang       starts a child process (same process group) and sleeps; the child's pid is written
           to $FAKE_WORKER_CHILD_PIDFILE so that a test can check it is gone after a cancel
sigkill    kills itself with SIGKILL in the middle of a step (what the OOM killer does)
exit3      exits with status 3 after printing a message on stderr
raise      raises an uncaught exception (a traceback on stderr, status 1)
oom        reports an out-of-memory error event, as the real worker does, and exits 1
noise      prints non-JSON lines on stdout, then ends with status 0 but without ``done``

The runner appends its own arguments; they are ignored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def emit(event: str, **data: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def main() -> int:
    mode = sys.argv[1]
    child = None
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        pidfile = os.environ.get("FAKE_WORKER_CHILD_PIDFILE")
        if pidfile:
            with open(pidfile, "w") as handle:
                handle.write(str(child.pid))
    emit(
        "hello",
        backend="fake",
        kind="cpu",
        timer="wall_clock",
        versions={"python": "3"},
        pid=os.getpid(),
        total=3,
        devices=1,
        suite="quick",
    )
    emit("device", device={"ordinal": 0, "name": "fake CPU"}, sizes={"matmul_n": 16})
    emit("step", index=0, total=3, device=0, id="matmul_fp32", label="matmul fp32")
    if mode == "hang":
        time.sleep(600)
    elif mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "exit3":
        sys.stderr.write("fake worker: the device vanished\n")
        return 3
    elif mode == "raise":
        raise RuntimeError("fake worker exploded")
    elif mode == "oom":
        emit("error", code="out_of_memory", message="out of memory: tried to allocate 80 GiB")
        return 1
    elif mode == "noise":
        print("this is not JSON")
        print("[1, 2, 3]")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
