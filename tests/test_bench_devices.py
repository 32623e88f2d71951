"""Which GPUs a request benchmarks, from the sampler's snapshot (simulated GPUs, one MIG)."""

from __future__ import annotations

from typing import Any

import pytest

from gpu_devbox.bench.devices import DeviceError, parse_devices, select_targets
from gpu_devbox.gpus import NvmlAdapter, Sampler, VisibleDevices
from gpu_devbox.gpus.backends import BackendSpec
from tests.fakenvml import FakeNVML


@pytest.fixture(scope="module")
def gpus() -> list[dict[str, Any]]:
    """Two simulated H100s as the sampler reports them; GPU 1 is split into MIG instances."""
    sampler = Sampler(BackendSpec("simulated", simulated_mig=[1]).make_adapter(), simulated=True)
    try:
        return list(sampler.tick().gpus)
    finally:
        sampler.stop()


def test_omitted_devices_mean_the_first_visible_gpu(gpus: list[dict[str, Any]]) -> None:
    [target] = select_targets(gpus, None, driver_version="580.159.04")
    assert target.index == 0
    assert target.uuid == gpus[0]["uuid"]
    assert target.name == "NVIDIA H100 80GB HBM3"
    assert target.compute_capability == "9.0"
    assert target.memory_free == gpus[0]["memory"]["free"]
    assert target.driver_version == "580.159.04"


def test_an_empty_list_or_no_gpu_means_the_cpu(gpus: list[dict[str, Any]]) -> None:
    assert select_targets(gpus, []) == ()
    assert select_targets([], None) == ()
    assert select_targets(gpus, None, simulated=True) == ()


def test_a_mig_gpu_is_measured_on_its_first_instance(gpus: list[dict[str, Any]]) -> None:
    [target] = select_targets(gpus, [1])
    instance = gpus[1]["mig"]["instances"][0]
    assert target.index == 1
    assert target.uuid == instance["uuid"]
    assert target.uuid.startswith("MIG-")
    assert "MIG 3g.40gb" in target.name
    assert target.memory_free == instance["memory"]["total"] - instance["memory"]["used"]


def test_a_mig_gpu_without_visible_instances_is_refused(gpus: list[dict[str, Any]]) -> None:
    bare = {**gpus[1], "mig": {**gpus[1]["mig"], "instances": []}}
    with pytest.raises(DeviceError, match="GPU 1 is in MIG mode and none of its MIG instances"):
        select_targets([gpus[0], bare], [1])


def test_several_devices_keep_the_order_asked_for(gpus: list[dict[str, Any]]) -> None:
    assert [t.index for t in select_targets(gpus, [1, 0])] == [1, 0]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("0", "must be a list of GPU indices, not str"),
        ([0, 0], "GPU 0 is listed twice"),
        ([1.0], "not 1.0"),
        ([-2], "not -2"),
    ],
)
def test_malformed_device_lists_are_refused(raw: object, words: str) -> None:
    with pytest.raises(DeviceError, match=words):
        parse_devices(raw)


def test_unknown_and_simulated_gpus_are_refused(gpus: list[dict[str, Any]]) -> None:
    with pytest.raises(DeviceError, match=r"no visible GPU has index 7 \(visible: 0, 1\)"):
        select_targets(gpus, [7])
    with pytest.raises(DeviceError, match="simulated"):
        select_targets(gpus, [0], simulated=True)


def test_a_lost_gpu_is_refused_and_skipped_by_default() -> None:
    fake = FakeNVML()
    fake.lost.add(0)
    sampler = Sampler(NvmlAdapter(lambda: fake), visible=VisibleDevices.from_env({}))
    gpus = list(sampler.tick().gpus)
    with pytest.raises(DeviceError, match="GPU 0 cannot be benchmarked: A GPU fell off the bus"):
        select_targets(gpus, [0])
    [target] = select_targets(gpus, None)
    assert target.index == 1
