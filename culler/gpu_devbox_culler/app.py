"""``gpu-devbox-culler``: parse the options, then run the rounds and serve the admin view.

Run it as a JupyterHub-managed service (docs/culling.md); JupyterHub passes the hub's API URL,
the service's token and its URL in the environment. Bad options exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn
from urllib.parse import urlsplit

from gpu_devbox._version import __version__
from gpu_devbox.catalog import Catalog, CatalogError, default_catalog, load_catalog
from gpu_devbox.culling import prometheus as prom
from gpu_devbox_culler.culler import Culler, Source, log
from gpu_devbox_culler.hub import HubClient
from gpu_devbox_culler.sources import PrometheusSource, ServerSource, http_client
from gpu_devbox_culler.store import Store

DEFAULT_DB = "gpu-devbox-culler.sqlite"


class OneLineParser(argparse.ArgumentParser):
    """Errors in one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(minimum: float, maximum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{raw} is not between {minimum:g} and {maximum:g}")
        return value

    return parse


def _integer(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{raw} is not between {minimum} and {maximum}")
        return value

    return parse


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an http(s) URL")
    return raw.rstrip("/")


def _label(raw: str) -> str:
    try:
        return prom.check_label(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _default_proxy_url() -> str:
    public = os.environ.get("JUPYTERHUB_PUBLIC_URL")
    if public:
        parts = urlsplit(public)
        return f"{parts.scheme}://{parts.netloc}"
    return "http://127.0.0.1:8000"


def build_parser() -> OneLineParser:
    """The command line."""
    parser = OneLineParser(
        prog="gpu-devbox-culler",
        description=(
            "Stop JupyterHub servers whose GPUs have been idle longer than their profile "
            "allows, and serve an admin view of GPUs held and used. Runs as a hub-managed "
            "service; see docs/culling.md."
        ),
    )
    add = parser.add_argument
    add("--version", action="version", version=f"gpu-devbox-culler {__version__}")
    add(
        "--period",
        type=_number(1, 86400),
        default=60.0,
        metavar="SECONDS",
        help="seconds between two decision rounds (default 60)",
    )
    add(
        "--timeout",
        type=_number(0.1, 600),
        default=10.0,
        metavar="SECONDS",
        help="seconds a server (or Prometheus) may take to answer (default 10)",
    )
    add(
        "--concurrency",
        type=_integer(1, 1000),
        default=20,
        metavar="N",
        help="servers read at the same time (default 20)",
    )
    add(
        "--catalog",
        metavar="PATH",
        default="",
        help="the spawner's catalog, for each profile's cull policy (default: the shipped one)",
    )
    add(
        "--exempt-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="never stop servers of this group's users (repeat for more groups)",
    )
    add("--dry-run", action="store_true", help="decide and log, but stop nothing (start with this)")
    add(
        "--source",
        choices=("servers", "prometheus"),
        default="servers",
        help="where GPU activity comes from: each server's status (default), or Prometheus",
    )
    add(
        "--prometheus-url",
        type=_url,
        metavar="URL",
        help="Prometheus' base URL (with --source prometheus), e.g. http://prometheus:9090",
    )
    add(
        "--prometheus-series",
        choices=("gpu-devbox", "dcgm"),
        default="gpu-devbox",
        help="gpu-devbox's own series (default) or dcgm-exporter's DCGM_FI_DEV_GPU_UTIL",
    )
    add(
        "--prometheus-prefix",
        default="gpu_devbox",
        metavar="PREFIX",
        help="the servers' c.GPUDevbox.prometheus_prefix (default gpu_devbox)",
    )
    add(
        "--user-label",
        type=_label,
        default="username",
        metavar="LABEL",
        help="label holding the user name on gpu-devbox series (default username)",
    )
    add(
        "--server-label",
        type=_label,
        default="servername",
        metavar="LABEL",
        help="label holding the server name on gpu-devbox series (default servername)",
    )
    add(
        "--namespace-label",
        type=_label,
        default="namespace",
        metavar="LABEL",
        help="label holding the pod's namespace on DCGM series (default namespace)",
    )
    add(
        "--pod-label",
        type=_label,
        default="pod",
        metavar="LABEL",
        help="label holding the pod's name on DCGM series (default pod)",
    )
    add(
        "--busy-utilization",
        type=_number(0, 100),
        default=5.0,
        metavar="PERCENT",
        help="with DCGM series: utilization at or above which a GPU is busy (default 5)",
    )
    add(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"SQLite file of the GPU-hours accounting (default {DEFAULT_DB}, in the "
        "working directory)",
    )
    add(
        "--hub-api-url",
        type=_url,
        default=os.environ.get("JUPYTERHUB_API_URL"),
        metavar="URL",
        help="the hub's REST API (default $JUPYTERHUB_API_URL)",
    )
    add(
        "--proxy-url",
        type=_url,
        default=_default_proxy_url(),
        metavar="URL",
        help="where the hub's proxy answers, to reach servers at /user/... (default: the "
        "origin of $JUPYTERHUB_PUBLIC_URL, else http://127.0.0.1:8000); in Zero to "
        "JupyterHub: http://proxy-public",
    )
    add(
        "--no-web",
        action="store_true",
        help="do not serve the admin view and /metrics (even with $JUPYTERHUB_SERVICE_URL)",
    )
    add(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="DEBUG also logs every repeated decision (default INFO: changes only)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options, checked together; mistakes exit 2 with one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.source == "prometheus" and not args.prometheus_url:
        parser.error("--source prometheus needs --prometheus-url")
    if args.prometheus_url and args.source != "prometheus":
        parser.error("--prometheus-url is only used with --source prometheus")
    if not args.hub_api_url:
        parser.error(
            "the hub's API URL is unknown: run as a JupyterHub service or give --hub-api-url"
        )
    if not os.environ.get("JUPYTERHUB_API_TOKEN"):
        parser.error(
            "$JUPYTERHUB_API_TOKEN is not set: run as a JupyterHub service, or set "
            "it to a token with the culler's scopes"
        )
    if any(not g.strip() for g in args.exempt_group):
        parser.error("--exempt-group needs a group name")
    try:
        args.catalog_value = load_catalog(args.catalog) if args.catalog else default_catalog()
    except CatalogError as exc:
        parser.error(f"--catalog: {exc}")
    return args


def _catalog_reader(path: str, first: Catalog) -> Callable[[], Catalog]:
    """The catalog, read again when its file changes (a broken edit keeps the last good one)."""
    if not path:
        return lambda: first
    state = {"catalog": first, "mtime": _mtime(path)}

    def current() -> Catalog:
        mtime = _mtime(path)
        if mtime != state["mtime"]:
            state["mtime"] = mtime
            try:
                state["catalog"] = load_catalog(path)
                log.info("gpu-devbox-culler: read the changed catalog %s", path)
            except CatalogError as exc:
                log.error("gpu-devbox-culler: the catalog is invalid, keeping the last: %s", exc)
        catalog: Catalog = state["catalog"]  # type: ignore[assignment]
        return catalog

    return current


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _bind_address(host: str | None) -> str:
    """Where the view listens: the service URL's host when it is an IP address, else every
    interface (``http://hub:10101`` in Zero to JupyterHub names a Kubernetes service)."""
    if not host:
        return "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return ""
    return host


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGTERM or SIGINT."""
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    client = http_client(args.concurrency)
    direct = ServerSource(
        args.proxy_url, token, client, concurrency=args.concurrency, timeout=args.timeout
    )
    catalog = _catalog_reader(args.catalog, args.catalog_value)
    source: Source = direct
    if args.source == "prometheus":
        limits = [p.cull.gpu_idle_after for p in args.catalog_value.profiles if p.cull]
        source = PrometheusSource(
            args.prometheus_url,
            client,
            series=args.prometheus_series,
            timeout=args.timeout,
            prefix=args.prometheus_prefix,
            user_label=args.user_label,
            server_label=args.server_label,
            namespace_label=args.namespace_label,
            pod_label=args.pod_label,
            busy_utilization=args.busy_utilization,
            lookback=max(limits, default=7200) + 3 * args.period,
            step=max(1.0, min(args.period, 60.0)),
        )
    store = Store(args.db)
    try:
        await store.open()
    except Exception as exc:  # noqa: BLE001 - any sqlite/OS error: one clear line
        print(f"gpu-devbox-culler: error: cannot open --db {args.db}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    culler = Culler(
        hub=HubClient(args.hub_api_url, token, client, timeout=max(args.timeout, 30.0)),
        source=source,
        direct=direct,
        store=store,
        catalog=catalog,
        period=args.period,
        exempt_groups=args.exempt_group,
        dry_run=args.dry_run,
    )
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    server = None
    if service_url and not args.no_web:
        from gpu_devbox_culler.web import make_app

        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/gpu-devbox/")
        parts = urlsplit(service_url)
        app = make_app(culler, prefix)
        server = app.listen(parts.port or 80, _bind_address(parts.hostname), xheaders=True)
    log.info(
        "gpu-devbox-culler %s: every %g s, source %s%s, exempt groups: %s",
        __version__,
        args.period,
        source.name,
        " (dry run: nothing is stopped)" if args.dry_run else "",
        ", ".join(args.exempt_group) or "none",
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    rounds = asyncio.ensure_future(culler.run_forever())
    await stopping.wait()
    rounds.cancel()
    if server is not None:
        server.stop()
    await store.close()
    await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The console script."""
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="[%(levelname).1s %(asctime)s %(name)s] %(message)s",
    )
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    asyncio.run(serve(args))
    return 0
