"""The checks service: gathers facts off the event loop, caches them, shares one gathering.

The slow part (container facts, one probe subprocess per Python environment) is gathered once
and cached until a refresh is asked for; concurrent requests share the gathering in flight.
NVML facts are cheap (the sampler's cached status) and are read fresh on every request, so the
``nvml`` check follows the driver without a refresh. Plain asyncio: no tornado here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from gpu_devbox.cuda import environments, facts
from gpu_devbox.cuda.checks import checks_document

log = logging.getLogger("gpu_devbox.checks")

NvmlSource = Callable[[], Mapping[str, Any]]
KernelspecSource = Callable[[], Awaitable[Sequence[environments.KernelSpec]]]


@dataclasses.dataclass(frozen=True)
class SlowFacts:
    """The cached, costly part of the facts."""

    gathered_at: str
    container: Mapping[str, Any]
    environments: Sequence[Mapping[str, Any]]


class ChecksService:
    """Serves the checks document of one server.

    Args:
        nvml_source: returns the ``nvml`` facts (the server reads its sampler; no NVML call).
        kernelspecs: returns the kernelspecs to probe; ``None`` probes only the server's Python.
        probe_timeout: seconds each environment's probe may take.
        env: the environment the probes inherit (default: this process's).
        server_python: the server's interpreter.
        logger: where to log.
    """

    def __init__(
        self,
        nvml_source: NvmlSource,
        *,
        kernelspecs: KernelspecSource | None = None,
        probe_timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        server_python: str = sys.executable,
        logger: logging.Logger | None = None,
    ) -> None:
        self.nvml_source = nvml_source
        self.kernelspecs = kernelspecs
        self.probe_timeout = probe_timeout
        self.env = dict(os.environ if env is None else env)
        self.server_python = server_python
        self.log = logger or log
        self._cache: SlowFacts | None = None
        self._inflight: asyncio.Task[SlowFacts] | None = None
        #: How many gatherings have run (exposed for operators' logs and tests).
        self.gatherings = 0

    async def _gather(self) -> SlowFacts:
        loop = asyncio.get_running_loop()
        self.gatherings += 1
        started = loop.time()
        container = await loop.run_in_executor(None, facts.gather_container, self.env)
        specs = list(await self.kernelspecs()) if self.kernelspecs is not None else None
        envs = await environments.gather_environments(
            specs, timeout=self.probe_timeout, env=self.env, server_python=self.server_python
        )
        slow = SlowFacts(facts.utc_now(), container, envs)
        self._cache = slow
        self.log.info(
            "gpu-devbox: gathered CUDA facts of %d Python environment(s) in %.1f s",
            len(envs),
            loop.time() - started,
        )
        return slow

    async def slow_facts(self, *, refresh: bool = False) -> SlowFacts:
        """The cached slow facts; gathered when absent or when ``refresh`` is asked for.

        A gathering already in flight is shared (a refresh then waits for it rather than
        starting another). Cancelling a caller does not cancel the shared gathering.
        """
        if self._inflight is not None and not self._inflight.done():
            return await asyncio.shield(self._inflight)
        if self._cache is not None and not refresh:
            return self._cache
        self._inflight = asyncio.ensure_future(self._gather())
        return await asyncio.shield(self._inflight)

    async def facts(self, *, refresh: bool = False) -> dict[str, Any]:
        """The facts document: fresh NVML facts plus the (cached) slow facts."""
        slow = await self.slow_facts(refresh=refresh)
        return facts.assemble(
            self.nvml_source(), slow.container, slow.environments, gathered_at=slow.gathered_at
        )

    async def document(self, *, refresh: bool = False) -> dict[str, Any]:
        """The checks document (``GET checks``)."""
        return checks_document(await self.facts(refresh=refresh))

    def cancel(self) -> None:
        """Stop a gathering in flight and kill its probe subprocesses (safe from sync code)."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
        environments.kill_running_probes()

    async def close(self) -> None:
        """Cancel a gathering in flight and wait until it has stopped."""
        task = self._inflight
        self.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
