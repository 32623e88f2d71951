"""The NVML adapter against the fake pynvml (real error classes, values captured on an H100)."""

from __future__ import annotations

import pynvml  # noqa: TID251 - tests raise the real binding's error codes
import pytest

from gpu_devbox.gpus.errors import NvmlUnavailable, ReasonCode
from gpu_devbox.gpus.nvml import NvmlAdapter, _counter_rate, cuda_version_string
from gpu_devbox.gpus.simulated import _Struct
from tests.fakenvml import CAPTURE, FakeNVML, h100


def open_adapter(fake: FakeNVML) -> tuple[NvmlAdapter, list]:  # type: ignore[type-arg]
    adapter = NvmlAdapter(lambda: fake)
    _, devices = adapter.open()
    return adapter, devices


def test_static_facts_are_those_of_the_h100() -> None:
    fake = FakeNVML()
    adapter = NvmlAdapter(lambda: fake)
    system, devices = adapter.open()
    assert system.driver_version == "580.159.04"
    assert system.cuda_driver_version == "13.0"
    assert system.nvml_version == "13.580.159.04"
    first = devices[0]
    assert first.name == "NVIDIA H100 80GB HBM3"
    assert first.compute_capability == "9.0"
    assert first.memory_total == CAPTURE["idle"]["mem_v2"]["total"]
    assert first.power_limit == 700.0
    assert first.max_clocks == {"sm": 1980, "memory": 2619}
    assert len({d.uuid for d in devices}) == 2


def test_static_facts_are_read_once() -> None:
    fake = FakeNVML()
    adapter, devices = open_adapter(fake)
    names_before = fake.calls["nvmlDeviceGetName"]
    for _ in range(5):
        adapter.sample(devices[0], slow=True)
    assert fake.calls["nvmlDeviceGetName"] == names_before
    assert fake.calls["nvmlDeviceGetCudaComputeCapability"] == 2  # once per GPU, at open


def test_memory_uses_the_v2_api_like_nvidia_smi() -> None:
    # Fact: on an idle H100 the v1 API reports 480 MiB used, v2 reports 0 used + 480 MiB
    # reserved, and nvidia-smi matches v2 (h100-nvml-capture.json).
    fake = FakeNVML()
    adapter, devices = open_adapter(fake)
    memory = adapter.sample(devices[0], slow=False)["memory"]
    assert memory["used"] == 0
    assert memory["reserved"] == 503_316_480
    assert memory["free"] == CAPTURE["idle"]["mem_v2"]["free"]


def test_memory_falls_back_to_v1_on_an_old_driver() -> None:
    # An old libnvidia-ml lacks nvmlDeviceGetMemoryInfo_v2: pynvml raises FUNCTION_NOT_FOUND.
    fake = FakeNVML()
    fake.missing.add("nvmlDeviceGetMemoryInfo_v2")
    adapter, devices = open_adapter(fake)
    memory = adapter.sample(devices[0], slow=False)["memory"]
    assert memory["used"] == CAPTURE["idle"]["mem_v1"]["used"]  # reserved counted as used
    assert memory["reserved"] is None
    # The adapter learns it once instead of failing on every tick.
    before = fake.calls["nvmlDeviceGetMemoryInfo_v2"]
    adapter.sample(devices[0], slow=False)
    assert fake.calls["nvmlDeviceGetMemoryInfo_v2"] == before


def test_loaded_values_match_what_nvidia_smi_reported() -> None:
    # nvidia-smi under load: util 100 %, 54 °C, 696.33 W, SM 1380 MHz, mem 2619 MHz.
    smi = CAPTURE["nvidia_smi_loaded"].split(", ")
    fake = FakeNVML(state="loaded")
    adapter, devices = open_adapter(fake)
    sample = adapter.sample(devices[0], slow=True)
    assert sample["utilization"]["gpu"] == int(smi[5])
    assert sample["temperature"]["gpu"] == int(smi[6])
    assert sample["power"]["usage"] == pytest.approx(float(smi[7]), abs=0.01)
    assert sample["clocks"]["sm"] == int(smi[8])
    assert sample["clocks"]["memory"] == int(smi[9])
    assert round(sample["memory"]["used"] / 2**20) == int(smi[3])  # MiB, rounded like nvidia-smi
    assert sample["processes"] == [
        {
            "pid": 403,
            "used_memory": 916_455_424,
            "gpu_instance_id": None,
            "sm_utilization": 100,
            "local_pid": None,
            "owner": None,
        }
    ]
    assert sample["energy"]["total"] == pytest.approx(4371.308)


def test_pcie_rate_comes_from_the_byte_counters_and_their_timestamps() -> None:
    fake = FakeNVML()
    adapter, devices = open_adapter(fake)
    first = adapter.sample(devices[0], slow=False)["pcie"]
    assert first == {"tx": None, "rx": None}  # the first reading is only a baseline
    second = adapter.sample(devices[0], slow=False)["pcie"]
    idle, loaded = (CAPTURE[s]["pcie_field_counters"] for s in ("idle", "loaded"))
    seconds = (loaded[0]["ts_us"] - idle[0]["ts_us"]) / 1e6
    assert second["tx"] == pytest.approx((loaded[0]["value"] - idle[0]["value"]) / seconds)
    assert second["rx"] == pytest.approx(
        (loaded[1]["value"] - idle[1]["value"]) * 1e6 / (loaded[1]["ts_us"] - idle[1]["ts_us"])
    )
    assert fake.calls["nvmlDeviceGetPcieThroughput"] == 0  # the 20 ms blocking call is never used


def _counter(value: int, ts: int, value_type: int = 1, ret: int = 0) -> _Struct:
    return _Struct(
        {
            "fieldId": 197,
            "timestamp": ts,
            "valueType": value_type,
            "nvmlReturn": ret,
            "value": _Struct({"uiVal": value, "ullVal": value}),
        }
    )


def test_a_32_bit_counter_that_wraps_around_still_gives_the_rate() -> None:
    last: list[int | None] = [None, None, None, None]
    assert _counter_rate(last, 2, _counter(2**32 - 1_000, 0)) is None
    # 3,000 bytes later the 32-bit counter wrapped to 2,000; half a second passed.
    assert _counter_rate(last, 2, _counter(2_000, 500_000)) == 6_000
    assert last == [None, None, 2_000, 500_000]  # the other counter's place is untouched


def test_a_64_bit_counter_that_wraps_around_still_gives_the_rate() -> None:
    last: list[int | None] = [None, None, None, None]
    _counter_rate(last, 0, _counter(2**64 - 10, 0, value_type=3))
    assert _counter_rate(last, 0, _counter(90, 1_000_000, value_type=3)) == 100


def test_counter_errors_and_stale_timestamps_give_no_rate() -> None:
    last: list[int | None] = [None, None, None, None]
    _counter_rate(last, 0, _counter(10, 1_000))
    assert _counter_rate(last, 0, _counter(20, 1_000)) is None  # no time passed
    failed = _counter(30, 2_000, ret=pynvml.NVML_ERROR_NOT_SUPPORTED)
    assert _counter_rate(last, 0, failed) is None
    # A failed reading leaves the baseline as it was: the next good one is measured from it.
    assert _counter_rate(last, 0, _counter(120, 3_000)) == 50_000


def test_unsupported_fields_are_none_not_errors() -> None:
    fake = FakeNVML([h100(unsupported=frozenset({"power", "pcie", "clocks", "energy", "ecc"}))])
    adapter, devices = open_adapter(fake)
    sample = adapter.sample(devices[0], slow=True)
    assert sample["power"]["usage"] is None
    assert sample["pcie"] == {"tx": None, "rx": None}
    assert sample["clocks"]["sm"] is None
    assert devices[0].max_clocks == {"sm": None, "memory": None}
    assert sample["energy"] == {"total": None}
    assert sample["ecc"] == {"uncorrected_volatile": None}
    assert sample["utilization"]["gpu"] == 0  # what is supported still comes through


def test_temperature_falls_back_when_the_v_api_is_missing() -> None:
    fake = FakeNVML()
    fake.missing.add("nvmlDeviceGetTemperatureV")
    adapter, devices = open_adapter(fake)
    assert adapter.sample(devices[0], slow=False)["temperature"]["gpu"] == 33
    assert fake.calls["nvmlDeviceGetTemperature"] == 1


def test_processes_fall_back_from_v3_to_v2() -> None:
    fake = FakeNVML(state="loaded")
    fake.missing.add("nvmlDeviceGetComputeRunningProcesses_v3")
    adapter, devices = open_adapter(fake)
    [process] = adapter.sample(devices[0], slow=True)["processes"]
    assert (process["pid"], process["used_memory"]) == (403, 916_455_424)
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 1


def test_mig_instances_are_enumerated_and_empty_slots_skipped() -> None:
    fake = FakeNVML([h100(mig=["3g.40gb", "1g.10gb"])])
    adapter, devices = open_adapter(fake)
    mig = adapter.mig(devices[0])
    assert mig["enabled"] is True
    assert [i["profile"] for i in mig["instances"]] == ["3g.40gb", "1g.10gb"]
    assert all(i["uuid"].startswith("MIG-") for i in mig["instances"])
    assert mig["instances"][0]["memory"]["total"] == 40 * 1024**3
    # A MIG-enabled parent cannot report utilization: null, not an error.
    assert adapter.sample(devices[0], slow=False)["utilization"]["gpu"] is None


def test_a_gpu_without_mig_support_reports_mig_disabled() -> None:
    fake = FakeNVML([h100(compute_capability=(7, 0), name="Tesla V100-SXM2-32GB")])
    adapter, devices = open_adapter(fake)
    assert adapter.mig(devices[0]) == {
        "capable": False,
        "enabled": False,
        "pending": None,
        "instances": [],
    }


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, ReasonCode.LIBRARY_NOT_FOUND),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, ReasonCode.DRIVER_NOT_LOADED),
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, ReasonCode.DRIVER_LIBRARY_MISMATCH),
        (pynvml.NVML_ERROR_NO_PERMISSION, ReasonCode.NO_PERMISSION),
        (pynvml.NVML_ERROR_GPU_IS_LOST, ReasonCode.GPU_LOST),
        (pynvml.NVML_ERROR_UNKNOWN, ReasonCode.UNKNOWN),
    ],
)
def test_init_errors_map_to_stated_reasons(code: int, reason: ReasonCode) -> None:
    fake = FakeNVML()
    fake.init_error = code
    adapter = NvmlAdapter(lambda: fake)
    with pytest.raises(NvmlUnavailable) as caught:
        adapter.open()
    assert caught.value.reason.code is reason
    assert caught.value.reason.nvml_error == code
    assert caught.value.reason.remedy
    assert not adapter.is_open


def test_a_gpu_lost_while_sampling_is_fatal_with_its_reason() -> None:
    fake = FakeNVML()
    adapter, devices = open_adapter(fake)
    fake.lost.add(1)
    adapter.sample(devices[0], slow=True)  # the other GPU is fine
    with pytest.raises(NvmlUnavailable) as caught:
        adapter.sample(devices[1], slow=False)
    assert caught.value.reason.code is ReasonCode.GPU_LOST


def test_a_missing_binding_is_reported_as_library_not_found() -> None:
    def no_binding() -> object:
        raise ImportError("No module named 'pynvml'")

    with pytest.raises(NvmlUnavailable) as caught:
        NvmlAdapter(no_binding).open()
    assert caught.value.reason.code is ReasonCode.LIBRARY_NOT_FOUND
    assert "nvidia-ml-py" in caught.value.reason.message


def test_the_real_binding_on_this_machine_reports_a_stated_reason() -> None:
    # No NVIDIA driver here: the real pynvml cannot load libnvidia-ml.so.1.
    adapter = NvmlAdapter(lambda: pynvml)
    try:
        adapter.open()
    except NvmlUnavailable as exc:
        reason = exc.reason.code
    else:  # pragma: no cover - only on a machine with a GPU
        adapter.close()
        pytest.skip("this machine has a working NVIDIA driver")
    assert reason in {ReasonCode.LIBRARY_NOT_FOUND, ReasonCode.DRIVER_NOT_LOADED}


def test_close_is_idempotent_and_init_can_be_repeated() -> None:
    fake = FakeNVML()
    adapter, _ = open_adapter(fake)
    adapter.close()
    adapter.close()
    adapter.open()
    assert fake.calls["nvmlInit"] == 2
    assert fake.calls["nvmlShutdown"] == 1


@pytest.mark.parametrize(
    ("encoded", "text"),
    [(13000, "13.0"), (12080, "12.8"), (11040, "11.4"), (0, None), (None, None)],
)
def test_cuda_version_encoding(encoded: int | None, text: str | None) -> None:
    assert cuda_version_string(encoded) == text


def test_a_gpu_lost_at_open_is_kept_as_unreadable_and_the_others_are_read() -> None:
    fake = FakeNVML()
    fake.lost.add(0)
    adapter = NvmlAdapter(lambda: fake)
    _, (lost, alive) = adapter.open()
    assert lost.error is not None
    assert lost.error.code is ReasonCode.GPU_LOST
    assert (lost.index, lost.handle, lost.name) == (0, None, "unknown NVIDIA GPU")
    assert alive.error is None
    assert alive.name == "NVIDIA H100 80GB HBM3"


def test_every_gpu_lost_at_open_makes_nvml_unavailable() -> None:
    fake = FakeNVML()
    fake.lost.update({0, 1})
    adapter = NvmlAdapter(lambda: fake)
    with pytest.raises(NvmlUnavailable) as caught:
        adapter.open()
    assert caught.value.reason.code is ReasonCode.GPU_LOST
    assert not adapter.is_open
