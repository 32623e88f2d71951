"""The one reader of ``/proc`` and of the NVIDIA device files processes hold open.

Everything here is read from the live system (a root directory other than ``/proc`` can be given
for tests of odd entries). Processes come and go while they are read: any entry that vanishes,
or that this user may not read, is skipped, never an error. Nothing here decides; the pure
functions of :mod:`gpu_devbox.attribution.attribute` do.

Costs (see ``benchmarks/attribution_scan.py``): one ``stat`` read per process and one
``readlink`` per open file descriptor. Only a container with its own PID namespace needs the
open files of every process; elsewhere only the processes NVML names and their ancestors are
read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from gpu_devbox.attribution.model import LocalProcess

#: The inode of the initial PID namespace (``PROC_PID_INIT_INO`` in the Linux kernel, since 3.8).
PROC_PID_INIT_INO = 0xEFFFFFFC

#: A GPU's device file: ``/dev/nvidia<minor>`` (not ``nvidiactl``, ``nvidia-uvm``, ``nvidia-caps``).
_DEVICE = re.compile(r"/dev/nvidia([0-9]+)")
_NAMESPACE = re.compile(r"pid:\[([0-9]+)\]")
#: How far up the tree an ancestor is looked for (a loop in a racing read cannot go on forever).
MAX_DEPTH = 256


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class ProcReader:
    """Reads processes and their open NVIDIA device files from a ``/proc`` file system."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc

    # ------------------------------------------------------------------ namespaces
    def nvml_pids_are_ours(self) -> bool:
        """Whether NVML's PIDs are this ``/proc``'s: its PID namespace is the initial one.

        The driver reports PIDs of the initial PID namespace, whatever namespace asks. A
        workstation, a VM (its own kernel), ``hostPID: true`` and a host ``/proc`` mounted in a
        container all see that namespace; a container with its own namespace does not. When the
        namespace cannot be read, the answer is no: matching by device files is right either way.
        """
        inode = self._proc_namespace_inode()
        return inode == PROC_PID_INIT_INO

    def _proc_namespace_inode(self) -> int | None:
        """The inode of the PID namespace this ``/proc`` was mounted for."""
        status = _read(f"{self.proc}/self/status") or b""
        depth = 1
        for line in status.splitlines():
            if line.startswith(b"NSpid:"):
                depth = len(line.split()) - 1
                break
        # One NSpid entry: this /proc is of our own namespace; more: of an ancestor's, whose
        # first process is this /proc's PID 1.
        link = f"{self.proc}/self/ns/pid" if depth <= 1 else f"{self.proc}/1/ns/pid"
        try:
            match = _NAMESPACE.fullmatch(os.readlink(link))
        except OSError:
            return None
        return int(match.group(1)) if match else None

    # ------------------------------------------------------------------ processes
    def pids(self) -> list[int]:
        """Every PID this ``/proc`` lists (thread group leaders)."""
        try:
            with os.scandir(self.proc) as entries:
                return [int(e.name) for e in entries if e.name.isdigit()]
        except OSError:
            return []

    def process(self, pid: int) -> LocalProcess | None:
        """The process ``pid`` (without its open files); ``None`` once it is gone."""
        base = f"{self.proc}/{pid}"
        stat = _read(f"{base}/stat")
        if not stat:
            return None
        # "pid (comm) state ppid ..."; comm may hold spaces and parentheses: split at the last ")".
        close = stat.rfind(b")")
        fields = stat[close + 2 :].split()
        if close < 0 or len(fields) < 20:
            return None
        comm = stat[stat.find(b"(") + 1 : close].decode("utf-8", "replace")
        try:
            uid: int | None = os.stat(base).st_uid
        except OSError:
            uid = None
        raw = _read(f"{base}/cmdline") or b""
        parts = raw.rstrip(b"\0").split(b"\0") if raw else []
        cmdline = tuple(part.decode("utf-8", "replace") for part in parts)
        return LocalProcess(
            pid=pid,
            ppid=int(fields[1]),
            uid=uid,
            start_time=int(fields[19]),
            comm=comm,
            cmdline=cmdline,
        )

    def devices(self, pid: int) -> frozenset[int] | None:
        """The minor numbers of the ``/dev/nvidia<minor>`` files ``pid`` holds open.

        ``None`` when its open files cannot be listed (gone, or another user's).
        """
        directory = f"{self.proc}/{pid}/fd"
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        minors = set()
        for name in names:
            try:
                target = os.readlink(f"{directory}/{name}")
            except OSError:  # closed meanwhile; the others still count
                continue
            match = _DEVICE.fullmatch(target)
            if match:
                minors.add(int(match.group(1)))
        return frozenset(minors)

    def device_holders(self) -> dict[int, frozenset[int]]:
        """Every process that holds a ``/dev/nvidia<minor>`` open, with those minors."""
        holders = {}
        for pid in self.pids():
            minors = self.devices(pid)
            if minors:
                holders[pid] = minors
        return holders

    def lineage(
        self,
        pids: Iterable[int],
        devices: dict[int, frozenset[int]] | None = None,
        known: dict[int, LocalProcess] | None = None,
    ) -> dict[int, LocalProcess]:
        """``pids`` and all their ancestors that still run, by PID.

        Args:
            pids: where to start.
            devices: open device files already read, by PID (kept in the records).
            known: records read before in the same pass (not read again).
        """
        devices = devices or {}
        table: dict[int, LocalProcess] = dict(known or {})
        for start in pids:
            pid = start
            for _ in range(MAX_DEPTH):
                if pid <= 0 or pid in table:
                    break
                process = self.process(pid)
                if process is None:
                    break
                if pid in devices:
                    process = LocalProcess(
                        pid=process.pid,
                        ppid=process.ppid,
                        uid=process.uid,
                        start_time=process.start_time,
                        comm=process.comm,
                        cmdline=process.cmdline,
                        devices=devices[pid],
                    )
                table[pid] = process
                pid = process.ppid
        return table
