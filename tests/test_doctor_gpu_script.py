"""gpu-tests/doctor_check.py cannot run here (no GPU), but its judgement can be checked.

Its parsing runs on the real ``nvidia-smi -q`` output of the H100 the fixtures come from, and
its comparison on a doctor report of the fake NVML serving that H100's capture: agreeing facts
must agree, and each kind of disagreement must be caught.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
from types import ModuleType
from typing import Any

from gpu_devbox.cuda import facts
from gpu_devbox.cuda.checks import checks_document
from tests.doctor_facts import environment, torch
from tests.fakenvml import CAPTURE, FakeNVML

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMI_Q = (ROOT / "tests" / "fixtures" / "h100-nvidia-smi-q.txt").read_text()


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "doctor_check", ROOT / "gpu-tests/doctor_check.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def h100_smi(script: ModuleType) -> dict[str, Any]:
    name = CAPTURE["idle"]["name"]
    query = f"0, {name}, {CAPTURE['driver']}, 9.0\n1, {name}, {CAPTURE['driver']}, 9.0\n"
    result: dict[str, Any] = script.parse_nvidia_smi(SMI_Q, query)
    return result


def report_with(torch_facts: dict[str, Any]) -> dict[str, Any]:
    document = facts.assemble(
        facts.read_nvml("nvml"), facts.gather_container(), [environment(torch=torch_facts)]
    )
    return checks_document(document)


def torch_as_seen(available: bool) -> dict[str, Any]:
    """What the script's own torch probe prints on that H100 (PyTorch 2.11.0+cu130)."""
    devices = [{"name": CAPTURE["idle"]["name"], "capability": "9.0"}] * 2 if available else []
    return {
        "version": "2.11.0+cu130",
        "cuda": "13.0",
        "is_available": available,
        "devices": devices,
    }


def probed(available: bool) -> dict[str, Any]:
    result = torch("2.11.0+cu130", available=available, count=2)
    result["devices"] = torch_as_seen(available)["devices"]
    return result


def test_nvidia_smi_q_output_is_parsed(fake_nvml: FakeNVML) -> None:
    smi = h100_smi(load_script())
    assert smi["driver"] == "580.159.04"
    assert smi["cuda"] == "13.0"
    assert [g["compute_capability"] for g in smi["gpus"]] == ["9.0", "9.0"]


def test_the_script_agrees_with_a_consistent_h100(fake_nvml: FakeNVML) -> None:
    script = load_script()
    rows = script.compare(
        report_with(probed(True)), "server", h100_smi(script), torch_as_seen(True)
    )
    assert [r["what"] for r in rows if not r["agree"]] == []
    assert len(rows) == 12  # driver, CUDA, count, 2 x (name, cc), torch x 4, cuda-available


def test_the_script_catches_disagreements(fake_nvml: FakeNVML) -> None:
    script = load_script()
    smi = h100_smi(script)
    smi["cuda"] = "13.2"  # e.g. a compat libcuda the doctor did not see
    smi["gpus"][1]["compute_capability"] = "8.0"
    rows = script.compare(report_with(probed(True)), "server", smi, torch_as_seen(False))
    bad = [r["what"] for r in rows if not r["agree"]]
    assert bad == [
        "driver CUDA version",
        "GPU 1 compute capability",
        "torch.cuda.is_available()",
        "doctor's cuda-available check for torch",
    ]


def test_the_script_refuses_to_run_without_nvidia_smi() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "gpu-tests/doctor_check.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/nonexistent"},
        check=False,
    )
    assert result.returncode == 2
    assert "nvidia-smi not found" in result.stderr
