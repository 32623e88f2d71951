"""The GPU-only scripts fail clearly on a machine without a GPU, and nothing on the server's
side of the benchmark ever imports a GPU library."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
from types import ModuleType

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def script(path: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


#: What plain PyTorch measured on an H100 SXM (the project's H100 fixtures).
H100_REFERENCE: dict[str, float | None] = {
    "matmul_fp32": 51.5e12,
    "matmul_tf32": 386e12,
    "matmul_fp16": 764e12,
    "matmul_bf16": 797e12,
    "matmul_fp8": None,
    "memory_copy": 3024e9,
    "h2d_pinned": 53.2e9,
    "d2h_pinned": 53.6e9,
}


def load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, ROOT / path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scaled(figures: dict[str, float | None], **factors: float) -> dict[str, float | None]:
    return {k: None if v is None else v * factors.get(k, 1.0) for k, v in figures.items()}


def test_the_comparison_passes_figures_within_3_percent() -> None:
    compare = load("benchmarks/compare_bench.py")
    ours = [scaled(H100_REFERENCE, matmul_bf16=1.029, memory_copy=0.975), H100_REFERENCE]
    rows = compare.judge(ours, [H100_REFERENCE, H100_REFERENCE], 0.03)
    verdicts = {key: ok for key, _, _, _, ok in rows}
    assert verdicts == {
        "matmul_fp32": True,
        "matmul_tf32": True,
        "matmul_fp16": True,
        "matmul_bf16": True,
        "memory_copy": True,
        "matmul_fp8": None,
        "h2d_pinned": None,
        "d2h_pinned": None,
    }


@pytest.mark.parametrize(
    ("ours", "failing"),
    [
        (scaled(H100_REFERENCE, matmul_bf16=0.96), "matmul_bf16"),
        (scaled(H100_REFERENCE, memory_copy=1.05), "memory_copy"),
        ({**H100_REFERENCE, "matmul_tf32": None}, "matmul_tf32"),
    ],
)
def test_the_comparison_fails_a_figure_outside_3_percent_or_missing(
    ours: dict[str, float | None], failing: str
) -> None:
    compare = load("benchmarks/compare_bench.py")
    rows = compare.judge([ours], [H100_REFERENCE], 0.03)
    assert [key for key, _, _, _, ok in rows if ok is False] == [failing]


def test_the_reference_says_it_needs_a_cuda_gpu() -> None:
    proc = script("benchmarks/reference_bench.py", env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("reference_bench: ")
    assert "CUDA" in line


def test_the_comparison_says_why_it_cannot_compare(tmp_path: pathlib.Path) -> None:
    env = {
        "GPU_DEVBOX_BACKEND": "simulated",
        "GPU_DEVBOX_SIMULATED_GPUS": "0",
        "JUPYTER_DATA_DIR": str(tmp_path),
    }
    proc = script("benchmarks/compare_bench.py", env=env)
    assert proc.returncode == 2
    assert "compare_bench: cannot compare: " in proc.stderr
    assert "no visible GPU has index 0" in proc.stderr


def test_the_gpu_checks_say_there_is_no_gpu() -> None:
    proc = script("gpu-tests/bench_gpu_checks.py", env={})
    assert proc.returncode == 2
    assert "no GPU 0 visible through NVML" in proc.stderr


def test_the_server_side_and_a_cpu_run_never_import_torch_or_cupy(tmp_path: pathlib.Path) -> None:
    # Given torch and cupy "installed" as packages that refuse to be imported
    for name in ("torch", "cupy"):
        package = tmp_path / "poison" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"raise SystemExit('{name} was imported')\n")
    code = (
        "import sys\n"
        "import gpu_devbox.server.app, gpu_devbox.server.bench_handlers, gpu_devbox.cli.bench\n"
        "from gpu_devbox.bench import BenchmarkRunner, RunRequest\n"
        "runner = BenchmarkRunner()\n"
        "run = runner.wait(runner.start(RunRequest('quick', sizes={'matmul_n': 16}))['id'], 60)\n"
        "assert run['state'] == 'succeeded', run['error']\n"
        "assert not {'torch', 'cupy'} & set(sys.modules)\n"
        "print('clean')\n"
    )
    pythonpath = os.pathsep.join([str(tmp_path / "poison"), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": pythonpath},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "clean"
