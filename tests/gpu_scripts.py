"""Helpers for testing the gpu-tests/ scripts on a machine without a GPU."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
from types import ModuleType

GPU_TESTS = pathlib.Path(__file__).resolve().parent.parent / "gpu-tests"


def load_script(name: str) -> ModuleType:
    """Import ``gpu-tests/<name>.py`` (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location(name, GPU_TESTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_without_nvidia_smi(name: str) -> subprocess.CompletedProcess[str]:
    """Run ``gpu-tests/<name>.py`` with a PATH on which no nvidia-smi can be found."""
    return subprocess.run(
        [sys.executable, str(GPU_TESTS / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/nonexistent"},
        check=False,
    )
