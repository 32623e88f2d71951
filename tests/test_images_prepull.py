"""``gpu-devbox images prepull``: CUDA images pulled only onto nodes whose driver runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gpu_devbox.catalog import default_catalog, load_catalog
from gpu_devbox.cli import main
from gpu_devbox.cuda.compat import max_cuda_for_driver
from gpu_devbox.images.prepull import cuda_images, daemonsets, driver_floor, z2jh_values
from gpu_devbox.placement.eligibility import image_runs
from gpu_devbox.placement.nodes import parse_node
from tests import k8s_objects as k

K8S_VERSION = "1.37.0"
#: Drivers around every floor the catalog's images have (R525's minor-version floor 525.60.13,
#: R560's native 12.6, R580's 13.0), single-digit minors and an old R470.
DRIVERS = [
    "470.256.02",
    "525.60.12",
    "525.60.13",
    "525.85.05",
    "535.183.01",
    "550.54.15",
    "560.28.03",
    "570.86.15",
    "575.51.03",
    "580.65.05",
    "580.65.06",
    "580.95.05",
    "580.105.08",
    "590.44.01",
    "610.4.2",
]


def _matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    """A node affinity expression as the scheduler reads it (In, Gt: numbers)."""
    value = labels.get(expression["key"])
    if value is None:
        return False
    if expression["operator"] == "In":
        return value in expression["values"]
    assert expression["operator"] == "Gt", expression
    (bound,) = expression["values"]
    return int(value) > int(bound)


def admitted(document: dict[str, Any], labels: dict[str, str]) -> bool:
    spec = document["spec"]["template"]["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return any(
        all(_matches(e, labels) for e in term["matchExpressions"])
        for term in terms["nodeSelectorTerms"]
    )


@pytest.mark.parametrize("old_labels", [False, True], ids=["labels", "deprecated-labels"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_daemonset_admits_exactly_the_nodes_whose_driver_runs_its_image(
    driver: str, old_labels: bool
) -> None:
    catalog = default_catalog()
    node_object = k.gpu_node(
        "gpu-1",
        k.H100,
        driver=driver,
        cuda=max_cuda_for_driver(driver) or "11.0",
        old_labels=old_labels,
    )
    node = parse_node(node_object)
    labels = node_object["metadata"]["labels"]
    documents = {
        d["metadata"]["annotations"]["gpu-devbox.io/reference"]: d for d in daemonsets(catalog)
    }
    assert len(documents) == len(cuda_images(catalog)) > 0
    for image in cuda_images(catalog):
        runs = bool(image_runs(image, node)[0])  # the spawner's verdict for this node
        assert admitted(documents[image.reference], labels) == runs, (image.name, driver)


def test_a_cpu_node_pulls_no_cuda_image() -> None:
    labels = k.node("cpu-1")["metadata"].get("labels", {})
    assert not any(admitted(d, labels) for d in daemonsets(default_catalog()))


def test_the_daemonsets_are_valid_kubernetes_objects() -> None:
    for document in daemonsets(default_catalog(), namespace="jhub"):
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        spec = document["spec"]["template"]["spec"]
        (pull,) = spec["initContainers"]
        assert pull["image"] == document["metadata"]["annotations"]["gpu-devbox.io/reference"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists"} in spec["tolerations"]
        assert document["metadata"]["namespace"] == "jhub"


def test_floors_follow_the_driver_tables() -> None:
    catalog = default_catalog()
    floors = {image.name: driver_floor(image) for image in cuda_images(catalog)}
    assert floors["cuda12-base"] == (525, 60, 13)  # minor-version compatibility of CUDA 12
    assert floors["cuda13-pytorch"] == (580, 0, 0)  # every R580 driver runs CUDA 13.0
    assert driver_floor(catalog.image("cpu")) is None


def test_z2jh_values_hold_the_images_without_cuda() -> None:
    values = z2jh_values(default_catalog())
    assert values == {
        "prePuller": {
            "extraImages": {
                "gpu-devbox-cpu": {"name": "ghcr.io/gpu-devbox/base-notebook", "tag": "cpu"}
            }
        }
    }


def _catalog(tmp_path: Path, reference: str, cuda: str | None = None) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "images": [{"name": "nb", "reference": reference, "cuda": cuda}],
                "profiles": [{"slug": "p", "display_name": "P", "images": ["nb"]}],
            }
        )
    )
    return path


def test_a_digest_stays_in_the_tag(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    catalog = load_catalog(_catalog(tmp_path, f"example.org/nb:2026.1@{digest}"))
    assert z2jh_values(catalog)["prePuller"]["extraImages"]["gpu-devbox-nb"] == {
        "name": "example.org/nb",
        "tag": f"2026.1@{digest}",
    }


def test_the_cli_prints_daemonsets_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["images", "prepull", "--namespace", "jhub"]) == 0
    out = capsys.readouterr().out
    assert "&id" not in out  # no YAML anchors: people read this
    assert "*id" not in out
    documents = list(yaml.safe_load_all(out))
    assert [d["metadata"]["name"] for d in documents] == [
        f"gpu-devbox-prepull-{image.name}" for image in cuda_images(default_catalog())
    ]
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    assert main(["images", "prepull", "--values"]) == 0
    values = yaml.safe_load(capsys.readouterr().out)
    assert values == z2jh_values(default_catalog())


def test_the_cli_refuses_what_it_cannot_pull(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest_only = _catalog(tmp_path, "example.org/nb@sha256:" + "b" * 64)
    assert main(["images", "prepull", "--values", "--catalog", str(digest_only)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "image 'nb': example.org/nb@sha256:" in err
    assert "needs a tag" in err
