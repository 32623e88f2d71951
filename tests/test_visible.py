"""CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES semantics, table-driven."""

from __future__ import annotations

import pytest

from gpu_devbox.gpus.visible import DeviceIdentity, Selection, VisibleDevices

GPU0 = "GPU-aaaa0000-0000-0000-0000-000000000000"
GPU1 = "GPU-bbbb1111-0000-0000-0000-000000000000"
GPU2 = "GPU-cccc2222-0000-0000-0000-000000000000"
MIG_A = "MIG-11111111-0000-0000-0000-000000000000"
MIG_B = "MIG-22222222-0000-0000-0000-000000000000"
DEVICES = [
    DeviceIdentity(0, GPU0),
    DeviceIdentity(1, GPU1, (MIG_A, MIG_B)),
    DeviceIdentity(2, GPU2),
]


def chosen(env: dict[str, str], override: str | None = None) -> list[Selection]:
    return VisibleDevices.from_env(env, override).select(DEVICES)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [0, 1, 2]),
        ({"NVIDIA_VISIBLE_DEVICES": "all"}, [0, 1, 2]),
        ({"NVIDIA_VISIBLE_DEVICES": "none"}, []),
        ({"NVIDIA_VISIBLE_DEVICES": "void"}, []),
        ({"NVIDIA_VISIBLE_DEVICES": ""}, []),
        ({"NVIDIA_VISIBLE_DEVICES": GPU2}, [2]),
        # Host indices that the runtime already applied: NVML sees exactly that many GPUs.
        ({"NVIDIA_VISIBLE_DEVICES": "4,5,6"}, [0, 1, 2]),
        # Fewer indices than GPUs NVML sees: filter by index (bare metal).
        ({"NVIDIA_VISIBLE_DEVICES": "0,2"}, [0, 2]),
        ({"CUDA_VISIBLE_DEVICES": ""}, []),
        ({"CUDA_VISIBLE_DEVICES": "2,0"}, [0, 2]),
        ({"CUDA_VISIBLE_DEVICES": "1"}, [1]),
        # CUDA stops at the first entry that names no device.
        ({"CUDA_VISIBLE_DEVICES": "0,7,2"}, [0]),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, []),
        ({"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}, [1]),  # a unique UUID prefix is enough
        ({"CUDA_VISIBLE_DEVICES": "GPU-"}, []),  # ambiguous prefix names no device
        ({"CUDA_VISIBLE_DEVICES": GPU0.upper()}, [0]),
        ({"NVIDIA_VISIBLE_DEVICES": f"{GPU0},{GPU2}", "CUDA_VISIBLE_DEVICES": "2"}, [2]),
        ({"NVIDIA_VISIBLE_DEVICES": GPU0, "CUDA_VISIBLE_DEVICES": "2"}, []),
    ],
)
def test_visible_gpus(env: dict[str, str], expected: list[int]) -> None:
    assert [s.index for s in chosen(env)] == expected


def test_a_mig_uuid_shows_its_parent_with_only_that_instance() -> None:
    assert chosen({"CUDA_VISIBLE_DEVICES": MIG_B}) == [Selection(1, frozenset({MIG_B}))]
    assert chosen({"NVIDIA_VISIBLE_DEVICES": f"{MIG_A},{GPU0}"}) == [
        Selection(0, None),
        Selection(1, frozenset({MIG_A})),
    ]


def test_cuda_cannot_widen_what_the_container_runtime_allowed() -> None:
    env = {"NVIDIA_VISIBLE_DEVICES": MIG_A, "CUDA_VISIBLE_DEVICES": MIG_B}
    assert chosen(env) == []
    env = {"NVIDIA_VISIBLE_DEVICES": MIG_A, "CUDA_VISIBLE_DEVICES": "1"}
    assert chosen(env) == [Selection(1, frozenset({MIG_A}))]


def test_the_override_replaces_both_variables() -> None:
    env = {"NVIDIA_VISIBLE_DEVICES": "none", "CUDA_VISIBLE_DEVICES": "0"}
    assert [s.index for s in chosen(env, override="1,2")] == [1, 2]


def test_describe_names_the_rules() -> None:
    assert VisibleDevices.from_env({}).describe() == "all GPUs"
    described = VisibleDevices.from_env({"CUDA_VISIBLE_DEVICES": "0,1"}).describe()
    assert described == "CUDA_VISIBLE_DEVICES=0,1"
