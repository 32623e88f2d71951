"""The sampler: cadence, shared snapshots, bounded history, failures, backoff and recovery."""

from __future__ import annotations

import json
import threading
import tracemalloc

import pynvml  # noqa: TID251 - tests raise the real binding's error codes
import pytest

from gpu_devbox.gpus import NvmlAdapter, Sampler, SamplerConfig, Snapshot, VisibleDevices
from gpu_devbox.gpus.errors import ReasonCode
from tests.fakenvml import FakeNVML, h100


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    fake: FakeNVML | None = None, *, env: dict[str, str] | None = None, **config: float
) -> tuple[Sampler, FakeNVML, Clock]:
    fake = fake or FakeNVML()
    clock = Clock()
    settings = {"interval": 1.0, "slow_interval": 5.0, "history_seconds": 10.0, **config}
    sampler = Sampler(
        NvmlAdapter(lambda: fake),
        visible=VisibleDevices.from_env(env or {}),
        config=SamplerConfig(**settings),
        clock=clock,
    )
    return sampler, fake, clock


def test_costly_fields_are_read_at_the_slow_cadence() -> None:
    sampler, fake, clock = make()
    for _ in range(10):
        sampler.tick()
        clock.advance(1.0)
    # 10 ticks at 1 s; energy and processes every 5 s: ticks 0 and 5, for 2 GPUs.
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 4
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v3"] == 4
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 20
    # ... yet every snapshot carries the last slow values.
    assert all(g["energy"]["total"] is not None for g in sampler.snapshot().gpus)


def test_each_document_carries_the_latest_slow_reading() -> None:
    sampler, fake, clock = make()
    idle = sampler.tick().gpus[0]["energy"]["total"]
    fake.state = "loaded"
    clock.advance(1.0)
    between = sampler.tick().gpus[0]["energy"]["total"]
    clock.advance(4.0)
    after = sampler.tick().gpus[0]["energy"]["total"]
    clock.advance(1.0)
    next_tick = sampler.tick().gpus[0]["energy"]["total"]
    assert between == idle  # not read again before the slow cadence
    assert after != idle  # the next slow reading replaces it ...
    assert next_tick == after  # ... in every document until the one after


def test_the_sampler_makes_snapshots_the_constructor_would() -> None:
    sampler, _, _ = make()
    snapshot = sampler.tick()
    made = Snapshot(
        timestamp=snapshot.timestamp,
        simulated=snapshot.simulated,
        gpus=snapshot.gpus,
        status_version=snapshot.status_version,
    )
    assert snapshot == made
    assert snapshot.body == made.body
    assert snapshot.frame == made.frame


def test_readers_never_reach_nvml() -> None:
    sampler, fake, _ = make()
    sampler.tick()
    before = fake.nvml_calls
    for _ in range(100):
        sampler.snapshot()
        sampler.status()
        sampler.history()
    assert fake.nvml_calls == before


def test_history_is_bounded_and_filtered_by_time() -> None:
    sampler, _, clock = make(history_seconds=5.0)
    stamps = []
    for _ in range(8):
        stamps.append(sampler.tick().timestamp)
        clock.advance(1.0)
    history = [json.loads(s) for s in sampler.history()]
    assert [h["timestamp"] for h in history] == stamps[-5:]
    after = [json.loads(s)["timestamp"] for s in sampler.history(since=stamps[5])]
    assert after == stamps[6:]
    assert sampler.history(since=stamps[-1]) == []
    entry = history[-1]["gpus"][0]
    assert set(entry) == {
        "index",
        "uuid",
        "utilization",
        "memory",
        "temperature",
        "power",
        "clocks",
        "pcie",
    }


def test_the_history_holds_about_the_memory_of_its_bytes() -> None:
    # 600 samples are kept (10 minutes at 1 s): each must cost what its JSON takes, not the
    # buffer the encoder wrote it into (orjson's bytes keep at least 4 KiB).
    sampler, _, clock = make(FakeNVML([h100()]), history_seconds=200.0)
    sampler.tick()
    clock.advance(1.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            sampler.tick()
            clock.advance(1.0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    entries = sampler.history()
    assert len(entries) == 200
    size = sum(len(e) for e in entries)
    assert size / 200 > 250  # one GPU's charted fields
    # Bytes of their own size, plus about 150 for each entry's object headers, its tuple with
    # the timestamp and its deque slot (with orjson's buffers kept: 4 KiB more each).
    assert held < size + 200 * 300, f"{held} bytes held for {size} bytes of history"


def _strict_json(body: bytes) -> object:
    """Parse as JSON proper: ``NaN`` and ``Infinity`` are not JSON (JavaScript rejects them)."""

    def reject(token: str) -> object:
        raise AssertionError(f"{token} in {body!r}")

    return json.loads(body, parse_constant=reject)


def test_a_value_that_is_not_finite_is_serialised_as_null() -> None:
    gpu = {"index": 0, "power": {"usage": float("nan"), "limit": float("inf")}}
    snapshot = Snapshot(1.5, False, (gpu,), 1).encode()
    assert _strict_json(snapshot.body) == {
        "timestamp": 1.5,
        "simulated": False,
        "gpus": [{"index": 0, "power": {"usage": None, "limit": None}}],
    }


def test_what_the_fast_encoder_declines_is_still_serialised() -> None:
    # An integer past 64 bits and a non-string key: the standard library's encoder takes them.
    gpu = {"index": 0, "ecc": {"total": 2**70}, 3: "x"}
    snapshot = Snapshot(1.5, False, (gpu,), 1).encode()
    assert _strict_json(snapshot.body)["gpus"] == [  # type: ignore[index]
        {"index": 0, "ecc": {"total": 2**70}, "3": "x"}
    ]
    assert json.loads(snapshot.frame)["data"] == json.loads(snapshot.body)


def test_snapshot_json_is_the_payload_of_get_gpus() -> None:
    sampler, _, _ = make()
    snapshot = sampler.tick()
    payload = json.loads(snapshot.json)
    assert payload["timestamp"] == snapshot.timestamp
    assert payload["simulated"] is False
    assert [g["index"] for g in payload["gpus"]] == [0, 1]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (pynvml.NVML_ERROR_GPU_IS_LOST, ReasonCode.GPU_LOST),
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, ReasonCode.DRIVER_LIBRARY_MISMATCH),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, ReasonCode.DRIVER_NOT_LOADED),
        (pynvml.NVML_ERROR_NO_PERMISSION, ReasonCode.NO_PERMISSION),
        (pynvml.NVML_ERROR_UNKNOWN, ReasonCode.UNKNOWN),
    ],
)
def test_a_failure_mid_run_empties_the_snapshot_and_retries_with_backoff(
    code: int, reason: ReasonCode
) -> None:
    sampler, fake, clock = make(initial_backoff=1.0, max_backoff=4.0)
    assert len(sampler.tick().gpus) == 2
    fake.fault = code
    assert sampler.tick().gpus == ()
    status = sampler.status()["nvml"]
    assert status["available"] is False
    assert status["reason_code"] == reason.value
    assert status["remedy"]
    # Retries are spaced 1, 2, 4, 4 s apart: count nvmlInit attempts over 12 s.
    inits = fake.calls["nvmlInit"]
    for _ in range(24):
        clock.advance(0.5)
        sampler.tick()
    assert fake.calls["nvmlInit"] - inits == 4  # at +1, +3, +7, +11 s
    # The driver comes back: the next retry recovers.
    fake.fault = None
    clock.advance(4.0)
    assert len(sampler.tick().gpus) == 2
    assert sampler.status()["nvml"]["available"] is True
    assert sampler.status()["nvml"]["reason"] is None


def test_one_lost_gpu_keeps_the_others_sampling() -> None:
    sampler, fake, clock = make()
    sampler.tick()
    # When GPU 0 falls off the bus
    fake.lost.add(0)
    clock.advance(1.0)
    lost, alive = sampler.tick().gpus
    # Then it is shown with its reason and no values, and GPU 1 carries on
    assert lost["reason"]["code"] == "gpu_lost"
    assert lost["reason"]["nvml_error"] == pynvml.NVML_ERROR_GPU_IS_LOST
    assert lost["reason"]["remedy"]
    assert lost["utilization"]["gpu"] is None
    assert lost["memory"]["used"] is None
    assert lost["memory"]["total"] == alive["memory"]["total"]  # static facts stay
    assert alive["reason"] is None
    assert alive["utilization"]["gpu"] is not None
    assert alive["power"]["usage"] is not None
    status = sampler.status()["nvml"]
    assert (status["available"], status["reason_code"]) == (True, None)
    [entry] = [json.loads(h) for h in sampler.history(clock.now - 0.5)]
    assert [g["utilization"]["gpu"] is not None for g in entry["gpus"]] == [False, True]


def test_a_lost_gpu_is_retried_at_the_slow_cadence_and_comes_back() -> None:
    sampler, fake, clock = make()
    sampler.tick()
    fake.lost.add(0)
    clock.advance(1.0)
    sampler.tick()
    fake.calls.clear()
    for _ in range(10):
        clock.advance(1.0)
        sampler.tick()
    # 10 ticks: GPU 1 sampled every time, GPU 0 only tried at the 5 s slow cadence.
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 10 + 2
    fake.lost.clear()
    clock.advance(5.0)
    gpus = sampler.tick().gpus
    assert [g["reason"] for g in gpus] == [None, None]
    assert gpus[0]["utilization"]["gpu"] is not None


def test_a_gpu_lost_before_the_first_sample_is_shown_lost() -> None:
    fake = FakeNVML()
    fake.lost.add(1)
    sampler, _, _ = make(fake)
    alive, lost = sampler.tick().gpus
    assert alive["reason"] is None
    assert alive["name"] == "NVIDIA H100 80GB HBM3"
    assert lost["index"] == 1
    assert lost["reason"]["code"] == "gpu_lost"
    assert lost["name"] == "unknown NVIDIA GPU"
    assert sampler.status()["nvml"]["available"] is True
    assert sampler.status()["gpu_count"] == 2


def test_every_gpu_lost_means_nvml_is_unusable() -> None:
    sampler, fake, _ = make()
    sampler.tick()
    fake.lost.update({0, 1})
    assert sampler.tick().gpus == ()
    assert sampler.status()["nvml"]["reason_code"] == "gpu_lost"
    assert sampler.status()["nvml"]["available"] is False


def test_init_failure_is_reported_without_raising() -> None:
    fake = FakeNVML()
    fake.init_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    sampler, _, _ = make(fake)
    snapshot = sampler.tick()
    assert snapshot.gpus == ()
    status = sampler.status()
    assert status["nvml"]["reason_code"] == "driver_not_loaded"
    assert status["nvml"]["driver_version"] is None
    assert status["gpu_count"] == 0


def test_no_visible_gpu_is_explained() -> None:
    sampler, _, _ = make(env={"CUDA_VISIBLE_DEVICES": ""})
    assert sampler.tick().gpus == ()
    nvml = sampler.status()["nvml"]
    assert nvml["available"] is True
    assert nvml["reason_code"] == "no_visible_gpu"
    assert "CUDA_VISIBLE_DEVICES" in nvml["reason"]


@pytest.mark.parametrize("value", ["void", "none"])
def test_a_server_started_without_gpus_does_not_try_nvml(value: str) -> None:
    sampler, fake, _ = make(env={"NVIDIA_VISIBLE_DEVICES": value})
    assert sampler.tick().gpus == ()
    nvml = sampler.status()["nvml"]
    assert (nvml["available"], nvml["reason_code"]) == (False, "no_visible_gpu")
    assert "started without GPUs" in nvml["reason"]
    assert "NVIDIA_VISIBLE_DEVICES=none" in nvml["reason"]
    assert fake.nvml_calls == 0


def test_visible_mig_instance_filters_the_parent_card() -> None:
    fake = FakeNVML([h100(mig=["3g.40gb", "1g.10gb"]), h100()])
    probe = NvmlAdapter(lambda: fake)
    _, devices = probe.open()
    wanted = probe.mig(devices[0])["instances"][1]["uuid"]
    probe.close()
    sampler, _, _ = make(fake, env={"CUDA_VISIBLE_DEVICES": wanted})
    gpus = sampler.tick().gpus
    assert [g["index"] for g in gpus] == [0]
    assert [i["uuid"] for i in gpus[0]["mig"]["instances"]] == [wanted]


def test_status_version_changes_only_when_status_changes() -> None:
    sampler, fake, clock = make()
    first = sampler.tick().status_version
    clock.advance(1)
    assert sampler.tick().status_version == first
    fake.fault = pynvml.NVML_ERROR_GPU_IS_LOST
    clock.advance(1)
    assert sampler.tick().status_version > first


def test_listeners_get_every_snapshot_and_a_broken_one_is_isolated() -> None:
    sampler, _, clock = make()
    seen: list[Snapshot] = []

    def broken(_: Snapshot) -> None:
        raise RuntimeError("listener bug")

    sampler.subscribe(broken)
    unsubscribe = sampler.subscribe(seen.append)
    sampler.tick()
    clock.advance(1)
    sampler.tick()
    unsubscribe()
    sampler.tick()
    assert len(seen) == 2


def test_the_thread_samples_until_stopped() -> None:
    fake = FakeNVML()
    sampler = Sampler(
        NvmlAdapter(lambda: fake),
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=0.05, slow_interval=0.05, history_seconds=10),
    )
    ticked = threading.Event()
    count = 0

    def on_tick(_: Snapshot) -> None:
        nonlocal count
        count += 1
        if count >= 3:
            ticked.set()

    sampler.subscribe(on_tick)
    sampler.start()
    assert sampler.wait_ready(5)
    assert ticked.wait(5)
    sampler.stop()
    stopped_at = fake.calls["nvmlDeviceGetUtilizationRates"]
    threading.Event().wait(0.3)  # six intervals: a live thread would have sampled again
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == stopped_at
    assert fake.calls["nvmlShutdown"] == 1


@pytest.mark.parametrize(
    "config",
    [
        {"interval": 0},
        {"interval": -1},
        {"interval": float("nan")},
        {"slow_interval": 0.5, "interval": 1.0},
        {"history_seconds": float("inf")},
    ],
)
def test_bad_sampler_config_is_refused(config: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        SamplerConfig(**config)
