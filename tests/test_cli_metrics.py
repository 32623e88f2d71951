"""``gpu-devbox metrics`` as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gpu_devbox.cli.metrics import render_table
from gpu_devbox.gpus import NvmlAdapter, Sampler, VisibleDevices
from tests.fakenvml import FakeNVML

EXE = shutil.which("gpu-devbox") or ""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    full_env.update(env or {})
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, timeout=60, env=full_env, check=False
    )


@pytest.fixture(autouse=True)
def _installed() -> None:
    assert EXE, "the gpu-devbox command is not installed"


def test_simulated_json_is_the_gpus_document() -> None:
    result = run("metrics", "--backend", "simulated", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"]["simulated"] is True
    assert [g["index"] for g in document["gpus"]] == [0, 1]
    # Two readings 0.25 s apart: PCIe rates are known even in a one-shot run.
    assert all(g["pcie"]["tx"] is not None for g in document["gpus"])


def test_simulated_table_is_readable() -> None:
    result = run("metrics", "--simulated-gpus", "3", env={"GPU_DEVBOX_BACKEND": "simulated"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "SIMULATED" in lines[0]
    assert "3 of 3 GPU(s) visible" in lines[0]
    assert lines[1].split()[:2] == ["GPU", "NAME"]
    assert sum("NVIDIA H100 80GB HBM3" in line for line in lines) == 3
    # memory as the Lab panel writes it: an H100's 81559 MiB is 79.6 GiB
    rows = [line for line in lines if "NVIDIA H100 80GB HBM3" in line]
    assert all(re.search(r"  \d+\.\d/79\.6 GiB  ", row) for row in rows), rows
    assert result.stderr == ""


def test_this_machine_has_no_gpu_and_says_why() -> None:
    result = run("metrics")
    assert result.returncode == 1
    assert result.stdout.startswith("NVML unavailable: NVML library not found")
    assert "What to do:" in result.stdout
    assert result.stderr == ""  # the sampler's log does not leak into the CLI
    as_json = json.loads(run("metrics", "--json").stdout)
    assert as_json["status"]["nvml"]["reason_code"] == "library_not_found"
    assert as_json["gpus"] == []


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["metrics", "--watch", "abc"], {}, "'abc' is not a number"),
        (["metrics", "--watch", "0"], {}, "outside the allowed range"),
        (["metrics", "--watch", "nan"], {}, "outside the allowed range"),
        (["metrics", "--simulated-gpus", "999"], {}, "outside the allowed range"),
        (["metrics", "--backend", "cuda"], {}, "invalid choice"),
        (["metrics", "--bogus"], {}, "unrecognized arguments"),
        (["nonsense"], {}, "invalid choice"),
        ([], {}, "required"),
        (["metrics"], {"GPU_DEVBOX_BACKEND": "cuda"}, "GPU_DEVBOX_BACKEND='cuda' is not one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], env: dict[str, str], words: str) -> None:
    result = run(*args, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert words in result.stderr


def test_watch_prints_one_document_per_interval_until_interrupted() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    proc = subprocess.Popen(
        [EXE, "metrics", "--backend", "simulated", "--json", "--watch", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    documents = [json.loads(line) for line in out.splitlines()]
    assert len(documents) >= 4
    stamps = [d["timestamp"] for d in documents]
    assert stamps == sorted(stamps)


def test_python_dash_m_works_too() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gpu_devbox", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("gpu-devbox ")


def test_a_lost_gpu_is_named_with_its_remedy_and_the_others_are_shown() -> None:
    fake = FakeNVML()
    sampler = Sampler(NvmlAdapter(lambda: fake), visible=VisibleDevices.from_env({}))
    sampler.tick()
    fake.lost.add(1)
    snapshot = sampler.tick()
    text = render_table(sampler.status(), list(snapshot.gpus))
    rows = text.splitlines()
    assert rows[2].split()[0] == "0"
    assert "%" in rows[2]
    assert rows[3].split()[0] == "1"
    assert "%" not in rows[3]
    assert "GPU 1 unreadable: A GPU fell off the bus" in text
    assert "What to do: The node needs attention" in text
