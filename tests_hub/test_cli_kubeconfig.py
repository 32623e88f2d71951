"""``gpu-devbox profiles --kubeconfig``: the dry run against a live (fake) API server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests import k8s_objects as k
from tests_hub.fake_api import FakeKube
from tests_hub.hub import free_port


def test_offers_from_a_live_cluster(kube: FakeKube, tmp_path: Path) -> None:
    kube.add(
        "nodes", [k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"), k.node("cpu-1")]
    )
    kube.add("pods", k.gpu_pods("a100-1", 5))
    config = kube.write_kubeconfig(str(tmp_path / "kubeconfig"))
    done = subprocess.run(
        ["gpu-devbox", "profiles", "--kubeconfig", config, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    offers = {o["profile"]: o for o in json.loads(done.stdout)["offers"]}
    assert (offers["gpu-1"]["free"], offers["gpu-1"]["total"]) == (3, 8)
    assert offers["gpu-1"]["default_image"] == "cuda12-pytorch"
    listed = {p for m, p, q in kube.requests if "watch=" not in q}
    assert {"/api/v1/nodes", "/api/v1/pods"} <= listed


def test_an_unreachable_cluster_is_one_line_and_exit_1(kube: FakeKube, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    kube.write_kubeconfig(str(config))
    text = config.read_text().replace(kube.url, f"http://127.0.0.1:{free_port()}")
    config.write_text(text)
    done = subprocess.run(
        ["gpu-devbox", "profiles", "--kubeconfig", str(config), "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "could not list nodes and pods from http://127.0.0.1:" in done.stderr
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text("current-context: nowhere\n")
    done = subprocess.run(
        ["gpu-devbox", "profiles", "--kubeconfig", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"gpu-devbox profiles: error: invalid kubeconfig {bad}: ")
    assert done.stderr.count("\n") == 1
