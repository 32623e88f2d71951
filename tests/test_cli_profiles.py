"""``gpu-devbox profiles``: the admin's dry run from kubectl output, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpu_devbox.catalog import default_catalog
from gpu_devbox.cli import main
from tests import k8s_objects as k

#: The catalog these tests judge the cluster with (not the shipped one: see its header).
CATALOG = str(Path(__file__).parent / "fixtures" / "placement-catalog.yaml")

NODES = [
    k.gpu_node("v100-1", k.V100, driver="535.183.01", cuda="12.2"),
    k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
    k.gpu_node("h100-1", k.H100),
    k.mig_mixed_node("mig-1", k.A100, {"1g.10gb": (7, 9728)}),
    k.node("cpu-1"),
]
PODS = [*k.gpu_pods("h100-1", 8), *k.gpu_pods("a100-1", 3)]


def kubectl_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """What `kubectl get ... -o json` prints."""
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    nodes, pods = tmp_path / "nodes.json", tmp_path / "pods.json"
    nodes.write_text(json.dumps(kubectl_list(NODES)))
    pods.write_text(json.dumps(kubectl_list(PODS)))
    return str(nodes), str(pods)


def test_the_table(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    nodes, pods = files
    assert main(["profiles", "--catalog", CATALOG, "--nodes", nodes, "--pods", pods]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"5 nodes (4 with GPUs), 11 pods holding GPUs, from {nodes} and {pods}"
    row = next(line for line in lines if line.startswith("gpu-1 "))
    assert row.split()[:3] == ["gpu-1", "yes", "13/24"]
    assert "cuda12-pytorch" in row
    assert "shared-gpu  no" in out
    assert "No node offers shared GPUs (time-slicing or MPS)." in out
    assert (
        "  a100-1 (A100-SXM4-80GB, driver 550.54.15, CUDA 12.4): 5 of 8 free; "
        "runs cuda12-pytorch (minor_version), cuda12-base (minor_version)"
    ) in lines
    assert "  mig-1 (A100-SXM4-80GB, driver 580.65.06, CUDA 13.0): 7 of 7 free; runs" in out


def test_without_a_catalog_the_shipped_one_judges_the_cluster(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = files
    assert main(["profiles", "--nodes", nodes, "--pods", pods, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["catalog"] is None
    assert [o["profile"] for o in data["offers"]] == [p.slug for p in default_catalog().profiles]


def test_json(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    nodes, pods = files
    assert main(["profiles", "--catalog", CATALOG, "--nodes", nodes, "--pods", pods, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["catalog"] == CATALOG
    assert data["cluster"] == {"nodes": 5, "gpu_nodes": 4, "gpu_pods": 11}
    offers = {o["profile"]: o for o in data["offers"]}
    assert (offers["gpu-1"]["free"], offers["gpu-1"]["total"], offers["gpu-1"]["max_count"]) == (
        13,
        24,
        1,
    )
    assert offers["gpu-multi"]["max_count"] == 8
    assert offers["mig-small"]["nodes"][0]["resource"] == "nvidia.com/mig-1g.10gb"
    h100 = next(n for n in offers["gpu-1"]["nodes"] if n["name"] == "h100-1")
    assert h100["best_image"] == "cuda13-pytorch"
    assert h100["images"][0] == {"name": "cuda13-pytorch", "mechanism": "native"}
    assert offers["shared-gpu"]["available"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "{nodes}"], "give --nodes FILE and --pods FILE, or --kubeconfig PATH"),
        (["--nodes", "{nodes}", "--pods", "{pods}", "--kubeconfig", "x"], "not both"),
        (
            ["--nodes", "{missing}", "--pods", "{pods}"],
            "cannot read {missing}: No such file or directory",
        ),
        (
            ["--nodes", "{garbage}", "--pods", "{pods}"],
            "{garbage} is not JSON (Expecting property name",
        ),
        (["--nodes", "{pods}", "--pods", "{pods}"], "{pods}: items[0] is a Pod, not a Node"),
        (["--nodes", "{nodes}", "--pods", "{object}"], "{object} is not a list with items"),
        (
            ["--catalog", "{garbage}", "--nodes", "{nodes}", "--pods", "{pods}"],
            "invalid catalog: {garbage}:1: ",
        ),
        (
            ["--catalog", "{bad_catalog}", "--nodes", "{nodes}", "--pods", "{pods}"],
            "profiles[1].gpu.count: must be",
        ),
        (["--kubeconfig", "{missing}"], "cannot read {missing}: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    files: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    nodes, pods = files
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{{not json")
    obj = tmp_path / "object.json"
    obj.write_text(json.dumps(k.node("x")))
    bad_catalog = tmp_path / "bad.yaml"
    bad_catalog.write_text(Path(CATALOG).read_text().replace("gpu: {count: 1}", "gpu: {count: 0}"))
    names = {
        "nodes": nodes,
        "pods": pods,
        "missing": str(tmp_path / "missing.json"),
        "garbage": str(garbage),
        "object": str(obj),
        "bad_catalog": str(bad_catalog),
    }
    assert main(["profiles", *(a.format(**names) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("gpu-devbox profiles: error: ")
    assert message.format(**names) in err


def test_kubeconfig_without_the_hub_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("{}")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    assert main(["profiles", "--kubeconfig", str(config)]) == 2
    assert (
        "--kubeconfig needs the hub extra: pip install 'gpu-devbox[hub]'" in capsys.readouterr().err
    )


def test_the_cli_does_not_import_the_hub_side(files: tuple[str, str]) -> None:
    nodes, pods = files
    hub_side = (
        "{'jupyterhub', 'kubespawner', 'kubernetes_asyncio', 'tornado', 'gpu_devbox_spawner'}"
    )
    code = (
        "import sys; from gpu_devbox.cli import main; "
        f"assert not {hub_side} & set(sys.modules); "
        f"assert main(['profiles', '--catalog', {CATALOG!r}, '--nodes', {nodes!r}, "
        f"'--pods', {pods!r}]) == 0; "
        f"assert not {hub_side} & set(sys.modules), {hub_side} & set(sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "gpu-1" in done.stdout


def test_gpu_nodes_no_image_can_use_are_named_for_the_admin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an R470 node (CUDA 11.4): the catalog's CUDA 12 and 13 images run nowhere on it, so it is
    # in no offer; the admin's report says so, and why
    nodes, pods = tmp_path / "nodes.json", tmp_path / "pods.json"
    nodes.write_text(
        json.dumps(
            kubectl_list([*NODES, k.gpu_node("old-1", k.V100, driver="470.256.02", cuda="11.4")])
        )
    )
    pods.write_text(json.dumps(kubectl_list(PODS)))
    args = ["profiles", "--catalog", CATALOG, "--nodes", str(nodes), "--pods", str(pods)]
    assert main(args) == 0
    out = capsys.readouterr().out
    section = out.split("GPU nodes no image of the catalog can use: 1\n")[1]
    (line,) = section.splitlines()
    assert line.startswith("  old-1 (V100-SXM2-32GB, driver 470.256.02, CUDA 11.4): "), line
    assert "12.6" in line or "CUDA 12" in line, line
    assert main([*args, "--json"]) == 0
    (unusable,) = json.loads(capsys.readouterr().out)["unusable_nodes"]
    assert (unusable["name"], unusable["driver"], unusable["cuda"]) == (
        "old-1",
        "470.256.02",
        "11.4",
    )
    assert unusable["reason"]
    # a cluster whose every GPU node runs an image: no such section
    assert main(["profiles", "--catalog", CATALOG, "--nodes", *files_of(tmp_path)]) == 0
    assert "no image of the catalog can use" not in capsys.readouterr().out


def files_of(tmp_path: Path) -> list[str]:
    nodes, pods = tmp_path / "n.json", tmp_path / "p.json"
    nodes.write_text(json.dumps(kubectl_list(NODES)))
    pods.write_text(json.dumps(kubectl_list(PODS)))
    return [str(nodes), "--pods", str(pods)]


def test_launch_links_per_image_and_per_profile(capsys: pytest.CaptureFixture[str]) -> None:
    base = "https://hub.example.org/jupyter/"
    assert main(["profiles", "--catalog", CATALOG, "--links", base]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["IMAGE", "PROFILE", "LINK"]
    rows = [line.split() for line in out[1:]]
    spawn = "https://hub.example.org/jupyter/hub/spawn?"
    assert rows[0] == ["cpu", "(first", "that", "can", "start", "it)", spawn + "image=cpu"]
    assert ["cuda12-pytorch", "gpu-1", spawn + "profile=gpu-1&image=cuda12-pytorch"] in rows
    assert main(["profiles", "--catalog", CATALOG, "--links", base, "--json"]) == 0
    links = json.loads(capsys.readouterr().out)["links"]
    catalog_images = {link["image"] for link in links if link["profile"] is None}
    assert catalog_images == {
        "cpu",
        "cuda12-pytorch",
        "cuda13-pytorch",
        "cuda12-base",
        "cuda13-base",
    }
    assert {"image": "cpu", "profile": "cpu", "url": spawn + "profile=cpu&image=cpu"} in links
    # every link names what exists in the catalog, once
    assert len({link["url"] for link in links}) == len(links)


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("hub.example.org", "'hub.example.org' is not a hub address"),
        ("ftp://hub.example.org", "'ftp://hub.example.org' is not a hub address"),
        ("https://hub.example.org/?x=1", "without ?query"),
    ],
)
def test_launch_links_refuse_a_base_that_is_no_address(
    base: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles", "--catalog", CATALOG, "--links", base]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("gpu-devbox profiles: error: --links: ")
    assert message in err
