"""REST route for the CUDA checks: ``GET {base_url}gpu-devbox/api/checks[?refresh=1]``.

The facts are gathered by :class:`~gpu_devbox.cuda.service.ChecksService` off the event loop
(an executor for file system work, subprocesses for the framework probes) and cached; NVML facts
come from the running sampler, so a request never initialises NVML a second time.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from gpu_devbox.cuda.environments import KernelSpec
from gpu_devbox.cuda.facts import nvml_facts
from gpu_devbox.cuda.service import ChecksService
from gpu_devbox.gpus import Sampler
from gpu_devbox.server.base import API_PREFIX, BaseHandler


def make_service(
    sampler: Sampler,
    kernel_spec_manager: Any | None,
    *,
    probe_timeout: float,
    logger: Any = None,
) -> ChecksService:
    """A checks service reading NVML facts from ``sampler`` and kernelspecs from the server.

    ``kernel_spec_manager`` is the server's (so ``KernelSpecManager`` configuration applies);
    ``None`` probes only the server's own interpreter.
    """

    def nvml_source() -> Mapping[str, Any]:
        return nvml_facts(sampler.status(), sampler.snapshot().gpus)

    async def kernelspecs() -> list[KernelSpec]:
        assert kernel_spec_manager is not None
        get_all = kernel_spec_manager.get_all_specs
        if inspect.iscoroutinefunction(get_all):
            specs = await get_all()
        else:  # reads kernel.json files: keep it off the event loop
            specs = await asyncio.get_running_loop().run_in_executor(None, get_all)
        return [
            KernelSpec.from_spec(name, (entry or {}).get("spec") or {})
            for name, entry in sorted(specs.items())
        ]

    return ChecksService(
        nvml_source,
        kernelspecs=kernelspecs if kernel_spec_manager is not None else None,
        probe_timeout=probe_timeout,
        logger=logger,
    )


class ChecksHandler(BaseHandler):
    """``GET checks``: the CUDA compatibility checks and the facts behind them."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the checks (cached; ``?refresh=1`` gathers the facts again)."""
        refresh = self.query_flag("refresh")
        await self.wait_for_first_sample()
        self.finish_json(await self.state.checks.document(refresh=refresh))


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (f"{API_PREFIX}/checks", ChecksHandler),
]
