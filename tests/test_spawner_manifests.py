"""Pod settings from a plan: pure, recomputed from the admin's baseline on every start.

Against the test catalog (tests/fixtures/spawner-catalog.yaml), not the shipped one.
"""

from __future__ import annotations

from typing import Any

from gpu_devbox.catalog import load_catalog, parse_catalog
from gpu_devbox.placement import ClusterState, Plan, compute_offers, plan
from gpu_devbox_spawner.manifests import Baseline, node_affinity, pod_settings, volumes
from tests import k8s_objects as k
from tests.spawners import CATALOG_PATH

CATALOG = load_catalog(CATALOG_PATH)
SNAPSHOT = ClusterState.from_objects(
    [k.gpu_node("a100-1", k.A100), k.gpu_node("a100-2", k.A100), k.node("cpu-1")], []
).snapshot()
OFFERS = {o.slug: o for o in compute_offers(CATALOG, SNAPSHOT)}

ADMIN: dict[str, Any] = {
    "image": "admin/default:1",
    "extra_resource_limits": {"ephemeral-storage": "20Gi", "nvidia.com/gpu": "0"},
    "extra_resource_guarantees": {"nvidia.com/gpu": "1"},
    "cpu_limit": 8.0,
    "cpu_guarantee": None,
    "mem_limit": None,
    "mem_guarantee": None,
    "node_affinity_required": [],
    "node_affinity_preferred": [],
    "tolerations": {
        "hub": {
            "key": "hub.jupyter.org/dedicated",
            "operator": "Equal",
            "value": "user",
            "effect": "NoSchedule",
        }
    },
    "environment": {"NVIDIA_VISIBLE_DEVICES": "all", "TZ": "UTC"},
    "volumes": [
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}},
        {"name": "old-shm", "emptyDir": {}},
    ],
    "volume_mounts": [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "old-shm", "mountPath": "/dev/shm"},
    ],
    "extra_labels": {"team": "ml"},
}


def gpu_plan(count: int = 2) -> Plan:
    return plan(OFFERS["big"], "torch13", count)


def cpu_plan() -> Plan:
    return plan(OFFERS["cpu"], "py", 0)


def test_gpu_settings() -> None:
    settings = pod_settings(gpu_plan(), Baseline.capture(ADMIN))
    assert settings["image"] == "example.org/nb:torch-cuda13.0"
    # limits only: the admin's other limits stay, their GPU entries are replaced
    assert settings["extra_resource_limits"] == {"ephemeral-storage": "20Gi", "nvidia.com/gpu": "2"}
    assert settings["extra_resource_guarantees"] == {}
    assert settings["node_affinity_required"] == [
        {
            "matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["a100-1", "a100-2"]}
            ]
        }
    ]
    assert settings["tolerations"] == [
        {
            "key": "hub.jupyter.org/dedicated",
            "operator": "Equal",
            "value": "user",
            "effect": "NoSchedule",
        },
        {"key": "nvidia.com/gpu", "operator": "Exists"},
    ]
    env = settings["environment"]
    assert "NVIDIA_VISIBLE_DEVICES" not in env  # the device plugin sets it
    assert env["TZ"] == "UTC"
    assert (env["GPU_DEVBOX_PROFILE"], env["GPU_DEVBOX_IMAGE"]) == ("big", "torch13")
    assert env["GPU_DEVBOX_REQUESTED_GPUS"] == "2"  # read by the doctor's driver-capabilities check
    # the catalog's resources win, the admin's fill what the catalog leaves open
    assert (settings["cpu_guarantee"], settings["cpu_limit"]) == (8.0, 32.0)
    assert (settings["mem_guarantee"], settings["mem_limit"]) == (64 * 1024**3, 256 * 1024**3)
    assert settings["extra_labels"] == {
        "team": "ml",
        "gpu-devbox.io/profile": "big",
        "gpu-devbox.io/image": "torch13",
    }


def test_cpu_settings_hide_gpus_and_prefer_cpu_nodes() -> None:
    settings = pod_settings(cpu_plan(), Baseline.capture(ADMIN))
    assert settings["extra_resource_limits"] == {"ephemeral-storage": "20Gi"}
    assert settings["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert settings["environment"]["GPU_DEVBOX_REQUESTED_GPUS"] == "0"
    assert settings["node_affinity_required"] == []
    assert settings["node_affinity_preferred"] == [
        {
            "weight": 100,
            "preference": {
                "matchExpressions": [{"key": "nvidia.com/gpu.count", "operator": "DoesNotExist"}]
            },
        }
    ]
    assert {"key": "nvidia.com/gpu", "operator": "Exists"} not in settings["tolerations"]


def test_a_cpu_start_after_a_gpu_start_keeps_nothing_of_it() -> None:
    baseline = Baseline.capture(ADMIN)
    traits: dict[str, Any] = dict(ADMIN)
    traits.update(pod_settings(gpu_plan(), baseline))  # as the spawner sets them
    traits["extra_resource_limits"]["leak"] = "1"  # a later in-place change to the live value
    traits.update(pod_settings(cpu_plan(), baseline))
    assert traits == {**ADMIN, **pod_settings(cpu_plan(), Baseline.capture(ADMIN))}
    assert "nvidia.com/gpu" not in traits["extra_resource_limits"]
    assert "leak" not in traits["extra_resource_limits"]
    assert ADMIN["extra_resource_limits"] == {"ephemeral-storage": "20Gi", "nvidia.com/gpu": "0"}


def test_volumes_shm_and_the_catalogs_win_a_clash() -> None:
    vols, mounts = volumes(ADMIN["volumes"], ADMIN["volume_mounts"], CATALOG.profile("one"))
    assert vols == [
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}},
        {"name": "gpu-devbox-shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}},
    ]
    assert mounts == [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "gpu-devbox-shm", "mountPath": "/dev/shm"},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    custom = parse_catalog(
        {
            "images": [{"name": "i", "reference": "x/i:1"}],
            "profiles": [
                {
                    "slug": "p",
                    "display_name": "P",
                    "images": ["i"],
                    "volumes": [
                        {
                            "name": "notebooks",
                            "claim": "{pvc_name}",
                            "mount": "/home/jovyan",
                            "read_only": True,
                        }
                    ],
                }
            ],
        }
    )
    vols, mounts = volumes(ADMIN["volumes"], ADMIN["volume_mounts"], custom.profile("p"))
    assert [v["name"] for v in vols] == ["old-shm", "notebooks"]  # home's mount path is taken
    assert mounts == [
        {"name": "old-shm", "mountPath": "/dev/shm"},
        {"name": "notebooks", "mountPath": "/home/jovyan", "readOnly": True},
    ]


def test_node_affinity_adds_the_pin_to_every_admin_term() -> None:
    terms = [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
    ]
    pinned = node_affinity(terms, ["n2", "n1"])
    pin = {"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}
    assert pinned == [{**t, "matchFields": [pin]} for t in terms]
    assert "matchFields" not in terms[0]  # the admin's terms are not changed


def test_baseline_reads_dict_form_lists() -> None:
    base = Baseline.capture({"tolerations": {"b": {"key": "b"}, "a": {"key": "a"}, "off": None}})
    assert base.get("tolerations") == [{"key": "a"}, {"key": "b"}]
    assert base.get("environment") == {}
    assert base.get("volumes") == []
