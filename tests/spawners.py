"""GPUDevboxSpawner without a cluster, built the way JupyterHub's tests build theirs.

JupyterHub's ``jupyterhub/tests/mocking.py`` makes test spawners by subclassing and injecting
fakes from the tests, never through a switch in the spawner. Likewise here:

- :class:`FixedInventory` is the real inventory over node and pod objects the test gives; it
  lists and watches nothing (the Kubernetes API is one of the two seams tests fake).
- :class:`SpawnerOnFixedCluster` is GPUDevboxSpawner whose shared inventory is that one.
- :func:`new_spawner` makes one for a real JupyterHub user: a ``jupyterhub.user.User`` over an
  in-memory SQLite database (where JupyterHub saves each server's user options), with
  KubeSpawner's client configured from a kubeconfig (fixture ``kube_client_config``) for an
  address where nothing listens, so that an API call a test did not mean to make fails.
  A test module imports the fixtures (``hub_db_fixture``, ``kube_client_config_fixture``).
- :func:`rest_start` and :func:`spawn_page` are the request handlers JupyterHub passes a
  spawner as ``spawner.handler``, over real tornado requests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from jupyterhub import orm
from jupyterhub.apihandlers.users import UserServerAPIHandler
from jupyterhub.handlers.pages import SpawnHandler
from jupyterhub.objects import Hub
from jupyterhub.user import User
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import kube_config
from kubespawner.clients import load_config
from sqlalchemy.orm import Session
from tornado import httputil, web
from traitlets import Instance
from traitlets.config import Config

from gpu_devbox.placement import ClusterState
from gpu_devbox_spawner.inventory import Inventory
from gpu_devbox_spawner.spawner import GPUDevboxSpawner

#: The catalog the spawner's logic tests offer from (not the shipped one).
CATALOG_PATH = Path(__file__).with_name("fixtures") / "spawner-catalog.yaml"

_names = itertools.count(1)


class FixedInventory(Inventory):
    """The inventory of a cluster that does not change: the objects given, no API calls."""

    def __init__(
        self, nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
    ) -> None:
        super().__init__(api=None)
        self.state = ClusterState.from_objects(nodes, pods)

    def start(self) -> None:
        """Nothing to list or watch: the state is complete."""


class SpawnerOnFixedCluster(GPUDevboxSpawner):
    """GPUDevboxSpawner over a :class:`FixedInventory` instead of the hub's shared one."""

    cluster = Instance(Inventory, allow_none=True)

    def shared_inventory(self) -> Inventory:
        assert self.cluster is not None, "the test gives the spawner its cluster"
        return self.cluster


@pytest.fixture(name="kube_client_config")
def kube_client_config_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """KubeSpawner's client configured from a kubeconfig, as a hub's is (nothing listens)."""
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        "clusters: [{name: test, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: test, user: {token: test}}]\n"
        "contexts: [{name: test, context: {cluster: test, user: test}}]\n"
    )
    saved_location = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    saved_default = Configuration.get_default_copy()
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    load_config.cache_clear()
    try:
        yield
    finally:
        load_config.cache_clear()
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved_location
        Configuration.set_default(saved_default)


@pytest.fixture(name="hub_db", scope="module")
def hub_db_fixture() -> Iterator[Session]:
    """JupyterHub's database, in memory: users, their servers and saved user options."""
    db = orm.new_session_factory("sqlite:///:memory:")()
    yield db
    db.close()


def new_spawner(
    db: Session,
    cluster: Inventory,
    *,
    saved_options: Any = None,
    **config: Any,
) -> SpawnerOnFixedCluster:
    """The default server's spawner of a new user, as JupyterHub makes it.

    ``config`` sets ``c.GPUDevboxSpawner`` options (the test catalog unless ``catalog_path``
    is given); ``saved_options`` are the user options JupyterHub saved with the server.
    """
    cfg = Config()
    cfg.GPUDevboxSpawner.catalog_path = str(CATALOG_PATH)
    for key, value in config.items():
        cfg.GPUDevboxSpawner[key] = value
    orm_user = orm.User(name=f"user-{next(_names)}")
    db.add(orm_user)
    db.commit()
    settings = {"spawner_class": SpawnerOnFixedCluster, "config": cfg, "hub": Hub()}
    user = User(orm_user, settings)
    spawner = user.spawners[""]
    assert isinstance(spawner, SpawnerOnFixedCluster)
    spawner.cluster = cluster
    if saved_options is not None:
        spawner.orm_spawner.user_options = saved_options
        db.commit()
    return spawner


class _Connection:
    """What a tornado request needs of its connection when no one is on the other end."""

    def set_close_callback(self, callback: Any) -> None:
        pass


def _request(method: str, target: str, body: bytes = b"") -> httputil.HTTPServerRequest:
    return httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine(method, target, "HTTP/1.1"),
        headers=httputil.HTTPHeaders({"Host": "hub.test"}),
        body=body,
        connection=_Connection(),
    )


def _application() -> web.Application:
    return web.Application(hub=Hub())


def rest_start(body: bytes) -> UserServerAPIHandler:
    """The handler of ``POST /hub/api/users/<name>/server`` with this body."""
    return UserServerAPIHandler(_application(), _request("POST", "/hub/api/users/u/server", body))


def spawn_page(method: str = "GET", query: str = "", body: bytes = b"") -> SpawnHandler:
    """The handler of the spawn page (``GET`` with a deep link's query, or the form's ``POST``)."""
    target = "/hub/spawn" + (f"?{query}" if query else "")
    return SpawnHandler(_application(), _request(method, target, body))
