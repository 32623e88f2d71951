"""The extension's configuration: defaults from the environment, and refused bad values."""

from __future__ import annotations

import subprocess
import sys

import pytest
from traitlets import TraitError

from gpu_devbox.server.app import GPUDevbox


@pytest.mark.parametrize(
    ("trait", "value", "words"),
    [
        ("interval", 0, "between 0.1 and 3600"),
        ("interval", 10_000, "between 0.1 and 3600"),
        ("slow_interval", -1, "between 0 and a week"),
        ("history_seconds", 0, "between 0 and a week"),
        ("simulated_gpus", 65, "between 0 and 64"),
        ("simulated_unsupported", ["fans"], "unknown field(s) ['fans']"),
        ("prometheus_prefix", "gpu-devbox", "not a valid metric name"),
        ("backend", "cuda", "backend"),
    ],
)
def test_bad_values_are_refused_with_the_trait_named(trait: str, value: object, words: str) -> None:
    with pytest.raises(TraitError) as caught:
        GPUDevbox(**{trait: value})
    assert words in str(caught.value)


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_DEVBOX_BACKEND", "Simulated")
    monkeypatch.setenv("GPU_DEVBOX_SIMULATED_GPUS", "5")
    monkeypatch.setenv("GPU_DEVBOX_SIMULATED_MIG", "1, 3")
    monkeypatch.setenv("GPU_DEVBOX_SIMULATED_UNSUPPORTED", "pcie,power")
    app = GPUDevbox()
    assert app.backend == "simulated"
    assert app.simulated_gpus == 5
    assert app.simulated_mig == [1, 3]
    assert app.simulated_unsupported == ["pcie", "power"]


def test_a_bad_backend_variable_falls_back_to_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_DEVBOX_BACKEND", "cuda")
    assert GPUDevbox().backend == "nvml"


def test_every_option_has_help_text() -> None:
    traits = GPUDevbox.class_own_traits(config=True)
    assert len(traits) >= 10
    for name, trait in traits.items():
        assert len(trait.help) > 40, f"GPUDevbox.{name} needs real help text"


def test_the_extension_is_enabled_by_installing_the_package() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    assert any("gpu_devbox" in line and "enabled" in line for line in lines)
    assert any("gpu_devbox" in line and "OK" in line for line in lines)


def test_importing_the_package_touches_no_gpu_and_no_server() -> None:
    code = (
        "import sys, gpu_devbox, gpu_devbox.gpus, gpu_devbox.gpus.sampler;"
        "bad = {'pynvml', 'jupyter_server', 'tornado'} & set(sys.modules);"
        "print(sorted(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
