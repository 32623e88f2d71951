"""This server's kernels and terminals, as process attribution needs them.

jupyter-server's kernel manager, session manager and terminal manager live on the event loop, so
they are read there: after every sampler tick, the sampler thread schedules :meth:`refresh`,
which builds a :class:`~gpu_devbox.attribution.Workspace` (kernel ids, names, root PIDs,
execution states, last activity; terminal names and shells' PIDs) and hands it to the
attributor. That costs a few microseconds per kernel; the notebook paths come from the session
manager (an SQLite query), read only when the kernels change or every ``sessions_every``
seconds. The ``/proc`` scan itself runs in the sampler thread, never here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gpu_devbox.attribution import Attributor, Kernel, Terminal, Workspace
from gpu_devbox.gpus import Sampler, Snapshot

log = logging.getLogger("gpu_devbox.kernels")


def _seconds(value: Any) -> float | None:
    """A jupyter-server activity time (an aware ``datetime``) in Unix seconds."""
    return value.timestamp() if isinstance(value, datetime) else None


def _root_pid(kernel: Any) -> int | None:
    """A kernel's root process: its provisioner's, for a local kernel (``None`` for others)."""
    pid = getattr(getattr(kernel, "provisioner", None), "pid", None)
    return pid if isinstance(pid, int) and pid > 0 else None


class KernelsService:
    """Keeps the attributor's view of this server's kernels and terminals up to date.

    Args:
        attributor: the sampler's attributor.
        sampler: the server's sampler (a refresh follows each of its ticks).
        kernel_manager, session_manager: the server's.
        terminal_manager: returns the server's terminal manager, or ``None`` without terminals
            (jupyter_server_terminals loads after this extension, so it is looked up each time).
        add_callback: schedules a callable on the event loop from any thread
            (``IOLoop.add_callback``).
    """

    def __init__(
        self,
        attributor: Attributor,
        sampler: Sampler,
        *,
        kernel_manager: Any,
        session_manager: Any,
        terminal_manager: Callable[[], Any],
        add_callback: Callable[[Callable[[], Any]], None],
        sessions_every: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.attributor = attributor
        self.sampler = sampler
        self.kernel_manager = kernel_manager
        self.session_manager = session_manager
        self._terminal_manager = terminal_manager
        self._add_callback = add_callback
        self.sessions_every = sessions_every
        self.log = logger or log
        self._paths: dict[str, str] = {}
        self._paths_for: frozenset[str] = frozenset()
        self._paths_at = -float("inf")
        self._pending = False
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Refresh after every tick of the sampler."""
        if self._unsubscribe is None:
            self._unsubscribe = self.sampler.subscribe(self._after_tick)

    def close(self) -> None:
        """Stop following the sampler."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _after_tick(self, snapshot: Snapshot) -> None:
        # the sampler thread: hand the work to the loop, once at a time
        if self._pending:
            return
        self._pending = True
        try:
            self._add_callback(self.refresh)
        except RuntimeError:  # the loop is closed: the server is stopping
            self._pending = False

    async def refresh(self) -> Workspace:
        """Read the kernels and terminals now (on the loop) and hand them to the attributor."""
        self._pending = False
        kernels = self._kernels()
        ids = frozenset(k.id for k in kernels)
        if ids - self._paths_for or time.monotonic() - self._paths_at >= self.sessions_every:
            await self._read_paths(ids)
        workspace = Workspace(
            kernels=tuple(
                Kernel(
                    id=k.id,
                    name=k.name,
                    path=self._paths.get(k.id),
                    pid=k.pid,
                    execution_state=k.execution_state,
                    last_activity=k.last_activity,
                    connections=k.connections,
                )
                for k in kernels
            ),
            terminals=self._terminals(),
            server_pid=os.getpid(),
        )
        self.attributor.set_workspace(workspace)
        return workspace

    def _kernels(self) -> list[Kernel]:
        manager = self.kernel_manager
        if manager is None:
            return []
        out = []
        for kernel_id in list(manager.list_kernel_ids()):
            try:
                kernel = manager.get_kernel(kernel_id)
                connections = manager.kernel_model(kernel_id).get("connections", 0)
            except KeyError:  # shut down since the list was taken
                continue
            out.append(
                Kernel(
                    id=kernel_id,
                    name=str(getattr(kernel, "kernel_name", "") or ""),
                    path=None,
                    pid=_root_pid(kernel),
                    execution_state=str(getattr(kernel, "execution_state", "unknown")),
                    last_activity=_seconds(getattr(kernel, "last_activity", None)),
                    connections=int(connections or 0),
                )
            )
        return out

    async def _read_paths(self, ids: frozenset[str]) -> None:
        if self.session_manager is None:
            return
        try:
            sessions = await self.session_manager.list_sessions()
        except Exception as exc:  # noqa: BLE001 - paths are a nicety; owners work without them
            self.log.debug("gpu-devbox: cannot list sessions: %s", exc)
            return
        paths = {}
        for session in sessions:
            kernel = session.get("kernel") or {}
            if kernel.get("id") in ids and session.get("path"):
                paths[kernel["id"]] = str(session["path"])
        self._paths = paths
        self._paths_for = ids
        self._paths_at = time.monotonic()

    def _terminals(self) -> tuple[Terminal, ...]:
        manager = self._terminal_manager()
        terminals = getattr(manager, "terminals", None) or {}
        out = []
        for name, terminal in list(terminals.items()):
            pid = getattr(getattr(terminal, "ptyproc", None), "pid", None)
            out.append(
                Terminal(
                    name=str(name),
                    pid=pid if isinstance(pid, int) and pid > 0 else None,
                    last_activity=_seconds(getattr(terminal, "last_activity", None)),
                )
            )
        return tuple(out)

    def document(self) -> dict[str, Any]:
        """The ``GET kernels`` document."""
        return self.attributor.kernels()
