"""The cluster inventory: the one module that talks to the Kubernetes API.

Two background loops, one for nodes and one for pods in every namespace, each list once
(in pages) and then watch from the list's ``resourceVersion``, reconnecting when the server
ends a watch (``timeoutSeconds``) and listing again when the version expired (410 Gone). They
feed a :class:`~gpu_devbox.placement.cluster.ClusterState`; forms and starts read its snapshot,
so rendering a form makes no API call. One inventory per event loop is shared by every
spawner of a hub, and so are what the spawners derive from it: the catalog files they read
and the offers computed for the current snapshot (once per cluster change, not per form).

RBAC: get, list and watch on nodes and pods cluster-wide (``jupyter-config/hub/rbac.yaml``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from gpu_devbox.catalog import Catalog, Toleration
from gpu_devbox.placement import ClusterSnapshot, ClusterState, Offer, compute_offers
from gpu_devbox.placement.unusable import unusable_nodes
from gpu_devbox_spawner.catalog_file import CatalogFile

#: Pods that can hold GPUs: everything not finished.
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"
_PAGE = 500
_log = logging.getLogger("gpu_devbox_spawner")


class _Expired(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class APIError(Exception):
    """The API server answered with an error status."""


def _check(status: int, raw: bytes, what: str) -> None:
    """Raise for an error status, with the Status object's message (responses are not checked
    by the client when their content is not preloaded)."""
    if status < 400:
        return
    if status == 410:
        raise _Expired()
    try:
        message = json.loads(raw).get("message") or ""
    except (ValueError, AttributeError):
        message = raw[:200].decode("utf-8", "replace")
    raise APIError(f"{what}: HTTP {status} {message}".rstrip())


@dataclasses.dataclass(frozen=True)
class _Offers:
    """Offers and what they were computed from."""

    snapshot: ClusterSnapshot
    catalog: Catalog
    tolerations: tuple[Toleration, ...]
    offers: tuple[Offer, ...]


class Inventory:
    """A watch-fed cache of the cluster's nodes and GPU-holding pods."""

    _shared: ClassVar[dict[tuple[int, str], Inventory]] = {}

    def __init__(
        self,
        api: Any,
        *,
        watch_timeout: int = 60,
        request_timeout: float = 30.0,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        """``api`` is a ``kubernetes_asyncio`` ``CoreV1Api``."""
        self.api = api
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self.log = log or _log
        self.state = ClusterState()
        #: API requests made, by kind (``list nodes``, ``watch pods``...).
        self.calls: collections.Counter[str] = collections.Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._synced = asyncio.Event()
        self._stopping = False
        #: The last failure reading the cluster ("" when the last attempt worked).
        self.last_error = ""
        self._catalog_files: dict[str, CatalogFile] = {}
        #: The offers computed last, and the (snapshot, catalog, tolerations) they came from.
        self._offers: _Offers | None = None
        #: The GPU nodes no image of the catalog can use, as last logged.
        self._unusable_logged: tuple[str, ...] = ()

    # -- sharing ------------------------------------------------------------------------------

    @classmethod
    def shared(cls, key: str, factory: Callable[[], Inventory]) -> Inventory:
        """The inventory of this event loop for ``key`` (an API server), made on first use."""
        loop_key = (id(asyncio.get_running_loop()), key)
        inventory = cls._shared.get(loop_key)
        if inventory is None or inventory._stopping:
            inventory = cls._shared[loop_key] = factory()
        return inventory

    @classmethod
    async def stop_shared(cls) -> None:
        """Stop and forget every shared inventory (tests, shutdown)."""
        inventories = list(cls._shared.values())
        cls._shared.clear()
        for inventory in inventories:
            await inventory.stop()

    @classmethod
    def for_kubespawner(cls, **kwargs: Any) -> Inventory:
        """An inventory over KubeSpawner's shared client (its configuration already loaded)."""
        from kubespawner.clients import shared_client

        return cls(shared_client("CoreV1Api"), **kwargs)

    @classmethod
    async def from_kubeconfig(cls, path: str | os.PathLike[str], **kwargs: Any) -> Inventory:
        """An inventory over the cluster a kubeconfig file names (its current context)."""
        from kubernetes_asyncio import client, config

        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=os.fspath(path), client_configuration=configuration
        )
        return cls(client.CoreV1Api(client.ApiClient(configuration)), **kwargs)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the list-and-watch loops (once)."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._loop("nodes", self._list_nodes, self._watch_nodes)),
            asyncio.create_task(self._loop("pods", self._list_pods, self._watch_pods)),
        ]

    async def wait_synced(self, timeout: float) -> bool:
        """Wait until nodes and pods were listed once; False on timeout."""
        self.start()
        if self.state.synced:
            return True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout)
        return self.state.synced

    async def stop(self) -> None:
        """Stop the loops and close the API client's session."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def close(self) -> None:
        """Stop, then close the client (for an inventory that owns its client)."""
        await self.stop()
        api_client = getattr(self.api, "api_client", None)
        if api_client is not None:
            await api_client.close()

    def snapshot(self) -> ClusterSnapshot:
        """The cluster now; no API call."""
        return self.state.snapshot()

    # -- what the spawners derive from it -----------------------------------------------------

    def catalog_file(self, path: str) -> CatalogFile:
        """The hub's reader of the catalog at ``path`` (empty: the shipped catalog)."""
        source = self._catalog_files.get(path)
        if source is None:
            source = self._catalog_files[path] = CatalogFile(path, self.log)
        return source

    def offers(
        self, catalog: Catalog, tolerations: tuple[Toleration, ...] = ()
    ) -> tuple[Offer, ...]:
        """Every profile's offer on the cluster now; no API call.

        Computed once per cluster change (or catalog, or tolerations): the forms rendered in
        between reuse them.
        """
        snapshot = self.snapshot()
        last = self._offers
        if (
            last is not None
            and last.snapshot is snapshot
            and last.catalog is catalog
            and last.tolerations == tolerations
        ):
            return last.offers
        offers = compute_offers(catalog, snapshot, tolerations=tolerations)
        self._offers = _Offers(snapshot, catalog, tolerations, offers)
        if snapshot.synced:
            self._log_unusable(catalog, snapshot)
        return offers

    def _log_unusable(self, catalog: Catalog, snapshot: ClusterSnapshot) -> None:
        """Tell the admin (once per change) about GPU nodes no image of the catalog can use.

        Users never see them: no offer includes them.
        """
        unusable = unusable_nodes(catalog, snapshot)
        names = tuple(node.name for node in unusable)
        if names == self._unusable_logged:
            return
        self._unusable_logged = names
        for node in unusable:
            self.log.warning("gpu-devbox: no image of the catalog can use GPU node %s", node)

    # -- the loops ----------------------------------------------------------------------------

    async def _loop(
        self,
        kind: str,
        list_all: Callable[[], Awaitable[str]],
        watch: Callable[[str], Awaitable[str]],
    ) -> None:
        delay = 0.5
        while not self._stopping:
            failed = await self._list_and_watch(kind, list_all, watch)
            self.last_error = failed
            if failed:
                self.log.warning(
                    "gpu-devbox inventory: reading %s failed (%s); retrying in %.1f s",
                    kind,
                    failed,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                delay = 0.5

    async def _list_and_watch(
        self,
        kind: str,
        list_all: Callable[[], Awaitable[str]],
        watch: Callable[[str], Awaitable[str]],
    ) -> str:
        """List, then watch until the version expires (""), or a failure (its description)."""
        try:
            version = await list_all()
            if self.state.synced:
                self._synced.set()
            while not self._stopping:
                version = await watch(version)
        except _Expired:
            self.log.info("gpu-devbox inventory: %s watch expired; listing again", kind)
        except Exception as exc:  # noqa: BLE001 - any failure: log it, back off, list again
            return f"{type(exc).__name__}: {exc}"
        return ""

    async def _list(
        self, kind: str, call: Callable[..., Awaitable[Any]], **params: Any
    ) -> tuple[list[Any], str]:
        items: list[Any] = []
        token: str | None = None
        version = ""
        while True:
            self.calls[f"list {kind}"] += 1
            kwargs = dict(params, limit=_PAGE, _preload_content=False)
            if token:
                kwargs["_continue"] = token
            response = await call(**kwargs, _request_timeout=self.request_timeout)
            try:
                raw = await response.read()
            finally:
                response.release()
            _check(response.status, raw, f"list {kind}")
            body = json.loads(raw)
            items.extend(body.get("items") or [])
            metadata = body.get("metadata") or {}
            version = str(metadata.get("resourceVersion") or version)
            token = metadata.get("continue") or None
            if not token:
                return items, version

    async def _list_nodes(self) -> str:
        items, version = await self._list("nodes", self.api.list_node)
        self.state.replace_nodes(items)
        return version

    async def _list_pods(self) -> str:
        items, version = await self._list(
            "pods", self.api.list_pod_for_all_namespaces, field_selector=POD_FIELD_SELECTOR
        )
        self.state.replace_pods(items)
        return version

    async def _watch(
        self,
        kind: str,
        call: Callable[..., Awaitable[Any]],
        version: str,
        apply: Callable[[str, dict[str, Any]], None],
        **params: Any,
    ) -> str:
        """One watch request; returns the last resourceVersion seen when the server ends it."""
        self.calls[f"watch {kind}"] += 1
        response = await call(
            **params,
            watch=True,
            resource_version=version,
            timeout_seconds=self.watch_timeout,
            allow_watch_bookmarks=True,
            _preload_content=False,
            _request_timeout=self.watch_timeout + self.request_timeout,
        )
        if response.status >= 400:
            raw = await response.read()
            response.release()
            _check(response.status, raw, f"watch {kind}")
        try:
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind_of_event = event.get("type")
                obj = event.get("object") or {}
                if kind_of_event == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
                    apply(kind_of_event, obj)
        finally:
            response.release()
        return version

    def _apply_node(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.state.remove_node(obj)
        else:
            self.state.upsert_node(obj)

    def _apply_pod(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.state.remove_pod(obj)
        else:
            self.state.upsert_pod(obj)

    async def _watch_nodes(self, version: str) -> str:
        return await self._watch("nodes", self.api.list_node, version, self._apply_node)

    async def _watch_pods(self, version: str) -> str:
        return await self._watch(
            "pods",
            self.api.list_pod_for_all_namespaces,
            version,
            self._apply_pod,
            field_selector=POD_FIELD_SELECTOR,
        )
