"""Pod settings from a placement plan: pure functions from plain data to KubeSpawner trait values.

Every value is computed afresh from the admin's configuration as it was before gpu-devbox
touched the spawner (:class:`Baseline`) and the plan for this start, and returned as new
objects: nothing is merged into what a previous start left behind (KubeSpawner's profile
overrides merge dicts in place, which is how a GPU profile's limits survived into a later CPU
start, jupyterhub/kubespawner#546).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gpu_devbox.catalog import Profile, Toleration, Volume
from gpu_devbox.catalog.loader import SHM_MOUNT
from gpu_devbox.catalog.units import format_size
from gpu_devbox.placement import GPU_TOLERATION, NVIDIA_PREFIX, Plan

#: What CUDA images set to ``all``: a pod without GPUs would otherwise see every GPU of its node
#: (NVIDIA/k8s-device-plugin#61).
VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
SHM_VOLUME = "gpu-devbox-shm"
LABEL_PROFILE = "gpu-devbox.io/profile"
LABEL_IMAGE = "gpu-devbox.io/image"
#: A label only GPU nodes have (GFD writes it); CPU servers prefer nodes without it.
GPU_NODE_LABEL = "nvidia.com/gpu.count"

#: The KubeSpawner traits gpu-devbox sets on every start.
OWNED_TRAITS = (
    "image",
    "extra_resource_limits",
    "extra_resource_guarantees",
    "cpu_limit",
    "cpu_guarantee",
    "mem_limit",
    "mem_guarantee",
    "node_affinity_required",
    "node_affinity_preferred",
    "tolerations",
    "environment",
    "volumes",
    "volume_mounts",
    "extra_labels",
    "storage_pvc_ensure",
    "pvc_name_template",
    "storage_capacity",
    "storage_class",
    "storage_access_modes",
)
#: Names KubeSpawner expands to something of the user's or the server's: a claim whose name
#: has none of them is one claim for every user (a shared NFS volume, say).
PER_USER_FIELDS = (
    "{username}",
    "{userid}",
    "{unescaped_username}",
    "{user_server}",
    "{safe_username}",
    "{escaped_username}",
    "{safe_user_server}",
    "{escaped_user_server}",
)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The admin's own values of the traits gpu-devbox sets, captured before the first start."""

    values: Mapping[str, Any]

    @classmethod
    def capture(cls, values: Mapping[str, Any]) -> Baseline:
        """Deep copies, with KubeSpawner's dict-form lists turned into lists."""
        out: dict[str, Any] = {}
        for name in OWNED_TRAITS:
            value = copy.deepcopy(values.get(name))
            if name in (
                "tolerations",
                "volumes",
                "volume_mounts",
                "node_affinity_required",
                "node_affinity_preferred",
            ):
                value = as_list(value)
            elif name in (
                "extra_resource_limits",
                "extra_resource_guarantees",
                "environment",
                "extra_labels",
            ):
                value = dict(value or {})
            elif name == "storage_access_modes":
                value = list(value or [])
            out[name] = value
        return cls(out)

    def get(self, name: str) -> Any:
        """A fresh copy of one captured value."""
        return copy.deepcopy(self.values.get(name))


def as_list(value: Any) -> list[Any]:
    """KubeSpawner accepts lists or dicts (sorted by key) for list-like traits."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value[key] for key in sorted(value) if value[key] is not None]
    return list(value)


def gpu_limits(plan: Plan) -> dict[str, str]:
    """The extended-resource limits of a plan (requests default to limits for these)."""
    if plan.resource is None or plan.count <= 0:
        return {}
    return {plan.resource: str(plan.count)}


def without_gpus(resources: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without any ``nvidia.com/*`` resource (ours replace the admin's)."""
    return {k: v for k, v in resources.items() if not str(k).startswith(NVIDIA_PREFIX)}


def node_affinity(
    base_terms: Sequence[Mapping[str, Any]], nodes: Sequence[str]
) -> list[dict[str, Any]]:
    """Required node-selector terms that also pin the pod to ``nodes``.

    Terms are ORed, so the pin is added to each of the admin's terms (AND), or becomes the
    only term. It matches ``metadata.name``, which is exact, unlike the hostname label.
    """
    pin = {"key": "metadata.name", "operator": "In", "values": sorted(nodes)}
    if not base_terms:
        return [{"matchFields": [pin]}]
    terms = []
    for term in base_terms:
        merged = copy.deepcopy(dict(term))
        merged["matchFields"] = [*merged.get("matchFields", []), pin]
        terms.append(merged)
    return terms


def prefer_cpu_nodes() -> dict[str, Any]:
    """A preferred node-affinity term that keeps CPU servers off GPU nodes when it can."""
    return {
        "weight": 100,
        "preference": {"matchExpressions": [{"key": GPU_NODE_LABEL, "operator": "DoesNotExist"}]},
    }


def tolerations(
    base: Sequence[Mapping[str, Any]], profile: Profile, extra: Iterable[Toleration] = ()
) -> list[dict[str, Any]]:
    """The admin's tolerations, then the GPU taint's (GPU profiles) and the profile's."""
    out: list[dict[str, Any]] = [dict(t) for t in base]
    wanted = [*extra, *profile.tolerations]
    if profile.gpu.wants_gpu:
        wanted.insert(0, GPU_TOLERATION)
    for toleration in wanted:
        item = toleration.to_k8s()
        if item not in out:
            out.append(item)
    return out


def volume_source(volume: Volume) -> dict[str, Any]:
    """The pod-spec volume for a catalog volume."""
    if volume.claim is not None:
        return {"name": volume.name, "persistentVolumeClaim": {"claimName": volume.claim}}
    assert volume.scratch is not None
    return {"name": volume.name, "emptyDir": {"sizeLimit": format_size(volume.scratch)}}


def volumes(
    base_volumes: Sequence[Mapping[str, Any]],
    base_mounts: Sequence[Mapping[str, Any]],
    profile: Profile,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The admin's volumes plus the catalog's and ``/dev/shm``; the catalog wins a clash.

    A catalog volume replaces an admin volume of the same name, and an admin mount at a path
    the catalog mounts is dropped (with its volume, when nothing else mounts it).
    """
    ours: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if profile.shm is not None:
        ours.append(
            (
                {
                    "name": SHM_VOLUME,
                    "emptyDir": {"medium": "Memory", "sizeLimit": format_size(profile.shm)},
                },
                {"name": SHM_VOLUME, "mountPath": SHM_MOUNT},
            )
        )
    for volume in profile.volumes:
        mount: dict[str, Any] = {"name": volume.name, "mountPath": volume.mount}
        if volume.sub_path:
            mount["subPath"] = volume.sub_path
        if volume.read_only:
            mount["readOnly"] = True
        ours.append((volume_source(volume), mount))
    names = {v["name"] for v, _ in ours}
    paths = {m["mountPath"].rstrip("/") for _, m in ours}
    mounts = [
        dict(m)
        for m in base_mounts
        if m.get("name") not in names and str(m.get("mountPath", "")).rstrip("/") not in paths
    ]
    still_mounted = {m.get("name") for m in mounts}
    dropped = {m.get("name") for m in base_mounts} - still_mounted
    vols = [
        dict(v) for v in base_volumes if v.get("name") not in names and v.get("name") not in dropped
    ]
    return [*vols, *(v for v, _ in ours)], [*mounts, *(m for _, m in ours)]


def created_claim(profile: Profile) -> Volume | None:
    """The profile's claim volume gpu-devbox creates when missing (one with ``size``)."""
    return next((v for v in profile.volumes if v.claim and v.size is not None), None)


def is_shared_claim(volume: Volume) -> bool:
    """Whether a claim's name is the same for every user (deleting a user must keep it)."""
    return volume.claim is not None and not any(f in volume.claim for f in PER_USER_FIELDS)


def storage(baseline: Baseline, profile: Profile) -> dict[str, Any]:
    """KubeSpawner's storage traits: the profile's created claim, else the admin's own.

    KubeSpawner creates one claim per server (``storage_pvc_ensure``) from these traits;
    gpu-devbox points them at the catalog volume with a ``size``.
    """
    volume = created_claim(profile)
    if volume is None:
        return {
            name: baseline.get(name)
            for name in (
                "storage_pvc_ensure",
                "pvc_name_template",
                "storage_capacity",
                "storage_class",
                "storage_access_modes",
            )
        }
    assert volume.claim is not None
    assert volume.size is not None
    return {
        "storage_pvc_ensure": True,
        "pvc_name_template": volume.claim,
        "storage_capacity": format_size(volume.size),
        "storage_class": volume.storage_class,
        "storage_access_modes": [volume.access_mode or "ReadWriteOnce"],
    }


def environment(base: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    """The admin's environment, plus what the server should know about its profile."""
    env = {k: v for k, v in base.items() if k != VISIBLE_DEVICES}
    env["GPU_DEVBOX_PROFILE"] = plan.offer.profile.slug
    env["GPU_DEVBOX_IMAGE"] = plan.image.name
    # What was asked for, so the doctor can warn when GPUs are visible to a CPU profile.
    env["GPU_DEVBOX_REQUESTED_GPUS"] = str(plan.count if plan.resource is not None else 0)
    if plan.resource is None:
        env[VISIBLE_DEVICES] = "void"
    return env


def pod_settings(
    plan: Plan, baseline: Baseline, *, extra_tolerations: Iterable[Toleration] = ()
) -> dict[str, Any]:
    """KubeSpawner trait values for one start, from the plan and the admin's baseline."""
    profile = plan.offer.profile
    limits = without_gpus(baseline.get("extra_resource_limits"))
    limits.update(gpu_limits(plan))
    base_volumes, base_mounts = baseline.get("volumes"), baseline.get("volume_mounts")
    vols, mounts = volumes(base_volumes, base_mounts, profile)
    preferred = baseline.get("node_affinity_preferred")
    required = baseline.get("node_affinity_required")
    if plan.resource is not None:
        required = node_affinity(required, plan.nodes)
    else:
        preferred = [*preferred, prefer_cpu_nodes()]
    labels = dict(baseline.get("extra_labels"))
    labels[LABEL_PROFILE] = profile.slug
    labels[LABEL_IMAGE] = plan.image.name
    cpu, memory = profile.cpu, profile.memory
    return {
        "image": plan.image.reference,
        "extra_resource_limits": limits,
        "extra_resource_guarantees": without_gpus(baseline.get("extra_resource_guarantees")),
        "cpu_limit": cpu.limit if cpu.limit is not None else baseline.get("cpu_limit"),
        "cpu_guarantee": cpu.guarantee
        if cpu.guarantee is not None
        else baseline.get("cpu_guarantee"),
        "mem_limit": int(memory.limit) if memory.limit is not None else baseline.get("mem_limit"),
        "mem_guarantee": int(memory.guarantee)
        if memory.guarantee is not None
        else baseline.get("mem_guarantee"),
        "node_affinity_required": required,
        "node_affinity_preferred": preferred,
        "tolerations": tolerations(baseline.get("tolerations"), profile, extra_tolerations),
        "environment": environment(baseline.get("environment"), plan),
        "volumes": vols,
        "volume_mounts": mounts,
        "extra_labels": labels,
        **storage(baseline, profile),
    }
