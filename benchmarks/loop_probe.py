"""A benchmark-only jupyter-server extension that measures the server's event-loop lag.

A coroutine asks to wake up every 10 ms; how late each wake-up comes is the lag every request
handled by that loop would also see. ``GET /loop-probe`` returns percentiles of the lag since the
last ``DELETE /loop-probe`` (which resets the record). Load it with
``--ServerApp.jpserver_extensions='{"loop_probe": true}'`` and ``benchmarks/`` on PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.serverapp import ServerApp
from tornado import web

PERIOD = 0.010
_lags: list[float] = []


async def _watch() -> None:
    while True:
        started = time.perf_counter()
        await asyncio.sleep(PERIOD)
        _lags.append(time.perf_counter() - started - PERIOD)


class ProbeHandler(APIHandler):
    """Report or reset the lag record."""

    @web.authenticated
    def get(self) -> None:
        lags = sorted(_lags)
        if not lags:
            self.finish(json.dumps({"count": 0}))
            return
        q = statistics.quantiles(lags, n=100, method="inclusive")
        self.finish(
            json.dumps(
                {
                    "count": len(lags),
                    "p50_ms": q[49] * 1e3,
                    "p99_ms": q[98] * 1e3,
                    "max_ms": lags[-1] * 1e3,
                }
            )
        )

    @web.authenticated
    def delete(self) -> None:
        _lags.clear()
        self.set_status(204)
        self.finish()


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "loop_probe"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(base.rstrip("/") + "/loop-probe", ProbeHandler)])
    serverapp.io_loop.add_callback(lambda: asyncio.ensure_future(_watch()))
