"""Table-driven doctor scenarios: driver x image CUDA x framework build x GPU.

Each scenario names the fact it rests on (a section of the CUDA reference notes and the data
table row behind it), and states the outcome a user would check: the status of the checks that
scenario is about, and words the detail or remedy must contain.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gpu_devbox.cuda.checks import CHECK_IDS, evaluate, summarize
from tests.doctor_facts import (
    A100,
    B200,
    CU126,
    CU128_211,
    CU130,
    GB10,
    H100,
    L4,
    RTX4090,
    RTX5090,
    T4,
    UNSET,
    V100,
    compat_dir,
    environment,
    make_facts,
    torch,
)

RANK = {"fail": 3, "warn": 2, "pass": 1, "skip": 0}
# What torch warns when the driver is too old for its CUDA (cuda-facts §4.1).
W_OLD_DRIVER = (
    "CUDA initialization: The NVIDIA driver on your system is too old (found version 12020)."
)


@dataclasses.dataclass(frozen=True)
class Scenario:
    id: str
    fact: str
    facts: dict[str, Any]
    expect: dict[str, str]
    has: dict[str, str] = dataclasses.field(default_factory=dict)


def env_with(**frameworks: Any) -> list[dict[str, Any]]:
    return [environment(**frameworks)]


S = Scenario
SCENARIOS = [
    # --- driver x image CUDA --------------------------------------------------------------
    S(
        "h100-r580-img13.0.2-cu130",
        "§1.5 observed host; §1.1 13.0 GA >= 580.65.06",
        {"image_cuda": "13.0.2", "environments": env_with(torch=torch())},
        {
            "nvml": "pass",
            "driver-vs-image-cuda": "pass",
            "framework-cuda": "pass",
            "gpu-arch": "pass",
            "cuda-available": "pass",
            "driver-capabilities": "pass",
            "base-image-lifecycle": "pass",
        },
    ),
    S(
        "h100-r580-img13.2-mvc",
        "§1.2 13.x MVC floor 580.65.06; 13.2 native needs 595.45.04",
        {"image_cuda": "13.2.2"},
        {"driver-vs-image-cuda": "warn"},
        {"driver-vs-image-cuda": "595.45.04"},
    ),
    S(
        "h100-r580-img13.2-compat-loaded",
        "§1.3 cuda-compat-13-2 runs on R535 ... R590",
        {"image_cuda": "13.2.2", "compat": [compat_dir("13.2", "595.45.04")]},
        {"driver-vs-image-cuda": "pass"},
        {"driver-vs-image-cuda": "forward-compatibility"},
    ),
    S(
        "rtx4090-compat-loaded-804",
        "§1.3 forward compatibility only on data-center GPUs (804)",
        {"gpus": [RTX4090], "image_cuda": "13.2.2", "compat": [compat_dir("13.2", "595.45.04")]},
        {"driver-vs-image-cuda": "fail"},
        {"driver-vs-image-cuda": "804"},
    ),
    S(
        "compat-older-than-driver-803",
        "§1.3 compat libcuda must match the kernel driver (803)",
        {
            "driver": "590.48.01",
            "driver_cuda": "13.1",
            "image_cuda": "13.0.2",
            "compat": [compat_dir("13.0", "580.65.06")],
        },
        {"driver-vs-image-cuda": "fail"},
        {"driver-vs-image-cuda": "803"},
    ),
    S(
        "h100-r535-img13.0-no-compat",
        "§1.3 cuda-compat-13-0 supports R535; §1.1 13.0 >= 580.65.06",
        {"driver": "535.104.05", "driver_cuda": "12.2", "image_cuda": "13.0.2"},
        {"driver-vs-image-cuda": "fail"},
        {"driver-vs-image-cuda": "/usr/local/cuda-13.0/compat"},
    ),
    S(
        "h100-r535-img13.0-compat-loaded",
        "§1.3 cuda-compat-13-0 supports R535",
        {
            "driver": "535.104.05",
            "driver_cuda": "13.0",
            "image_cuda": "13.0.2",
            "compat": [compat_dir("13.0", "580.65.06")],
        },
        {"driver-vs-image-cuda": "pass"},
    ),
    S(
        "a100-r550-img13.0-compat-branch-unlisted",
        "§1.3 cuda-compat-13-0 lists R535, R570 only",
        {
            "gpus": [A100],
            "driver": "550.54.15",
            "driver_cuda": "12.4",
            "image_cuda": "13.0.2",
            "compat": [compat_dir("13.0", "580.65.06")],
        },
        {"driver-vs-image-cuda": "fail"},
        {"driver-vs-image-cuda": "R535, R570"},
    ),
    S(
        "t4-r535-img12.8-mvc",
        "§1.2 12.x MVC floor 525.60.13",
        {"gpus": [T4], "driver": "535.104.05", "driver_cuda": "12.2", "image_cuda": "12.8.1"},
        {"driver-vs-image-cuda": "warn"},
        {"driver-vs-image-cuda": "minor-version"},
    ),
    S(
        "t4-below-12.0-floor",
        "§1.1 12.0 GA >= 525.60.13",
        {"gpus": [T4], "driver": "525.60.12", "driver_cuda": "12.0", "image_cuda": "12.0.1"},
        {"driver-vs-image-cuda": "fail"},
        {"driver-vs-image-cuda": "525.60.13"},
    ),
    S(
        "l4-r570-img12.8.1-native",
        "§1.1 12.8 GA >= 570.26",
        {"gpus": [L4], "driver": "570.124.06", "driver_cuda": "12.8", "image_cuda": "12.8.1"},
        {"driver-vs-image-cuda": "pass"},
    ),
    S(
        "r570-branch-end-of-life",
        "§1.4 R570 production branch EOL Feb 2026",
        {"gpus": [L4], "driver": "570.124.06", "driver_cuda": "12.8"},
        {"nvml": "pass"},
        {"nvml": "R570 (production branch) reached end of life in February 2026"},
    ),
    S(
        "l4-r570-img12.9.1-mvc",
        "§1.1 12.9 GA >= 575.51.03; §1.2 12.x floor",
        {"gpus": [L4], "driver": "570.124.06", "driver_cuda": "12.8", "image_cuda": "12.9.1"},
        {"driver-vs-image-cuda": "warn"},
    ),
    S(
        "l4-r570-img13.0-cross-major",
        "§1.2 MVC only within a major line",
        {"gpus": [L4], "driver": "570.124.06", "driver_cuda": "12.8", "image_cuda": "13.0.2"},
        {"driver-vs-image-cuda": "fail"},
        {"driver-vs-image-cuda": "580.65.06"},
    ),
    S(
        "r616-nvml-reports-13.4",
        "§6 _v2 is authoritative where the tables lack the branch",
        {"driver": "616.10", "driver_cuda": "13.4", "image_cuda": "13.4.1"},
        {"driver-vs-image-cuda": "pass"},
    ),
    S(
        "img-cuda14-unknown",
        "never guess: CUDA 14.0 is not in the tables",
        {"image_cuda": "14.0.0"},
        {"driver-vs-image-cuda": "warn", "base-image-lifecycle": "skip"},
        {"driver-vs-image-cuda": "not in the tables"},
    ),
    S(
        "docker-stacks-no-image-cuda",
        "§5.1 docker-stacks CUDA images are built FROM scipy-notebook",
        {
            "driver": "570.124.06",
            "driver_cuda": "12.8",
            "environments": env_with(torch=torch("2.10.0+cu128", "12.8", CU128_211)),
        },
        {"driver-vs-image-cuda": "skip", "base-image-lifecycle": "skip", "framework-cuda": "pass"},
    ),
    # --- framework build x driver ---------------------------------------------------------
    S(
        "cu130-on-r570",
        "§4.1 from 2.11 the cu130 wheels need R580+",
        {
            "driver": "570.124.06",
            "driver_cuda": "12.8",
            "environments": env_with(torch=torch(available=False)),
        },
        {"framework-cuda": "fail", "cuda-available": "fail"},
        {"framework-cuda": "cu126"},
    ),
    S(
        "cu130-on-r535-dc",
        "§4.1 R535 needs cuda-compat for cu130",
        {
            "driver": "535.104.05",
            "driver_cuda": "12.2",
            "environments": env_with(torch=torch(available=False, warnings=[W_OLD_DRIVER])),
        },
        {"framework-cuda": "fail", "cuda-available": "fail"},
        {"cuda-available": "found version 12020"},
    ),
    S(
        "cu132-on-r580-mvc-with-sass",
        "§1.2 MVC needs SASS for the GPU; cu132 carries sm_90",
        {"environments": env_with(torch=torch("2.14.0+cu132", "13.2", CU130))},
        {"framework-cuda": "pass"},
        {"framework-cuda": "SASS"},
    ),
    S(
        "cupy-cuda12x-on-r535",
        "§4.2 runtimeGetVersion 12080; §1.2 12.x floor",
        {
            "driver": "535.104.05",
            "driver_cuda": "12.2",
            "environments": env_with(
                cupy={
                    "version": "13.6.0",
                    "packages": ["cupy-cuda12x"],
                    "runtime_version": 12080,
                    "driver_version": 12020,
                    "device_count": 1,
                    "error": None,
                }
            ),
        },
        {"framework-cuda": "warn", "cuda-available": "pass"},
    ),
    S(
        "cupy-cuda13x-on-r570",
        "§4.2 cupy-cuda13x; §1.1 13.0 >= 580.65.06",
        {
            "driver": "570.124.06",
            "driver_cuda": "12.8",
            "environments": env_with(
                cupy={
                    "version": "13.6.0",
                    "packages": ["cupy-cuda13x"],
                    "runtime_version": 13000,
                    "driver_version": 12080,
                    "device_count": None,
                    "error": "CUDARuntimeError: 35",
                }
            ),
        },
        {"framework-cuda": "fail", "cuda-available": "fail"},
    ),
    S(
        "jax-cuda12-on-r580",
        "§1.2 a 13.x driver runs every 12.x build",
        {
            "environments": env_with(
                jax={
                    "version": "0.10.2",
                    "backend": "gpu",
                    "gpu_count": 1,
                    "cuda_plugin": "jax-cuda12-plugin",
                    "cuda_plugin_version": "0.10.2",
                    "error": None,
                }
            )
        },
        {"framework-cuda": "pass", "cuda-available": "pass"},
    ),
    S(
        "jax-cuda13-on-r570",
        "§1.2 no MVC across majors",
        {
            "driver": "570.124.06",
            "driver_cuda": "12.8",
            "environments": env_with(
                jax={
                    "version": "0.10.2",
                    "backend": "cpu",
                    "gpu_count": 0,
                    "cuda_plugin": "jax-cuda13-plugin",
                    "cuda_plugin_version": "0.10.2",
                    "error": None,
                }
            ),
        },
        {"framework-cuda": "fail", "cuda-available": "fail"},
    ),
    S(
        "tensorflow-cuda12.5-on-r570",
        "§1.1 12.5 GA >= 555.42.02",
        {
            "driver": "570.124.06",
            "driver_cuda": "12.8",
            "environments": env_with(
                tensorflow={
                    "version": "2.20.0",
                    "cuda": "12.5.1",
                    "cudnn": "9",
                    "compute_capabilities": ["sm_60", "sm_70", "sm_80", "compute_90"],
                    "gpu_count": 1,
                    "error": None,
                }
            ),
        },
        {"framework-cuda": "pass", "gpu-arch": "pass", "cuda-available": "pass"},
        {"gpu-arch": "PTX"},
    ),
    S(
        "torch-cpu-build-with-gpu",
        "§4.1 torch.version.cuda is None on CPU builds",
        {"environments": env_with(torch=torch("2.13.0+cpu", None, None, available=False))},
        {"framework-cuda": "warn", "cuda-available": "fail"},
        {"cuda-available": "CPU-only"},
    ),
    S(
        "torch-cpu-build-no-gpu",
        "§4.1 CPU build; nothing requested",
        {
            "nvml_reason": "library_not_found",
            "nvml_error": 12,
            "requested": 0,
            "caps": UNSET,
            "visible": UNSET,
            "environments": env_with(torch=torch("2.13.0+cpu", None, None, available=False)),
        },
        {
            "nvml": "skip",
            "framework-cuda": "pass",
            "cuda-available": "pass",
            "driver-capabilities": "skip",
        },
    ),
    S(
        "torch-import-broken",
        "a framework that cannot import is a fact to report",
        {
            "environments": env_with(
                torch=torch(error="ImportError: libcudnn.so.9: cannot open", available=None)
                | {"version": None}
            )
        },
        {"framework-cuda": "fail"},
        {"framework-cuda": "libcudnn.so.9"},
    ),
    S(
        "torch-rocm-build",
        "§4.1 ROCm builds set torch.version.hip",
        {
            "environments": env_with(
                torch=torch("2.13.0+rocm6.4", None, None, hip="6.4", available=False)
            )
        },
        {"framework-cuda": "skip"},
    ),
    S(
        "torch-count-mismatch",
        "torch.cuda.device_count() vs NVML",
        {"gpus": [H100, H100], "environments": env_with(torch=torch(count=1))},
        {"cuda-available": "warn"},
    ),
    S(
        "mig-counts-differ",
        "§6 MIG: CUDA sees MIG instances, not GPUs",
        {"gpus": [H100, H100], "mig": True, "environments": env_with(torch=torch(count=1))},
        {"cuda-available": "pass"},
    ),
    S(
        "cuda-visible-devices-empty",
        "CUDA_VISIBLE_DEVICES='' hides every GPU",
        {"cuda_visible": "", "environments": env_with(torch=torch(available=False))},
        {"cuda-available": "fail"},
        {"cuda-available": "CUDA_VISIBLE_DEVICES"},
    ),
    S(
        "kernel-probe-timeout",
        "probes run with a timeout",
        {
            "environments": [
                environment(),
                environment(
                    "kernel:slow", status="timeout", error="the probe did not finish in 60 s"
                ),
            ]
        },
        {"framework-cuda": "warn"},
        {"framework-cuda": "did not finish"},
    ),
    # --- GPU x compiled architectures ------------------------------------------------------
    S(
        "rtx5090-cu128-2.11",
        "§4.1 2.11 cu128 carries sm_120",
        {
            "gpus": [RTX5090],
            "driver": "575.57.08",
            "driver_cuda": "12.9",
            "environments": env_with(torch=torch("2.11.0+cu128", "12.8", CU128_211)),
        },
        {"gpu-arch": "pass", "framework-cuda": "pass"},
    ),
    S(
        "rtx5090-cu126",
        "§4.1 Blackwell (12.0) needs cu128 or newer",
        {"gpus": [RTX5090], "environments": env_with(torch=torch("2.12.0+cu126", "12.6", CU126))},
        {"gpu-arch": "fail"},
        {"gpu-arch": "no kernel image is available"},
    ),
    S(
        "b200-cu126",
        "§4.1 cu126 stops at sm_90",
        {"gpus": [B200], "environments": env_with(torch=torch("2.12.0+cu126", "12.6", CU126))},
        {"gpu-arch": "fail"},
        {"gpu-arch": "cu130"},
    ),
    S(
        "b200-img12.6-toolkit",
        "§2.1 sm_100 first in CUDA 12.8",
        {"gpus": [B200], "image_cuda": "12.6.3"},
        {"gpu-arch": "fail"},
        {"gpu-arch": "12.8"},
    ),
    S(
        "v100-cu130",
        "§4.1 cu130 requires CC >= 7.5",
        {"gpus": [V100], "environments": env_with(torch=torch())},
        {"gpu-arch": "fail"},
        {"gpu-arch": "cu126"},
    ),
    S(
        "v100-cu126",
        "§4.1 cu126 is the only current variant for Volta",
        {"gpus": [V100], "environments": env_with(torch=torch("2.12.0+cu126", "12.6", CU126))},
        {"gpu-arch": "pass"},
    ),
    S(
        "v100-img13.0-toolkit",
        "§2.1 CUDA 13.0 removed sm_50 to sm_72",
        {"gpus": [V100], "image_cuda": "13.0.2"},
        {"gpu-arch": "fail"},
        {"gpu-arch": "12.9"},
    ),
    S(
        "v100-img12.9.1-toolkit",
        "§2.1 Volta's last CUDA is 12.9",
        {"gpus": [V100], "image_cuda": "12.9.1"},
        {"gpu-arch": "pass"},
    ),
    S(
        "l4-cu126-sass-same-major",
        "binary compatibility: sm_86 SASS runs on 8.9",
        {"gpus": [L4], "environments": env_with(torch=torch("2.12.0+cu126", "12.6", CU126))},
        {"gpu-arch": "pass"},
        {"gpu-arch": "sm_86"},
    ),
    S(
        "gb10-cu130-sm120-on-12.1",
        "binary compatibility: sm_120 SASS runs on 12.1",
        {"gpus": [GB10], "environments": env_with(torch=torch())},
        {"gpu-arch": "pass"},
    ),
    S(
        "h100-ptx-only-native",
        "PTX JIT needs a driver that runs the toolkit natively",
        {"environments": env_with(torch=torch("2.12.0+custom", "13.0", ["sm_80", "compute_80"]))},
        {"gpu-arch": "pass"},
        {"gpu-arch": "JIT"},
    ),
    S(
        "h100-ptx-only-under-mvc",
        "§1.2 no PTX JIT under minor-version compatibility",
        {"environments": env_with(torch=torch("2.14.0+custom", "13.2", ["sm_80", "compute_80"]))},
        {"gpu-arch": "fail", "framework-cuda": "warn"},
        {"gpu-arch": "minor-version"},
    ),
    # --- NVML and the container runtime ------------------------------------------------------
    S(
        "nvml-driver-library-mismatch",
        "§6 LIB_RM_VERSION_MISMATCH (18)",
        {"nvml_reason": "driver_library_mismatch", "nvml_error": 18},
        {"nvml": "fail"},
        {"nvml": "Reboot the node"},
    ),
    S(
        "nvml-driver-not-loaded",
        "§6 DRIVER_NOT_LOADED (9)",
        {"nvml_reason": "driver_not_loaded", "nvml_error": 9},
        {"nvml": "fail"},
        {"nvml": "kernel module"},
    ),
    S(
        "nvml-missing-gpu-requested",
        "§6 LIBRARY_NOT_FOUND (12) in a GPU profile",
        {
            "nvml_reason": "library_not_found",
            "nvml_error": 12,
            "requested": 1,
            "caps": UNSET,
            "visible": UNSET,
        },
        {"nvml": "fail", "driver-capabilities": "skip"},
        {"nvml": "utility"},
    ),
    S(
        "nvml-simulated",
        "the simulated backend invents GPUs",
        {"simulated": True},
        {"nvml": "warn", "driver-capabilities": "skip"},
    ),
    S(
        "caps-missing-compute",
        "§3.4 NVIDIA_DRIVER_CAPABILITIES: compute mounts libcuda",
        {"caps": "utility", "libcuda": False},
        {"driver-capabilities": "fail"},
        {"driver-capabilities": "compute,utility"},
    ),
    S(
        "caps-unset-no-libcuda",
        "§3.4 the default when unset is utility only",
        {"caps": UNSET, "libcuda": False},
        {"driver-capabilities": "fail"},
    ),
    S(
        "caps-missing-utility",
        "§3.4 utility mounts NVML and nvidia-smi",
        {
            "caps": "compute",
            "nvml_reason": "library_not_found",
            "nvml_error": 12,
            "environments": env_with(torch=torch()),
        },
        {"driver-capabilities": "warn", "cuda-available": "warn"},
    ),
    S(
        "cpu-profile-sees-gpus",
        "§3.4 NVIDIA_VISIBLE_DEVICES=all on a CPU profile",
        {"requested": 0, "gpus": [H100, H100]},
        {"driver-capabilities": "warn"},
        {"driver-capabilities": "void"},
    ),
    S(
        "gpus-hidden-void",
        "§3.4 NVIDIA_VISIBLE_DEVICES=void",
        {"visible": "void", "nvml_reason": "library_not_found", "nvml_error": 12, "requested": 0},
        {"driver-capabilities": "pass", "nvml": "skip"},
    ),
    # --- nvidia/cuda base image lifecycle ----------------------------------------------------
    S(
        "eol-env-set",
        "§3.2 90-deprecated-image.sh: NVIDIA_CUDA_END_OF_LIFE",
        {"image_cuda": "11.8.0", "driver_cuda": "13.0", "eol": "1"},
        {"base-image-lifecycle": "fail"},
        {"base-image-lifecycle": "nvidia/cuda:13.0.2-"},
    ),
    S(
        "img12.6.2-deleted",
        "§3.3 container_tags.xlsx: 12.6.2 EOL 2024-12-03, deleted 2025-06-03",
        {"image_cuda": "12.6.2"},
        {"base-image-lifecycle": "warn"},
        {"base-image-lifecycle": "2025-06-03"},
    ),
    S(
        "img12.8.0-not-latest-point",
        "§3.3 policy rule 2: only the latest point release",
        {"image_cuda": "12.8.0"},
        {"base-image-lifecycle": "warn"},
        {"base-image-lifecycle": "12.8.1"},
    ),
    S(
        "img12.9.1-supported",
        "§3.3 12 stays supported until CUDA 14 [Proj]",
        {"image_cuda": "12.9.1"},
        {"base-image-lifecycle": "pass"},
        {"base-image-lifecycle": "projected"},
    ),
    S(
        "img12.8.1-eol-late-2026",
        "§1.4 R570 EOL Feb 2026; §3.3 deletion six months later",
        {"image_cuda": "12.8.1"},
        {"base-image-lifecycle": "warn"},
        {"base-image-lifecycle": "August 2026"},
    ),
    S(
        "img12.8.1-before-eol",
        "§1.4 R570 EOL Feb 2026: still supported in October 2025",
        {"image_cuda": "12.8.1", "gathered_at": "2025-10-01T00:00:00Z"},
        {"base-image-lifecycle": "pass"},
        {"base-image-lifecycle": "February 2026"},
    ),
    S(
        "base-image-ref-13.0.0",
        "§3.3 rule 2; release from GPU_DEVBOX_BASE_IMAGE",
        {"base_image": "nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04"},
        {"base-image-lifecycle": "warn", "driver-vs-image-cuda": "pass"},
        {"base-image-lifecycle": "13.0.2"},
    ),
]


def _worst(rows: list[dict[str, Any]]) -> str:
    return max((r["status"] for r in rows), key=RANK.__getitem__)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s.id}[{s.fact}]" for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    checks = evaluate(make_facts(**scenario.facts))
    assert {c["id"] for c in checks} == set(CHECK_IDS)  # every check reports, every time
    for check_id, status in scenario.expect.items():
        rows = [c for c in checks if c["id"] == check_id]
        assert _worst(rows) == status, (check_id, rows)
    for check_id, needle in scenario.has.items():
        text = " ".join(
            f"{c['title']} {c['detail']} {c['remedy']}" for c in checks if c["id"] == check_id
        )
        assert needle in text, (check_id, text)
    for check in checks:
        assert check["status"] in RANK
        assert check["title"]
        assert check["detail"]
        if check["status"] == "fail":
            assert check["remedy"], check  # a failure always says what to do


def test_at_least_forty_scenarios() -> None:
    assert len(SCENARIOS) >= 40
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


def test_checks_are_deterministic_and_summarized() -> None:
    facts = make_facts(image_cuda="13.2.2", gpus=[V100], environments=env_with(torch=torch()))
    first, second = evaluate(facts), evaluate(facts)
    assert first == second
    summary = summarize(first)
    assert summary["status"] == "fail"
    assert sum(summary["counts"].values()) == len(first)


def test_environments_are_named_on_their_checks() -> None:
    facts = make_facts(
        environments=[
            environment(torch=torch()),
            environment("kernel:py-cu126", torch=torch("2.12.0+cu126", "12.6", CU126)),
        ]
    )
    rows = [c for c in evaluate(facts) if c["id"] == "framework-cuda"]
    assert [r["environment"] for r in rows] == ["server", "kernel py-cu126 (py-cu126)"]
