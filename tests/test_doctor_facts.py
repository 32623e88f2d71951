"""Gathering the doctor's facts: container files, probe subprocesses, kernelspecs, NVML."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import platform
import sys
import time

import jsonschema
import pytest

from gpu_devbox.cuda import environments, facts
from gpu_devbox.cuda.model import FactsError, facts_schema, parse_facts, validate_facts
from tests.doctor_facts import make_facts
from tests.fakenvml import FakeNVML

# A stand-in for torch with the surface the probe reads, behaving like a CUDA 13.0 wheel on a
# machine whose driver is too old: is_available() warns and returns False, get_arch_list() is
# then empty (as in torch), and the compiled-in flags still tell the architectures. It prints to
# stdout on import, as some packages do, to prove the probe's answer survives that.
FAKE_TORCH = """
import warnings
print("noise from an import")
__version__ = "2.12.0+cu130"

class version:
    cuda = "13.0"
    hip = None

class _C:
    @staticmethod
    def _cuda_getArchFlags():
        return "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120"

class cuda:
    @staticmethod
    def is_available():
        warnings.warn("CUDA initialization: The NVIDIA driver on your system is too old")
        return False
    @staticmethod
    def device_count():
        return 0
    @staticmethod
    def get_arch_list():
        return []

class backends:
    class cudnn:
        @staticmethod
        def version():
            return 91002
"""


def make_fake_site(root: pathlib.Path) -> pathlib.Path:
    site = root / "fake-site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(FAKE_TORCH)
    (site / "cupy").mkdir()
    (site / "cupy" / "__init__.py").write_text("raise ImportError('libcudart.so.12: not found')\n")
    info = site / "nvidia_cuda_runtime_cu12-12.8.90.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: nvidia-cuda-runtime-cu12\nVersion: 12.8.90\n"
    )
    return site


def test_the_probe_parses_what_the_frameworks_report(tmp_path: pathlib.Path) -> None:
    site = make_fake_site(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = asyncio.run(environments.probe_python(sys.executable, env=env, timeout=60))
    assert result["status"] == "ok", result
    torch = result["torch"]
    assert torch["version"] == "2.12.0+cu130"
    assert torch["cuda"] == "13.0"
    assert torch["is_available"] is False
    assert torch["arch_list"][-1] == "compute_120"
    assert torch["arch_list_source"] == "compiled_flags"
    assert torch["cudnn"] == 91002
    assert torch["warnings"] == ["CUDA initialization: The NVIDIA driver on your system is too old"]
    assert result["cupy"]["error"] == "ImportError: libcudart.so.12: not found"
    assert result["cuda_runtime_wheels"] == [
        {"name": "nvidia-cuda-runtime-cu12", "version": "12.8.90"}
    ]
    assert result["jax"] is None
    assert result["tensorflow"] is None


def test_the_real_interpreter_is_probed() -> None:
    result = asyncio.run(
        environments.probe_python(sys.executable, env=dict(os.environ), timeout=60)
    )
    assert result["status"] == "ok"
    assert result["python_version"] == platform.python_version()
    assert result["duration"] > 0


def test_a_missing_interpreter_and_a_hanging_one(tmp_path: pathlib.Path) -> None:
    missing = asyncio.run(
        environments.probe_python(str(tmp_path / "python3"), env=dict(os.environ), timeout=5)
    )
    assert missing["status"] == "not_found"
    site = tmp_path / "sleepy"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import time\ntime.sleep(60)\n")
    started = time.monotonic()
    hung = asyncio.run(
        environments.probe_python(
            sys.executable, env={**os.environ, "PYTHONPATH": str(site)}, timeout=1
        )
    )
    assert time.monotonic() - started < 10
    assert hung["status"] == "timeout"
    assert hung["error"] == "the probe did not finish in 1 s"


@pytest.mark.parametrize(
    ("argv0", "status"),
    [
        ("python", "ok"),
        ("python3", "ok"),
        (sys.executable, "ok"),
        ("/nonexistent/bin/python3.12", "not_found"),
        ("R", "not_python"),
        ("/usr/bin/env", "not_python"),
        ("julia", "not_python"),
    ],
)
def test_which_kernelspecs_are_python(argv0: str, status: str) -> None:
    python, found = environments.kernel_python(argv0, dict(os.environ), sys.executable)
    assert found == status
    assert (python is not None) is (status == "ok")


def test_environments_with_the_same_interpreter_share_a_probe(tmp_path: pathlib.Path) -> None:
    counter = tmp_path / "count.txt"
    counter.write_text("")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"open({str(counter)!r}, 'a').write('x\\n')\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    specs = [
        environments.KernelSpec("a", "A", (sys.executable, "-m", "ipykernel_launcher")),
        environments.KernelSpec("b", "B", ("python3", "-m", "ipykernel_launcher")),
        environments.KernelSpec("r", "R", ("R", "--slave")),
        environments.KernelSpec("gone", None, ("/nonexistent/python3",)),
        environments.KernelSpec("c", "C", (sys.executable,), {"EXTRA": "1"}),
    ]
    rows = asyncio.run(
        environments.gather_environments(specs, timeout=60, env=env, server_python=sys.executable)
    )
    assert [(r["name"], r["status"]) for r in rows] == [
        ("server", "ok"),
        ("kernel:a", "ok"),
        ("kernel:b", "ok"),
        ("kernel:r", "not_python"),
        ("kernel:gone", "not_found"),
        ("kernel:c", "ok"),
    ]
    # server, a and b are the same interpreter and environment: one probe; c differs by EXTRA.
    assert len(counter.read_text().splitlines()) == 2


def test_kernelspecs_are_found_on_the_jupyter_path(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for root, name in ((first, "Py-A"), (second, "py-a"), (second, "broken")):
        folder = root / "kernels" / name
        folder.mkdir(parents=True)
        spec = {"argv": [f"/opt/{root.name}/bin/python"], "display_name": name, "env": {"X": 1}}
        (folder / "kernel.json").write_text(json.dumps(spec) if name != "broken" else "{oops")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(first), str(second)]))
    specs = {s.name: s for s in environments.find_kernelspecs()}
    assert specs["py-a"].argv == ("/opt/first/bin/python",)  # the first on the path wins
    assert specs["py-a"].env == {"X": "1"}
    assert "broken" not in specs


def test_container_facts_from_a_cuda_tree(tmp_path: pathlib.Path) -> None:
    compat = tmp_path / "usr/local/cuda-13.2/compat"
    compat.mkdir(parents=True)
    for name in ("libcuda.so.1", "libcuda.so.595.45.04"):
        (compat / name).write_text("")
    lib = tmp_path / "usr/local/cuda-12.8/lib64"
    lib.mkdir(parents=True)
    (lib / "libcudart.so.12.8.90").write_text("")
    (lib / "libcudart.so.12").symlink_to("libcudart.so.12.8.90")
    driver = tmp_path / "usr/lib/x86_64-linux-gnu"
    driver.mkdir(parents=True)
    (driver / "libcuda.so.580.159.04").write_text("")
    (driver / "libcuda.so.1").symlink_to("libcuda.so.580.159.04")
    env = {
        "LD_LIBRARY_PATH": f"{compat}:{lib}",
        "CUDA_VERSION": "13.2.2",
        "GPU_DEVBOX_BASE_IMAGE": "nvidia/cuda:13.2.2-runtime-ubuntu24.04",
        "GPU_DEVBOX_REQUESTED_GPUS": "2",
        "SECRET_TOKEN": "never recorded",
        "PATH": str(tmp_path),  # no nvcc there
    }
    cache = [("libcuda.so.1", str(driver / "libcuda.so.1"))]
    found = facts.gather_container(
        env, ld_cache=cache, compat_glob=str(tmp_path / "usr/local/cuda*/compat")
    )
    assert found["env"]["CUDA_VERSION"] == "13.2.2"
    assert "SECRET_TOKEN" not in found["env"]
    assert found["base_image"] == "nvidia/cuda:13.2.2-runtime-ubuntu24.04"
    assert found["requested_gpus"] == 2
    assert found["cudart"] == [
        {"path": str(lib / "libcudart.so.12"), "version": "12.8", "source": "ld_library_path"}
    ]
    assert found["libcuda"] == [
        {"path": str(driver / "libcuda.so.1"), "version": "580.159.04"}
    ]  # the compat copy is not the driver's libcuda
    assert found["compat"] == [
        {
            "path": str(compat),
            "cuda_version": "13.2",
            "libcuda": "libcuda.so.595.45.04",
            "on_loader_path": True,
        }
    ]
    # Judged: an R580 H100 runs 13.2 through these compat libraries.
    document = make_facts(image_cuda="13.2.2")
    document["container"] = found
    document["container"]["env"]["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
    parsed = parse_facts(document)
    assert parsed.container.compat[0].on_loader_path is True


def test_this_machines_container_facts_are_valid() -> None:
    found = facts.gather_container()
    document = make_facts()
    document["container"] = found
    validate_facts(document)
    nvcc = found["nvcc"]
    if nvcc is not None:  # this machine has a CUDA toolkit without a driver
        assert nvcc["version"] is None or nvcc["version"][0].isdigit()


def test_nvml_facts_come_from_the_sampler(fake_nvml: FakeNVML) -> None:
    nvml = facts.read_nvml("nvml")
    assert nvml["available"] is True
    assert nvml["driver_version"] == "580.159.04"
    assert nvml["cuda_driver_version"] == "13.0"
    assert [g["compute_capability"] for g in nvml["gpus"]] == ["9.0", "9.0"]
    assert nvml["gpus"][0]["mig_enabled"] is False
    assert fake_nvml.calls["nvmlShutdown"] == 1  # the CLI's sampler closed NVML again


def test_assembled_facts_validate_against_the_shipped_schema(fake_nvml: FakeNVML) -> None:
    envs = asyncio.run(environments.gather_environments(None, timeout=60))
    document = facts.assemble(facts.read_nvml("nvml"), facts.gather_container(), envs)
    jsonschema.Draft202012Validator.check_schema(facts_schema())
    jsonschema.Draft202012Validator(facts_schema()).validate(document)
    assert document["schema_version"] == 1
    assert document["gathered_at"].endswith("Z")


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("nvml", "available"), "yes", "nvml.available"),
        (("nvml", "gpus"), [{"index": 0}], "nvml.gpus[0]"),
        (("container", "compat"), [{"path": "/x"}], "container.compat[0]"),
        (
            ("environments",),
            [{"name": "server", "kind": "laptop", "status": "ok"}],
            "environments[0].kind",
        ),
    ],
)
def test_schema_errors_name_the_field(path: tuple[str, ...], value: object, named: str) -> None:
    document = make_facts()
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(FactsError) as caught:
        validate_facts(document)
    assert str(caught.value).startswith(named)
    assert "\n" not in str(caught.value)
