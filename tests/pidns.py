"""Run a command in a new PID namespace with NVIDIA device files, as a container sees them.

``unshare --pid --fork --mount-proc`` gives the command its own PID namespace and ``/proc`` (so
it cannot see the host's processes, and NVML's host PIDs mean nothing to it), and a private
mount namespace in which ``/dev`` is replaced by a small tmpfs: the usual character devices
bind-mounted from the host, a devpts instance of its own (terminals work), a ``/dev/shm``, and
regular files named ``nvidia0`` ... ``nvidia<N-1>``, ``nvidiactl`` and ``nvidia-uvm`` standing in
for the driver's device files. A process that opens ``/dev/nvidia1`` then shows it in
``/proc/<pid>/fd`` exactly as a CUDA process does. Needs root (this machine's tests and CI run as
root); :data:`AVAILABLE` says whether it can run here.

From outside, :func:`host_pid` maps a PID of the namespace to the host's, as NVML reports it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

SETUP = r"""
set -euo pipefail
dev="$1"; gpus="$2"; shift 2
mount -t tmpfs -o mode=755 tmpfs "$dev"
for f in null zero random urandom tty full; do
  touch "$dev/$f"; mount --bind "/dev/$f" "$dev/$f"
done
mkdir "$dev/pts" "$dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$dev/pts"
ln -s pts/ptmx "$dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$dev/shm"
for ((i = 0; i < gpus; i++)); do : > "$dev/nvidia$i"; done
: > "$dev/nvidiactl"; : > "$dev/nvidia-uvm"
chmod 666 "$dev"/nvidia*
mount --move "$dev" /dev
exec "$@"
"""

#: Whether new PID and mount namespaces can be made here.
AVAILABLE = os.geteuid() == 0 and shutil.which("unshare") is not None
REASON = "needs root and unshare(1) to make PID and mount namespaces"


def start(
    argv: Sequence[str], workdir: pathlib.Path, *, gpus: int = 2, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as PID 1 of a new PID namespace with ``gpus`` NVIDIA device files."""
    dev = workdir / "dev"
    dev.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",  # when unshare dies, PID 1 (and so the whole namespace) dies too
            "--propagation",
            "private",
            "bash",
            "-c",
            SETUP,
            "setup",
            str(dev),
            str(gpus),
            *argv,
        ],
        **popen,
    )


def namespace_of(host_pid: int) -> str:
    """The PID namespace of a host process, e.g. ``pid:[4026532175]``."""
    return os.readlink(f"/proc/{host_pid}/ns/pid")


def children(host_pid: int) -> list[int]:
    """The host PIDs of a process's children."""
    out = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2 :].split()[1]) == host_pid:
                out.append(int(entry.name))
    return out


def init_pid(unshare: subprocess.Popen[bytes]) -> int:
    """The host PID of the namespace's PID 1 (the child ``unshare --fork`` made)."""
    [child] = children(unshare.pid)
    return child


def host_pid(namespace: str, pid: int) -> int | None:
    """The host's PID of the process that is ``pid`` in ``namespace`` (``NSpid``'s last entry)."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != namespace:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and int(line.split()[-1]) == pid:
                return int(entry.name)
    return None


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """End the namespace: its PID 1 is asked to stop, then killed (which ends every process in
    the namespace)."""
    if process.poll() is not None:
        return
    for child in children(process.pid):
        with contextlib.suppress(OSError):  # gone already
            os.kill(child, 15)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
