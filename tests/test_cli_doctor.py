"""``gpu-devbox doctor`` as a user runs it: real subprocesses, real exit codes, real output."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

from gpu_devbox.cuda.checks import CHECK_IDS
from gpu_devbox.cuda.model import facts_schema
from tests.doctor_facts import CU126, V100, environment, make_facts, torch


def doctor(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpu_devbox", "doctor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def write(tmp_path: pathlib.Path, document: Any, name: str = "facts.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return str(path)


def test_healthy_facts_exit_0_with_a_grouped_report(tmp_path: pathlib.Path) -> None:
    facts = make_facts(image_cuda="13.0.2", environments=[environment(torch=torch())])
    done = doctor("--facts", write(tmp_path, facts))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert out.startswith("gpu-devbox doctor: driver 580.159.04 (CUDA 13.0) | 1 GPU(s)")
    assert "PASSED (" in out
    assert "FAILED" not in out
    assert "0 failed," in out


def test_a_failing_check_exits_1_and_prints_its_remedy(tmp_path: pathlib.Path) -> None:
    facts = make_facts(gpus=[V100], environments=[environment(torch=torch())])  # cu130 on V100
    done = doctor("--facts", write(tmp_path, facts))
    assert done.returncode == 1
    out = done.stdout
    assert out.index("FAILED (") < out.index("PASSED (")  # failures come first
    assert "x gpu-arch [server]: torch 2.12.0+cu130 has no kernels for a visible GPU" in out
    assert "no kernel image is available for execution on the device" in out
    assert "fix: Install the cu126 wheels" in out


def test_json_output_is_the_checks_document(tmp_path: pathlib.Path) -> None:
    facts = make_facts(
        gpus=[V100],
        environments=[environment(torch=torch("2.12.0+cu126", "12.6", CU126))],
    )
    done = doctor("--json", "--facts", write(tmp_path, facts))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] in ("pass", "warn")
    assert {c["id"] for c in report["checks"]} == set(CHECK_IDS)
    assert report["facts"]["nvml"]["gpus"][0]["name"] == V100[0]


def test_facts_from_stdin(tmp_path: pathlib.Path) -> None:
    facts = make_facts(nvml_reason="driver_library_mismatch", nvml_error=18)
    done = doctor("--facts", "-", stdin=json.dumps(facts))
    assert done.returncode == 1
    assert "Reboot the node or reload the nvidia kernel modules" in done.stdout


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda d: d["nvml"].update(driver_version=580), "nvml.driver_version"),
        (lambda d: d.pop("environments"), "environments"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d["nvml"]["gpus"][0].update(compute_capability="nine"), "nvml.gpus[0]"),
        (lambda d: d["environments"][0].update(status="sleeping"), "environments[0].status"),
        (lambda d: d.update(gathered_at="yesterday"), "gathered_at"),
    ],
)
def test_an_invalid_facts_file_is_one_line_naming_the_field(
    tmp_path: pathlib.Path, mutate: Any, names: str
) -> None:
    facts = make_facts()
    mutate(facts)
    done = doctor("--facts", write(tmp_path, facts))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gpu-devbox doctor: error: facts file ")
    assert names in lines[0]


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "cannot read facts file"), ("{not json", "is not JSON"), ("[]", "is invalid")],
)
def test_unreadable_facts_are_one_line(
    tmp_path: pathlib.Path, content: str | None, says: str
) -> None:
    path = str(tmp_path / "missing.json") if content is None else write(tmp_path, content)
    done = doctor("--facts", path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert says in done.stderr


def test_bad_options_are_one_line_exit_2(tmp_path: pathlib.Path) -> None:
    done = doctor("--probe-timeout", "0")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    both = doctor("--facts", "a.json", "--dump-facts", "b.json")
    assert both.returncode == 2
    assert "not allowed with" in both.stderr


def test_this_machine_no_gpu_nvml_fails_and_nothing_crashes(tmp_path: pathlib.Path) -> None:
    """The real state of the test machine: no NVIDIA driver, so NVML is not found."""
    dump = tmp_path / "dump.json"
    done = doctor("--dump-facts", str(dump), env={"GPU_DEVBOX_BACKEND": "nvml"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "x nvml: NVML library not found" in done.stdout
    facts = json.loads(dump.read_text())
    jsonschema.Draft202012Validator(facts_schema()).validate(facts)
    assert facts["nvml"]["available"] is False
    assert facts["nvml"]["reason_code"] == "library_not_found"
    assert facts["nvml"]["nvml_error"] == 12
    server = facts["environments"][0]
    assert server["name"] == "server"
    assert server["status"] == "ok"  # a real probe of a real interpreter
    assert server["python_version"] == ".".join(map(str, sys.version_info[:3]))
    # The dump judged again gives the same report.
    again = doctor("--facts", str(dump))
    assert again.returncode == 1
    assert again.stdout.split("\n", 1)[1] == done.stdout.split("\n", 1)[1]


def test_dump_to_stdout_is_pure_json() -> None:
    done = doctor("--dump-facts", "-", "--no-kernelspecs", env={"GPU_DEVBOX_BACKEND": "nvml"})
    assert done.returncode == 1
    facts = json.loads(done.stdout)
    assert [e["status"] for e in facts["environments"]] == ["ok", "skipped"]


def test_simulated_gpus_on_this_machine_exit_0() -> None:
    done = doctor("--backend", "simulated", "--json", "--no-kernelspecs")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)
    nvml = next(c for c in report["checks"] if c["id"] == "nvml")
    assert nvml["status"] == "warn"
    assert "simulated" in nvml["title"]
