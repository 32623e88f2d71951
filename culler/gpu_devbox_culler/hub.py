"""The hub's REST API as the culler uses it: list the running servers, stop one."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote, urlencode

from gpu_devbox.culling import RunningServer
from gpu_devbox_culler.client import HttpClient

#: Users per page (JupyterHub's largest page by default).
PAGE = 200
PAGINATION = "application/jupyterhub-pagination+json"


class HubError(Exception):
    """The hub's API failed; the message says how."""


class HubClient:
    """Calls ``{api_url}/...`` with the service's own token."""

    def __init__(
        self, api_url: str, token: str, client: HttpClient, *, timeout: float = 30.0
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.client = client
        self.timeout = timeout

    async def _call(self, method: str, path: str, accept: str = "application/json") -> Any:
        try:
            response = await self.client.fetch(
                method,
                f"{self.api_url}{path}",
                headers={"Authorization": f"token {self.token}", "Accept": accept},
                timeout=self.timeout,
            )
        except asyncio.TimeoutError:
            raise HubError(f"{method} {path}: no answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise HubError(f"{method} {path}: {exc}") from None
        if not 200 <= response.code < 300:
            detail = response.body[:300].decode("utf-8", "replace")
            raise HubError(f"{method} {path}: HTTP {response.code} {detail}".rstrip())
        if not response.body:
            return None
        try:
            return json.loads(response.body)
        except ValueError:
            raise HubError(f"{method} {path}: the hub's answer is not JSON") from None

    async def users(self) -> list[Any]:
        """Every user with a ready server (``state=ready``), all pages of them."""
        out: list[Any] = []
        offset = 0
        while True:
            query = urlencode({"state": "ready", "offset": offset, "limit": PAGE})
            page = await self._call("GET", f"/users?{query}", accept=PAGINATION)
            if isinstance(page, list):  # a hub that does not paginate
                return page
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise HubError("GET /users: the hub's answer has no list of users")
            out.extend(page["items"])
            following = (page.get("_pagination") or {}).get("next")
            if not following or not page["items"]:
                return out
            offset = int(following.get("offset", offset + len(page["items"])))

    async def stop(self, server: RunningServer) -> None:
        """Stop a server (the hub answers at once; the stop may go on in the background)."""
        user = quote(server.user, safe="")
        if server.name:
            path = f"/users/{user}/servers/{quote(server.name, safe='')}"
        else:
            path = f"/users/{user}/server"
        try:
            await self._call("DELETE", path)
        except HubError as exc:
            if "HTTP 404" in str(exc):  # already gone
                return
            raise
