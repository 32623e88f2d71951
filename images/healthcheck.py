#!/usr/bin/env python3
"""The image's HEALTHCHECK: is the Jupyter server in this container answering its API?

Finds the running server in Jupyter's runtime directory (the ``jpserver-<pid>.json`` file each
server writes: its URL and token), then asks ``<base_url>gpu-devbox/api/status`` with the token.
Behind JupyterHub the single-user server takes hub tokens only, so a 401/403 there is answered
by the unauthenticated ``<base_url>api`` (the server's version), which proves it is serving.

Exit status: 0 healthy, 1 unhealthy (one line on stdout says why; Docker keeps it in
``docker inspect``). Standard library only: it must run in any image.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TIMEOUT = 4.0


def runtime_dir() -> Path:
    """Jupyter's runtime directory, as ``jupyter --runtime-dir`` reports it."""
    if os.environ.get("JUPYTER_RUNTIME_DIR"):
        return Path(os.environ["JUPYTER_RUNTIME_DIR"])
    try:
        out = subprocess.run(
            ["jupyter", "--runtime-dir"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return Path(out) if out else Path.home() / ".local/share/jupyter/runtime"


def alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def servers(directory: Path) -> list[dict[str, Any]]:
    """The servers whose runtime file names a live process, newest first."""
    found = []
    for path in sorted(directory.glob("jpserver-*.json"), key=lambda p: -p.stat().st_mtime):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and isinstance(info.get("pid"), int) and alive(info["pid"]):
            found.append(info)
    return found


def get(url: str, token: str | None) -> int:
    """The HTTP status of a GET (0 when nothing answered)."""
    request = urllib.request.Request(url)  # noqa: S310 - the URL comes from the server's own file
    if token:
        request.add_header("Authorization", f"token {token}")
    context = ssl._create_unverified_context() if url.startswith("https:") else None  # noqa: S323
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0


def check() -> tuple[bool, str]:
    """``(healthy, why)``."""
    directory = runtime_dir()
    running = servers(directory)
    if not running:
        return False, f"no running Jupyter server has a runtime file in {directory}"
    info = running[0]
    base = str(info.get("url", "")).rstrip("/") + "/"
    status = get(base + "gpu-devbox/api/status", info.get("token") or None)
    if status == 200:
        return True, f"{base}gpu-devbox/api/status answered 200"
    if status in (401, 403):
        fallback = get(base + "api", None)
        if fallback == 200:
            return True, f"{base}api answered 200 (gpu-devbox/api/status wants a hub token)"
        return False, f"{base}api answered {fallback or 'nothing'}"
    return False, f"{base}gpu-devbox/api/status answered {status or 'nothing'}"


def main() -> int:
    healthy, why = check()
    print(("healthy: " if healthy else "unhealthy: ") + why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
