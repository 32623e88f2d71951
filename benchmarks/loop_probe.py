"""A benchmark-only jupyter-server extension that measures the server's event-loop lag.

A coroutine asks to wake up every 10 ms; how late each wake-up comes is the lag every request
handled by that loop would also see. ``GET /loop-probe`` returns percentiles of the lag since the
last ``DELETE /loop-probe`` (which resets the record), and how many GPU samples were serialised
since then on the event loop's thread and in gpu-devbox's sampler thread (with gpu-devbox
loaded; the loop's count must stay 0). Load it with
``--ServerApp.jpserver_extensions='{"loop_probe": true}'`` and ``benchmarks/`` on PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.serverapp import ServerApp
from tornado import web

PERIOD = 0.010
_lags: list[float] = []
_encodes_at_reset: dict[str, int] = {}


def _encodes() -> dict[str, int]:
    try:
        from gpu_devbox.gpus.sampler import ENCODES
    except ImportError:  # a peer's server: no gpu-devbox there
        return {}
    # two keys read, not the whole counter copied: the sampler thread may add to it meanwhile
    names = (threading.current_thread().name, "gpu-devbox-sampler")
    return {name: ENCODES[name] for name in names}


def _encodes_since_reset() -> dict[str, int]:
    now = _encodes()
    loop = threading.current_thread().name  # handlers run on the event loop's thread
    return {
        "encodes_on_loop": now.get(loop, 0) - _encodes_at_reset.get(loop, 0),
        "encodes_in_sampler": now.get("gpu-devbox-sampler", 0)
        - _encodes_at_reset.get("gpu-devbox-sampler", 0),
    }


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
            self.finish(json.dumps({"count": 0, **_encodes_since_reset()}))
            return
        q = statistics.quantiles(lags, n=100, method="inclusive")
        self.finish(
            json.dumps(
                {
                    "count": len(lags),
                    "p50_ms": q[49] * 1e3,
                    "p99_ms": q[98] * 1e3,
                    "max_ms": lags[-1] * 1e3,
                    **_encodes_since_reset(),
                }
            )
        )

    @web.authenticated
    def delete(self) -> None:
        _lags.clear()
        _encodes_at_reset.clear()
        _encodes_at_reset.update(_encodes())
        self.set_status(204)
        self.finish()


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "loop_probe"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(base.rstrip("/") + "/loop-probe", ProbeHandler)])
    serverapp.io_loop.add_callback(lambda: asyncio.ensure_future(_watch()))
