"""``GET {base_url}gpu-devbox/api/kernels``: this server's kernels and terminals, with their GPUs.

Read from the attribution of the sampler's latest sample and the kernels' current states; the
request itself reads no ``/proc`` entry and makes no NVML call. Acting on a kernel (interrupt,
restart, shut down) is jupyter-server's own REST API (``/api/kernels``, ``/api/terminals``).
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from gpu_devbox.server.base import API_PREFIX, BaseHandler


class KernelsHandler(BaseHandler):
    """``GET kernels``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every kernel and terminal, with the GPU memory each holds."""
        await self.wait_for_first_sample()
        service = self.state.kernels
        if service is None:
            raise web.HTTPError(404, "process attribution is not running on this server")
        await service.refresh()  # the kernels' states as they are now; cheap, on the loop
        self.finish_json(service.document())


ROUTES: list[tuple[str, type[BaseHandler]]] = [(f"{API_PREFIX}/kernels", KernelsHandler)]
