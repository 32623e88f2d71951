"""Show what users would be offered: every catalog profile against a cluster's nodes and pods.

An admin's dry run of the spawner. The cluster comes from ``kubectl get nodes -o json`` and
``kubectl get pods -A -o json`` saved to files, or straight from the API server a kubeconfig
names (that needs ``pip install 'gpu-devbox[hub]'``).

``--links BASE_URL`` prints instead the launch links of the catalog (no cluster needed): one
``BASE_URL/hub/spawn?image=NAME`` per image and one ``...?profile=SLUG&image=NAME`` per profile
and image, for READMEs and course pages.

Exit status: 0 when the offers were printed, 1 when the cluster could not be read, 2 on an
invalid catalog or input.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_devbox.cli import CliError
from gpu_devbox.cli.common import bounded_float, print_json

if TYPE_CHECKING:
    from gpu_devbox.catalog import Catalog
    from gpu_devbox.placement import ClusterSnapshot, Offer
    from gpu_devbox.placement.unusable import UnusableNode

_NODES_SHOWN = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``gpu-devbox profiles``."""
    parser.add_argument(
        "--catalog",
        metavar="FILE",
        help="the catalog (YAML) to check (default: the catalog gpu-devbox ships)",
    )
    parser.add_argument(
        "--nodes", metavar="FILE", help="output of `kubectl get nodes -o json` (with --pods)"
    )
    parser.add_argument(
        "--pods", metavar="FILE", help="output of `kubectl get pods -A -o json` (with --nodes)"
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="read nodes and pods from the cluster of this kubeconfig's current context",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=bounded_float(1, 600),
        default=30.0,
        help="with --kubeconfig: how long to wait for the cluster's nodes and pods (default 30)",
    )
    parser.add_argument(
        "--links",
        metavar="BASE_URL",
        help="print a launch link per image and per profile and image for the hub at BASE_URL "
        "(its public address, with JupyterHub's base_url if any), from the catalog alone",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Load the catalog and the cluster, compute the offers and print them."""
    from gpu_devbox.catalog import CatalogError, default_catalog, load_catalog
    from gpu_devbox.placement import compute_offers
    from gpu_devbox.placement.unusable import unusable_nodes

    if args.links is not None:
        return _print_links(args)
    if args.kubeconfig and (args.nodes or args.pods):
        raise CliError("give either --kubeconfig or --nodes and --pods, not both")
    if not args.kubeconfig and not (args.nodes and args.pods):
        raise CliError("give --nodes FILE and --pods FILE, or --kubeconfig PATH")
    try:
        catalog = load_catalog(args.catalog) if args.catalog else default_catalog()
    except CatalogError as exc:
        raise CliError(f"invalid catalog: {exc}") from None
    if args.kubeconfig:
        snapshot = _from_cluster(args.kubeconfig, args.timeout)
        source = f"the cluster of {args.kubeconfig}"
    else:
        snapshot = _from_files(args.nodes, args.pods)
        source = f"{args.nodes} and {args.pods}"
    offers = compute_offers(catalog, snapshot)
    unusable = unusable_nodes(catalog, snapshot)
    if args.json:
        print_json(
            {
                "catalog": catalog.source if args.catalog else None,
                "cluster": _cluster_summary(snapshot),
                "offers": [offer_as_dict(o) for o in offers],
                "unusable_nodes": [
                    {
                        "name": n.name,
                        "model": n.model,
                        "driver": n.driver,
                        "cuda": n.cuda,
                        "reason": n.reason,
                    }
                    for n in unusable
                ],
            }
        )
    else:
        sys.stdout.write(render(offers, snapshot, source, unusable))
    return 0


# ----------------------------------------------------------------------------------------------
# launch links
# ----------------------------------------------------------------------------------------------
def launch_links(catalog: Catalog, base_url: str) -> list[dict[str, str | None]]:
    """Every launch link of a catalog: per image (``profile`` None), then per profile and image.

    Raises:
        CliError: ``base_url`` is not an http(s) address.
    """
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise CliError(
            f"--links: {base_url!r} is not a hub address like https://hub.example.org "
            "(http or https, without ?query or #fragment)"
        )
    spawn = base_url.rstrip("/") + "/hub/spawn?"
    images = list(dict.fromkeys(name for p in catalog.profiles for name in p.images))
    out: list[dict[str, str | None]] = [
        {"image": name, "profile": None, "url": spawn + urllib.parse.urlencode({"image": name})}
        for name in images
    ]
    for profile in catalog.profiles:
        out.extend(
            {
                "image": name,
                "profile": profile.slug,
                "url": spawn + urllib.parse.urlencode({"profile": profile.slug, "image": name}),
            }
            for name in profile.images
        )
    return out


def _print_links(args: argparse.Namespace) -> int:
    from gpu_devbox.catalog import CatalogError, default_catalog, load_catalog

    if args.kubeconfig or args.nodes or args.pods:
        raise CliError("--links needs only the catalog; leave out --kubeconfig, --nodes, --pods")
    try:
        catalog = load_catalog(args.catalog) if args.catalog else default_catalog()
    except CatalogError as exc:
        raise CliError(f"invalid catalog: {exc}") from None
    links = launch_links(catalog, args.links)
    if args.json:
        print_json({"links": links})
        return 0
    rows = [("IMAGE", "PROFILE", "LINK")]
    rows.extend(
        (str(link["image"]), link["profile"] or "(first that can start it)", str(link["url"]))
        for link in links
    )
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        sys.stdout.write(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}\n")
    return 0


# ----------------------------------------------------------------------------------------------
# reading the cluster
# ----------------------------------------------------------------------------------------------
def _read_list(path: str, kind: str, command: str) -> list[Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not text; expected the JSON of `{command}`") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path} is not JSON ({exc}); expected the output of `{command}`") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise CliError(f"{path} is not a list with items; expected the output of `{command}`")
    items: list[Any] = data["items"]
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("metadata"), dict):
            raise CliError(f"{path}: items[{index}] is not a Kubernetes object")
        if item.get("kind", kind) != kind:
            raise CliError(
                f"{path}: items[{index}] is a {item.get('kind')}, not a {kind}; "
                f"expected the output of `{command}`"
            )
    return items


def _from_files(nodes_path: str, pods_path: str) -> ClusterSnapshot:
    from gpu_devbox.placement import ClusterState

    nodes = _read_list(nodes_path, "Node", "kubectl get nodes -o json")
    pods = _read_list(pods_path, "Pod", "kubectl get pods -A -o json")
    return ClusterState.from_objects(nodes, pods).snapshot()


def _from_cluster(kubeconfig: str, timeout: float) -> ClusterSnapshot:
    try:
        client_found = importlib.util.find_spec("kubernetes_asyncio") is not None
    except (ImportError, ValueError):
        client_found = False
    if not client_found:
        raise CliError(
            "--kubeconfig needs the hub extra: pip install 'gpu-devbox[hub]' "
            "(or pass --nodes and --pods files)"
        )
    if not Path(kubeconfig).is_file():
        raise CliError(f"cannot read {kubeconfig}: no such file")
    return asyncio.run(_list_cluster(kubeconfig, timeout))


async def _list_cluster(kubeconfig: str, timeout: float) -> ClusterSnapshot:
    from gpu_devbox_spawner.inventory import Inventory

    quiet = logging.getLogger("gpu_devbox.cli.profiles.inventory")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False  # its retries are summed up in one line below
    try:
        inventory = await Inventory.from_kubeconfig(kubeconfig, request_timeout=10.0, log=quiet)
    except Exception as exc:  # noqa: BLE001 - the client raises many kinds for a bad kubeconfig
        raise CliError(f"invalid kubeconfig {kubeconfig}: {exc}") from None
    try:
        if not await inventory.wait_synced(timeout):
            host = getattr(getattr(inventory.api, "api_client", None), "configuration", None)
            where = getattr(host, "host", "the API server")
            why = f": {inventory.last_error}" if inventory.last_error else ""
            print(
                f"gpu-devbox profiles: could not list nodes and pods from {where} "
                f"in {timeout:g} s (is it reachable, and may this user list them?){why}",
                file=sys.stderr,
            )
            raise SystemExit(1)
        return inventory.snapshot()
    finally:
        await inventory.close()


# ----------------------------------------------------------------------------------------------
# printing
# ----------------------------------------------------------------------------------------------
def _cluster_summary(snapshot: ClusterSnapshot) -> dict[str, int]:
    return {
        "nodes": len(snapshot.nodes),
        "gpu_nodes": sum(1 for s in snapshot.nodes if s.node.gpu is not None),
        "gpu_pods": snapshot.pods,
    }


def offer_as_dict(offer: Offer) -> dict[str, Any]:
    """The JSON form of an offer."""
    return {
        "profile": offer.slug,
        "display_name": offer.profile.display_name,
        "kind": offer.kind.value,
        "available": offer.available,
        "reason": offer.reason,
        "free": offer.free,
        "total": offer.total,
        "max_free": offer.max_free,
        "max_count": offer.max_count if offer.profile.gpu.wants_gpu else 0,
        "models": list(offer.models),
        "default_image": offer.default_image,
        "images": [
            {
                "name": c.image.name,
                "runs": c.runs,
                "free": c.free,
                "total": c.total,
                "max_free": c.max_free,
                "nodes": list(c.nodes),
                "reason": c.reason,
            }
            for c in offer.images
        ],
        "nodes": [
            {
                "name": n.name,
                "model": n.model,
                "resource": n.resource,
                "free": n.free,
                "total": n.total,
                "driver": n.driver,
                "cuda": n.cuda,
                "best_image": n.best_image,
                "images": [
                    {"name": i, "mechanism": m} for i, m in zip(n.images, n.mechanisms, strict=True)
                ],
            }
            for n in offer.nodes
        ],
    }


def render(
    offers: tuple[Offer, ...],
    snapshot: ClusterSnapshot,
    source: str,
    unusable: tuple[UnusableNode, ...] = (),
) -> str:
    """The human-readable report: a table of profiles, then each profile's nodes, then the GPU
    nodes no image of the catalog can use (users never see those)."""
    summary = _cluster_summary(snapshot)
    head = (
        f"{summary['nodes']} nodes ({summary['gpu_nodes']} with GPUs), "
        f"{summary['gpu_pods']} pods holding GPUs, from {source}"
    )
    lines = [head, ""]
    rows = [("PROFILE", "AVAILABLE", "FREE/TOTAL", "GPU", "IMAGE", "WHY NOT")]
    for offer in offers:
        gpu = offer.profile.gpu.wants_gpu
        rows.append(
            (
                offer.slug,
                "yes" if offer.available else "no",
                f"{offer.free}/{offer.total}" if gpu else "-",
                ", ".join(offer.models) if gpu and offer.models else "-",
                offer.default_image,
                offer.reason or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    for offer in offers:
        if not offer.nodes:
            continue
        lines.extend(
            ["", f"{offer.slug} ({offer.profile.display_name}): {len(offer.nodes)} node(s)"]
        )
        for node in offer.nodes[:_NODES_SHOWN]:
            where = ", ".join(
                p
                for p in (
                    node.model,
                    f"driver {node.driver}" if node.driver else "",
                    f"CUDA {node.cuda}" if node.cuda else "",
                )
                if p
            )
            room = f"{node.free} of {node.total} free; " if node.resource else ""
            runs = ", ".join(
                f"{i} ({m})" if node.resource else i
                for i, m in zip(node.images, node.mechanisms, strict=True)
            )
            lines.append(f"  {node.name}{f' ({where})' if where else ''}: {room}runs {runs}")
        if len(offer.nodes) > _NODES_SHOWN:
            lines.append(f"  ... and {len(offer.nodes) - _NODES_SHOWN} more")
        lines.extend(
            f"  image {c.image.name} runs nowhere: {c.reason}" for c in offer.images if not c.runs
        )
    if unusable:
        lines.extend(["", f"GPU nodes no image of the catalog can use: {len(unusable)}"])
        lines.extend(f"  {node}" for node in unusable[:_NODES_SHOWN])
        if len(unusable) > _NODES_SHOWN:
            lines.append(f"  ... and {len(unusable) - _NODES_SHOWN} more")
    return "\n".join(lines) + "\n"
