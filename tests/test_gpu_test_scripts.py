"""The gpu-tests/ scripts cannot run here (no GPU), but their judgement can be checked.

Their comparison logic is run on what a real H100 reported through NVML and through nvidia-smi
at the same time (fixtures/h100-nvml-capture.json), so a script that would misjudge real
hardware fails here first.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
from types import ModuleType

from gpu_devbox.gpus import NvmlAdapter
from tests.fakenvml import CAPTURE, FakeNVML

GPU_TESTS = pathlib.Path(__file__).resolve().parent.parent / "gpu-tests"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, GPU_TESTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loaded_h100() -> dict[str, object]:
    fake = FakeNVML(state="loaded")
    adapter = NvmlAdapter(lambda: fake)
    _, devices = adapter.open()
    return {**devices[0].static_dict(), **adapter.sample(devices[0], slow=False)}


def captured_smi() -> dict[str, str]:
    keys = [
        "name",
        "uuid",
        "memory.total",
        "memory.used",
        "memory.reserved",
        "utilization.gpu",
        "temperature.gpu",
        "power.draw",
        "clocks.sm",
        "clocks.mem",
        "driver_version",
    ]
    return dict(zip(keys, CAPTURE["nvidia_smi_loaded"].split(", "), strict=True))


def test_metrics_script_agrees_with_the_captured_h100() -> None:
    script = load_script("metrics_vs_nvidia_smi")
    gpu = loaded_h100()
    smi = captured_smi()
    gpu["uuid"] = smi["uuid"]  # the fake numbers its GPUs; the capture has the real UUID
    rows = script.compare(gpu, smi, CAPTURE["driver"])
    assert len(rows) == 8
    assert [field for field, _, _, good in rows if not good] == []


def test_metrics_script_catches_a_v1_memory_reading() -> None:
    # The classic bug (gpustat#141): v1 memory counts 480 MiB reserved as used. On an idle GPU
    # that is 480 MiB against nvidia-smi's 0: far outside the ±64 MiB tolerance.
    script = load_script("metrics_vs_nvidia_smi")
    gpu = loaded_h100()
    smi = captured_smi()
    gpu["uuid"] = smi["uuid"]
    smi["memory.used"] = "0"
    gpu["memory"] = {**gpu["memory"], "used": CAPTURE["idle"]["mem_v1"]["used"]}  # type: ignore[dict-item]
    bad = [field for field, _, _, good in script.compare(gpu, smi, CAPTURE["driver"]) if not good]
    assert bad == ["memory.used MiB"]


def test_metrics_script_refuses_to_run_without_nvidia_smi() -> None:
    result = subprocess.run(
        [sys.executable, str(GPU_TESTS / "metrics_vs_nvidia_smi.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/nonexistent"},
        check=False,
    )
    assert result.returncode == 2
    assert "nvidia-smi not found" in result.stderr
