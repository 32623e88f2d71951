"""``gpu-devbox metrics --server URL --token TOKEN``: a running server's GPUs, with owners.

The server attributes each GPU process to its kernel, terminal or process (``GET gpus``); the
command reads that instead of sampling NVML itself, so a user in a terminal of a notebook server
sees which notebook holds the GPU. Plain ``urllib``: no Jupyter import.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from gpu_devbox.cli import CliError

#: Seconds a request to the server may take.
TIMEOUT = 10.0
#: The largest answer read (a GET gpus of 64 GPUs with many processes is far smaller).
MAX_BYTES = 32 * 1024 * 1024


def base_url(raw: str) -> str:
    """The server's base URL, ending in ``/`` (``CliError`` naming what is wrong)."""
    parsed = urllib.parse.urlsplit(raw.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CliError(
            f"--server must be the server's http(s) URL, e.g. http://127.0.0.1:8888/, not {raw!r}"
        )
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise CliError(f"--server {raw!r} has an invalid port") from None
    path = parsed.path if parsed.path.endswith("/") else parsed.path + "/"
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


class Server:
    """A running jupyter-server with gpu-devbox, read through its REST API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = base_url(url)
        self.token = token

    def get(self, route: str) -> Any:
        """``GET {url}gpu-devbox/api/{route}`` as JSON (``CliError`` on any failure)."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        url = f"{self.url}gpu-devbox/api/{route}"
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                body = response.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise CliError(
                    f"{self.url} refused the token (HTTP {err.code}): pass the server's token "
                    "with --token or JUPYTER_TOKEN"
                ) from None
            if err.code == 404:
                raise CliError(
                    f"{self.url} has no gpu-devbox API (HTTP 404): is it a Jupyter server with "
                    "the gpu_devbox extension, and is the URL its base URL?"
                ) from None
            raise CliError(f"{url} answered HTTP {err.code}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise CliError(f"cannot reach {self.url}: {reason}") from None
        if len(body) > MAX_BYTES:
            raise CliError(f"{url} answered more than {MAX_BYTES} bytes")
        try:
            return json.loads(body)
        except ValueError:
            raise CliError(f"{url} did not answer JSON: is it a gpu-devbox server?") from None

    def sample(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(GET status, GET gpus)``."""
        status = self.get("status")
        gpus = self.get("gpus")
        if not isinstance(status, dict) or not isinstance(gpus, dict) or "gpus" not in gpus:
            raise CliError(f"{self.url} did not answer gpu-devbox documents")
        return status, gpus


def describe_owner(process: dict[str, Any]) -> str:
    """Whose a GPU process is, as one short phrase (empty without an owner)."""
    owner = process.get("owner")
    if not isinstance(owner, dict):
        return ""
    kind = owner.get("type")
    if kind == "kernel":
        where = owner.get("path") or f"kernel {str(owner.get('kernel_id', ''))[:8]}"
        extra = [str(v) for v in (owner.get("kernel_name"), owner.get("execution_state")) if v]
        return f"{where} ({', '.join(extra)})" if extra else str(where)
    if kind == "terminal":
        return f"terminal {owner.get('name')}"
    if kind == "process":
        return str(owner.get("cmdline", ""))
    if kind == "other":
        return "not this server's"
    return ""
