"""What process attribution works on: this server's processes, kernels and terminals, and owners.

Plain data, no I/O. :mod:`gpu_devbox.attribution.procfs` reads :class:`LocalProcess` records from
``/proc``; the server extension describes its kernels and terminals as a :class:`Workspace`; the
pure functions of :mod:`gpu_devbox.attribution.attribute` decide owners from both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

#: How long a command line an owner shows (characters; longer ones end in "…").
CMDLINE_CHARS = 120


@dataclasses.dataclass(frozen=True)
class LocalProcess:
    """One process as this server's ``/proc`` shows it."""

    pid: int
    ppid: int
    #: Its owner's user id (of ``/proc/<pid>``); ``None`` when it could not be read.
    uid: int | None
    #: ``/proc/<pid>/stat``'s start time (clock ticks since boot): tells a reused PID apart.
    start_time: int
    #: The command name (``comm``), for processes without a command line (kernel threads).
    comm: str
    cmdline: tuple[str, ...] = ()
    #: The minor numbers of the ``/dev/nvidia<minor>`` files it holds open; ``None`` when its
    #: open files were not read (or could not be: another user's process).
    devices: frozenset[int] | None = None

    def command(self, limit: int = CMDLINE_CHARS) -> str:
        """The command line as a person reads it, shortened to ``limit`` characters."""
        text = " ".join(self.cmdline) if self.cmdline else f"[{self.comm}]"
        return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclasses.dataclass(frozen=True)
class ProcessTable:
    """The processes attribution looked at, and whose PIDs NVML reports.

    A table need not hold every process: it holds those that matter (the ones holding NVIDIA
    device files, or the PIDs NVML listed) and their ancestors.
    """

    processes: Mapping[int, LocalProcess]
    #: NVML's PIDs are these (a workstation, a VM, ``hostPID``); ``False`` in a container with
    #: its own PID namespace, where NVML reports the host's PIDs.
    shared_namespace: bool
    #: The server's own PID and user id.
    self_pid: int
    self_uid: int

    def get(self, pid: int) -> LocalProcess | None:
        """The process ``pid``, if the table has it."""
        return self.processes.get(pid)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A kernel of this server, as its kernel manager describes it."""

    id: str
    name: str
    #: The notebook (or console) path of its session, relative to the server's root.
    path: str | None
    #: Its root process (the provisioner's, for a local kernel); ``None`` for a remote one.
    pid: int | None
    execution_state: str
    #: Unix seconds of its last message.
    last_activity: float | None
    connections: int = 0


@dataclasses.dataclass(frozen=True)
class Terminal:
    """A terminal of this server: its shell is the root of everything started from it."""

    name: str
    pid: int | None
    last_activity: float | None


@dataclasses.dataclass(frozen=True)
class Workspace:
    """This server's kernels and terminals at one moment."""

    kernels: tuple[Kernel, ...] = ()
    terminals: tuple[Terminal, ...] = ()
    #: The server's own PID: the root of its process tree.
    server_pid: int | None = None

    @property
    def roots(self) -> dict[int, OwnerKey]:
        """The root PID of each kernel and terminal, and whose it is."""
        roots: dict[int, OwnerKey] = {}
        for terminal in self.terminals:
            if terminal.pid is not None:
                roots[terminal.pid] = OwnerKey("terminal", terminal.name)
        for kernel in self.kernels:
            if kernel.pid is not None:
                roots[kernel.pid] = OwnerKey("kernel", kernel.id)
        return roots

    def kernel(self, kernel_id: str) -> Kernel | None:
        """The kernel with this id, if this workspace has it."""
        for kernel in self.kernels:
            if kernel.id == kernel_id:
                return kernel
        return None


@dataclasses.dataclass(frozen=True, order=True)
class OwnerKey:
    """Whose a GPU process is: ``kernel`` (id), ``terminal`` (name), ``process`` (the PID of the
    process tree's root, in this server's namespace) or ``other`` (not this server's)."""

    kind: str
    ident: str | int = ""


OTHER = OwnerKey("other")


def render_owner(key: OwnerKey, workspace: Workspace, table: ProcessTable | None) -> dict[str, Any]:
    """The ``owner`` object of the REST API for ``key``."""
    if key.kind == "kernel":
        kernel = workspace.kernel(str(key.ident))
        return {
            "type": "kernel",
            "kernel_id": str(key.ident),
            "kernel_name": kernel.name if kernel else None,
            "path": kernel.path if kernel else None,
            "execution_state": kernel.execution_state if kernel else None,
        }
    if key.kind == "terminal":
        return {"type": "terminal", "name": str(key.ident)}
    if key.kind == "process":
        process = table.get(int(key.ident)) if table is not None else None
        return {
            "type": "process",
            "cmdline": process.command() if process is not None else f"pid {key.ident}",
        }
    return {"type": "other"}
