"""``/metrics`` with the GPU series only for users allowed to read the ``gpu-devbox`` resource.

jupyter-server's own handler authenticates a scrape but never authorizes it, so any logged-in
user whose authorizer refuses ``gpu-devbox`` would still read every GPU series there. The
extension registers this subclass on the same path (extension routes take precedence): it
authenticates exactly as jupyter-server does (``c.ServerApp.authenticate_prometheus``), then asks
the authorizer for ``read`` on ``gpu-devbox`` and leaves the GPU series out of the response when
refused. The server's other metrics are served either way.

With ``authenticate_prometheus = False`` an anonymous scrape (no user at all) gets the GPU
series: the administrator chose to publish ``/metrics`` to anyone who can reach it.
"""

from __future__ import annotations

from typing import Any

import prometheus_client
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import PrometheusMetricsHandler
from tornado import web

from gpu_devbox.server.base import AUTH_RESOURCE, BodyLimit, write_json_error
from gpu_devbox.server.prometheus import gpu_series


@web.stream_request_body
class GpuMetricsHandler(BodyLimit, PrometheusMetricsHandler):
    """``GET {base_url}metrics``: the server's metrics, GPU series as the authorizer allows.

    Its errors are JSON and its request body is limited like every route of the extension.
    """

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A JSON error (jupyter-server's handler renders an HTML page)."""
        write_json_error(self, status_code, **kwargs)

    @allow_unauthenticated
    async def get(self) -> None:  # type: ignore[override]
        """Authenticate like jupyter-server, authorize the GPU series, then serve the registry."""
        if self.settings["authenticate_prometheus"] and not self.logged_in:
            raise web.HTTPError(403)
        user = self.current_user
        allowed = user is None or bool(
            await ensure_async(self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE))
        )
        with gpu_series(allowed):
            body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
        self.set_header("Content-Type", prometheus_client.CONTENT_TYPE_LATEST)
        self.finish(body)


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [("/metrics", GpuMetricsHandler)]
