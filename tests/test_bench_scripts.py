"""The GPU-only scripts fail clearly on a machine without a GPU, and nothing on the server's
side of the benchmark ever imports a GPU library."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

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
