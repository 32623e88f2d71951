"""The admin view at ``/services/<name>/``: a page, a JSON API, Stop, and ``/metrics``.

Users log in with the hub's OAuth. Who may see the view (and stop servers from it): hub admins
(the ``admin-ui`` scope) and whoever holds the custom scope ``custom:gpu-devbox:view`` (a role
you give, see docs/culling.md). The Stop button posts with the page's XSRF token; the hub is
called with the service's own token.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

import jinja2
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web

from gpu_devbox.culling import describe_gpus
from gpu_devbox_culler.culler import Culler, Row
from gpu_devbox_culler.hub import HubError

#: Scopes that open the view: any one of them.
VIEW_SCOPES = frozenset({"admin-ui", "custom:gpu-devbox:view"})
#: The largest request body the API reads.
MAX_BODY = 64 * 1024


def row_document(row: Row, model: Any) -> dict[str, Any]:
    """One server in the JSON API."""
    decision = row.decision
    server = decision.server
    observation = row.reading.observation
    gpus = observation.gpus if observation is not None else None
    names = gpus.names if gpus is not None else ()
    count = len(names) or server.gpus
    summary = row.summary
    model = model if isinstance(model, dict) else {}

    def usage(which: str) -> dict[str, float] | None:
        if summary is None:
            return None
        value = getattr(summary, which)
        return {"held": round(value.held_hours, 4), "busy": round(value.busy_hours, 4)}

    return {
        "user": server.user,
        "server": server.name,
        "profile": server.profile,
        "node": server.node,
        "gpu_count": count,
        "gpu_models": describe_gpus(names, count),
        "utilization": gpus.utilization if gpus is not None else None,
        "utilization_hour": row.utilization_hour,
        "memory_used": gpus.memory_used if gpus is not None else None,
        "memory_held": observation.gpu_memory_held if observation is not None else None,
        "idle_seconds": decision.idle_seconds,
        "warning": decision.warning,
        "stops_at": decision.stops_at,
        "action": decision.action.value,
        "reason": decision.reason,
        "message": decision.message,
        "keep_running": (
            {
                "used": observation.cull.keep_running.used,
                "max": observation.cull.keep_running.max,
            }
            if observation is not None and observation.cull is not None
            else None
        ),
        "gpu_hours": {"today": usage("today"), "week": usage("week")},
        "started": model.get("started"),
        "last_activity": model.get("last_activity"),
    }


class ViewHandler(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
    """Hub-authenticated; only holders of a view scope get in."""

    hub_scopes = VIEW_SCOPES

    @property
    def culler(self) -> Culler:
        culler: Culler = self.settings["culler"]
        return culler

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors as JSON ``{"message": ...}``."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = (
            getattr(error, "log_message", None) if isinstance(error, web.HTTPError) else None
        ) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message}))


class PageHandler(ViewHandler):
    """``GET /services/<name>/``: the admin page (its table comes from the JSON API)."""

    @web.authenticated
    def get(self) -> None:
        template = self.settings["templates"].get_template("admin.html")
        user = self.current_user or {}
        self.finish(
            template.render(
                prefix=self.settings["prefix"],
                xsrf_token=self.xsrf_token.decode("ascii"),
                user=user.get("name", ""),
                period=self.culler.period,
                dry_run=self.culler.dry_run,
                source=self.culler.source.name,
            )
        )


class ServersHandler(ViewHandler):
    """``GET api/servers``: every running GPU server with its GPU use and GPU-hours."""

    @web.authenticated
    def get(self) -> None:
        culler = self.culler
        rows = [
            row_document(row, culler.user_model(key)) for key, row in sorted(culler.rows.items())
        ]
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            json.dumps(
                {
                    "servers": rows,
                    "updated_at": culler.updated_at,
                    "period": culler.period,
                    "dry_run": culler.dry_run,
                    "source": culler.source.name,
                    "error": culler.last_error,
                }
            )
        )


class StopHandler(ViewHandler):
    """``POST api/stop`` ``{"user": ..., "server": ""}``: stop a listed server now."""

    @web.authenticated
    async def post(self) -> None:
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(413, "the request body is too large")
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise web.HTTPError(400, "the body must be JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, 'the body must be {"user": NAME, "server": NAME}')
        user, name = body.get("user"), body.get("server", "")
        if not isinstance(user, str) or not isinstance(name, str):
            raise web.HTTPError(400, "user and server must be strings")
        admin = (self.current_user or {}).get("name", "?")
        try:
            server = await self.culler.stop_from_admin(user, name, admin)
        except KeyError:
            raise web.HTTPError(404, f"no running GPU server {user}/{name} is listed") from None
        except HubError as exc:
            raise web.HTTPError(502, f"the hub refused to stop it: {exc}") from None
        self.set_status(202)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": f"Stopping {server.label}'s server."}))


class MetricsHandler(web.RequestHandler):
    """``GET metrics``: the service's Prometheus series (counts only, no user names)."""

    def get(self) -> None:
        registry = self.settings["culler"].metrics.registry
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(registry))


def make_app(culler: Culler, prefix: str) -> web.Application:
    """The service's tornado application under ``prefix`` (``/services/gpu-devbox/``)."""
    templates = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: (
                resources.files(__package__).joinpath("templates").joinpath(name).read_text("utf-8")
            )
        ),
        autoescape=True,
    )
    prefix = prefix if prefix.endswith("/") else f"{prefix}/"
    return web.Application(
        [
            (prefix, PageHandler),
            (f"{prefix}api/servers", ServersHandler),
            (f"{prefix}api/stop", StopHandler),
            (f"{prefix}metrics", MetricsHandler),
            (f"{prefix}oauth_callback", HubOAuthCallbackHandler),
        ],
        culler=culler,
        prefix=prefix,
        templates=templates,
        cookie_secret=os.urandom(32),
        xsrf_cookies=True,
    )
