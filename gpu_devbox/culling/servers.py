"""Which servers the culler reads: the hub's running GPU servers, from its users list.

The input is what ``GET /hub/api/users?state=active`` answers (user models with their
servers); the catalog says which profiles hold GPUs and their culling policy. Anything the hub
sends that does not look like a server is skipped, never guessed at.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from gpu_devbox.catalog import Catalog, CullPolicy, Profile


@dataclasses.dataclass(frozen=True)
class RunningServer:
    """One running server of the hub, as the culler sees it."""

    user: str
    #: The server's name; ``""`` for the default server.
    name: str
    #: Its path on the hub's proxy, ``/user/alice/`` (from the hub's server model).
    url: str
    #: The catalog profile's slug, ``None`` when the server's options name none.
    profile: str | None
    #: GPUs (or GPU slices) the server asked for.
    gpus: int
    #: The culling policy of its profile; ``None``: never culled.
    policy: CullPolicy | None
    #: Unix seconds the hub started it, if known.
    started: float | None = None
    groups: tuple[str, ...] = ()
    #: Where the spawner placed it (its recorded state; needs ``admin:server_state``).
    node: str | None = None
    #: Its pod (``namespace``, ``name``), from the spawner's state, if readable.
    pod: tuple[str, str] | None = None

    @property
    def key(self) -> tuple[str, str]:
        """``(user, server name)``: how the culler keeps track of a server."""
        return (self.user, self.name)

    @property
    def label(self) -> str:
        """``alice`` for a default server, ``alice/train`` for a named one."""
        return f"{self.user}/{self.name}" if self.name else self.user


def parse_time(value: Any) -> float | None:
    """Unix seconds from the hub's ISO 8601 times (``2026-12-01T10:00:00.123Z``)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def _profile_of(options: Mapping[str, Any], catalog: Catalog) -> tuple[str | None, Profile | None]:
    slug = options.get("profile")
    if slug is None:
        # the spawner starts the catalog's default profile when no options were given
        default = catalog.default_profile
        return default.slug, default
    if not isinstance(slug, str):
        return None, None
    return slug, catalog.profile(slug) if catalog.has_profile(slug) else None


def _gpu_count(options: Mapping[str, Any], profile: Profile | None) -> int:
    if profile is not None and profile.gpu.max_count <= 1:
        return profile.gpu.count
    raw = options.get("gpus")
    if isinstance(raw, list) and len(raw) == 1:  # a form field
        raw = raw[0]
    try:
        count = int(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else -1
    except ValueError:
        count = -1
    if count >= 1:
        return count
    return profile.gpu.count if profile is not None else 0


def _state_fields(model: Mapping[str, Any]) -> tuple[str | None, tuple[str, str] | None]:
    state = model.get("state")
    if not isinstance(state, Mapping):
        return None, None
    ours = state.get("gpu_devbox")
    node = ours.get("node") if isinstance(ours, Mapping) else None
    pod_name, namespace = state.get("pod_name"), state.get("namespace")
    pod = None
    if isinstance(pod_name, str) and isinstance(namespace, str):
        pod = (namespace, pod_name)
    return (node if isinstance(node, str) else None), pod


def running_servers(users: Iterable[Any], catalog: Catalog) -> list[RunningServer]:
    """Every ready server whose profile holds GPUs (or whose profile the catalog lacks).

    A profile the catalog no longer has gets the catalog's top-level policy: its servers may
    hold GPUs, and the server's own status says whether they do.
    """
    out: list[RunningServer] = []
    for user in users:
        if not isinstance(user, Mapping) or not isinstance(user.get("name"), str):
            continue
        servers = user.get("servers")
        if not isinstance(servers, Mapping):
            continue
        groups = tuple(g for g in user.get("groups") or () if isinstance(g, str))
        for name, model in servers.items():
            if not isinstance(name, str) or not isinstance(model, Mapping):
                continue
            if not model.get("ready") or model.get("pending") or model.get("stopped"):
                continue
            url = model.get("url")
            if not isinstance(url, str) or not url.startswith("/"):
                continue
            options = model.get("user_options")
            options = options if isinstance(options, Mapping) else {}
            slug, profile = _profile_of(options, catalog)
            if profile is not None and not profile.gpu.wants_gpu:
                continue
            policy = profile.cull if profile is not None else catalog.cull
            node, pod = _state_fields(model)
            out.append(
                RunningServer(
                    user=user["name"],
                    name=name,
                    url=url,
                    profile=slug,
                    gpus=_gpu_count(options, profile),
                    policy=policy,
                    started=parse_time(model.get("started")),
                    groups=groups,
                    node=node,
                    pod=pod,
                )
            )
    return out
