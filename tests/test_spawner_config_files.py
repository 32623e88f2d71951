"""The shipped hub configuration: RBAC manifests, the example config and the Z2JH values."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml
from traitlets.config.loader import PyFileConfigLoader

from gpu_devbox.catalog import parse_catalog_text
from gpu_devbox.images.prepull import z2jh_values

HUB = Path(__file__).resolve().parents[1] / "jupyter-config" / "hub"


def test_rbac_reads_nodes_and_pods_cluster_wide() -> None:
    documents = list(yaml.safe_load_all((HUB / "rbac.yaml").read_text()))
    for document in documents:
        kubernetes_validate.validate(document, "1.37.0", strict=True)
    role = next(d for d in documents if d["kind"] == "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["get", "list", "watch"]}
    ]
    binding = next(d for d in documents if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_the_example_config_loads() -> None:
    config = PyFileConfigLoader("jupyterhub_config.py", path=str(HUB)).load_config()
    assert config.JupyterHub.spawner_class == "gpu-devbox"
    assert config.GPUDevboxSpawner.catalog_path.endswith(".yaml")
    assert config.GPUDevboxSpawner.deep_links == "preselect"


def test_the_z2jh_values_carry_a_valid_catalog_and_the_spawner() -> None:
    values = yaml.safe_load((HUB / "z2jh-values.yaml").read_text())
    extra = values["hub"]["extraFiles"]["gpu-devbox-catalog"]
    catalog = parse_catalog_text(extra["stringData"], "z2jh-values.yaml")
    assert [p.slug for p in catalog.profiles] == ["cpu", "gpu-1"]
    config = values["hub"]["extraConfig"]["gpu-devbox"]
    assert 'c.JupyterHub.spawner_class = "gpu-devbox"' in config
    assert extra["mountPath"] in config
    assert values["singleuser"]["profileList"] == []


def test_the_z2jh_values_use_the_hub_image_and_prepull_the_cpu_images() -> None:
    values = yaml.safe_load((HUB / "z2jh-values.yaml").read_text())
    dockerfile = (HUB.parents[1] / "images" / "hub.Dockerfile").read_text()
    chart = dockerfile.split("ARG Z2JH_VERSION=", 1)[1].split()[0]
    assert values["hub"]["image"]["tag"] == chart  # named after the chart it was built from
    extra = values["hub"]["extraFiles"]["gpu-devbox-catalog"]
    catalog = parse_catalog_text(extra["stringData"], "z2jh-values.yaml")
    # what `gpu-devbox images prepull --values` prints for this catalog
    assert values["prePuller"] == z2jh_values(catalog)["prePuller"]
