"""The GPU idle clock and the idle policy's arithmetic, table by table, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from gpu_devbox.activity import (
    MIB,
    BusyThresholds,
    CullPolicy,
    KeepRunning,
    KeepRunningRefused,
    PolicyError,
    ServerActivity,
    cull_document,
    holds_memory,
    is_busy,
    memory_used,
)

T0 = 1_800_000_000.0  # the server's start, in Unix seconds


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def gpu(
    utilization: float | None = 0,
    used: int | None = 0,
    *,
    uuid: str = "GPU-0",
    reserved: int | None = 480 * MIB,
    processes: list[dict[str, Any]] | None = None,
    mig: list[int | None] | None = None,
) -> dict[str, Any]:
    """A GPU document as the sampler publishes it, with only the fields activity reads."""
    document: dict[str, Any] = {
        "index": 0,
        "uuid": uuid,
        "utilization": {"gpu": utilization, "memory": 0},
        "memory": {"total": 80 * 1024 * MIB, "used": used, "reserved": reserved, "free": 0},
        "processes": processes if processes is not None else [],
        "mig": {"capable": True, "enabled": False, "pending": None, "instances": []},
    }
    if mig is not None:
        document["utilization"]["gpu"] = None  # NVML cannot tell on a MIG parent
        document["mig"]["enabled"] = True
        document["mig"]["instances"] = [
            {"uuid": f"MIG-{i}", "memory": {"total": 10 * 1024 * MIB, "used": u}}
            for i, u in enumerate(mig)
        ]
    return document


# ---------------------------------------------------------------------------- one sample
@pytest.mark.parametrize(
    ("sample", "previous", "busy"),
    [
        (gpu(utilization=0), 0, False),
        (gpu(utilization=4), 0, False),
        (gpu(utilization=4.99), 0, False),
        (gpu(utilization=5), 0, True),  # at the threshold counts
        (gpu(utilization=100), 0, True),
        (gpu(utilization=None), 0, False),  # unsupported: only memory can tell
        # memory moved by more than 256 MiB since the last sample: loading or freeing a model
        (gpu(used=300 * MIB), 0, True),
        (gpu(used=0), 300 * MIB, True),
        (gpu(used=256 * MIB), 0, False),  # exactly the threshold is not more than it
        (gpu(used=257 * MIB), 0, True),
        (gpu(used=20 * 1024 * MIB), 20 * 1024 * MIB, False),  # held, unchanged: idle
        (gpu(used=300 * MIB), None, False),  # no previous sample: no change to judge
        (gpu(used=None), 0, False),
        # a MIG GPU: its visible instances' memory
        (gpu(mig=[0, 300 * MIB]), 0, True),
        (gpu(mig=[100 * MIB, 100 * MIB]), 200 * MIB, False),
        (gpu(mig=[None, None]), 0, False),
    ],
)
def test_what_counts_as_busy(sample: dict[str, Any], previous: float | None, busy: bool) -> None:
    assert is_busy(sample, previous, BusyThresholds()) is busy


def test_the_thresholds_are_configurable_and_checked() -> None:
    lenient = BusyThresholds(utilization=50, memory_change=0)
    assert not is_busy(gpu(utilization=40), 0, lenient)
    assert is_busy(gpu(utilization=50), 0, lenient)
    assert is_busy(gpu(used=2 * MIB), 0, lenient)
    with pytest.raises(ValueError, match="between 0 and 100"):
        BusyThresholds(utilization=101)
    with pytest.raises(ValueError, match="at least 0 bytes"):
        BusyThresholds(memory_change=-1)


@pytest.mark.parametrize(
    ("sample", "held"),
    [
        (gpu(used=0), False),
        (gpu(used=2 * MIB), True),
        # the v1 memory API (reserved unknown) counts the driver's reservation as used:
        # the process list decides
        (gpu(used=480 * MIB, reserved=None), False),
        (
            gpu(used=980 * MIB, reserved=None, processes=[{"pid": 7, "used_memory": 500 * MIB}]),
            True,
        ),
        (gpu(used=None, reserved=None, processes=None), False),
        (gpu(mig=[0, 0]), False),
        (gpu(mig=[0, 2 * MIB]), True),
    ],
)
def test_what_counts_as_memory_held(sample: dict[str, Any], held: bool) -> None:
    assert holds_memory(sample) is held


def test_memory_used_of_a_mig_gpu_is_its_visible_instances() -> None:
    sample = gpu(used=70 * 1024 * MIB, mig=[2 * MIB, None, 4 * MIB])
    assert memory_used(sample) == 6 * MIB


# ---------------------------------------------------------------------------- the policy
@pytest.mark.parametrize(
    ("env", "policy"),
    [
        ({}, None),
        ({"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": ""}, None),
        (
            {
                "GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "7200",
                "GPU_DEVBOX_CULL_WARN_BEFORE": "900",
                "GPU_DEVBOX_CULL_KEEP_RUNNING": "2",
            },
            CullPolicy(7200, 900, 2),
        ),
        (
            {"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": " 90.5 ", "GPU_DEVBOX_CULL_WARN_BEFORE": "0"},
            CullPolicy(90.5, 0, 0),
        ),
        # without warn_before: 15 minutes, or the whole idle limit when it is shorter
        ({"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "7200"}, CullPolicy(7200, 900, 0)),
        ({"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "60"}, CullPolicy(60, 60, 0)),
    ],
)
def test_the_policy_comes_from_the_spawners_environment(
    env: dict[str, str], policy: CullPolicy | None
) -> None:
    assert CullPolicy.from_env(env) == policy


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "2h"}, "GPU_DEVBOX_CULL_GPU_IDLE_AFTER='2h' is not a"),
        ({"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "0"}, "must be above 0"),
        ({"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "-5"}, "must be above 0"),
        ({"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "nan"}, "must be above 0"),
        ({"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "inf"}, "at most 31622400 seconds"),
        (
            {"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "60", "GPU_DEVBOX_CULL_WARN_BEFORE": "-1"},
            "GPU_DEVBOX_CULL_WARN_BEFORE='-1': must be at least 0",
        ),
        (
            {"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "60", "GPU_DEVBOX_CULL_KEEP_RUNNING": "1.5"},
            "GPU_DEVBOX_CULL_KEEP_RUNNING='1.5': must be a whole number",
        ),
        (
            {"GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "60", "GPU_DEVBOX_CULL_KEEP_RUNNING": "-1"},
            "must be a whole number from 0 to 1000",
        ),
        ({"GPU_DEVBOX_CULL_WARN_BEFORE": "60"}, "set without GPU_DEVBOX_CULL_GPU_IDLE_AFTER"),
    ],
)
def test_a_malformed_policy_names_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(PolicyError) as caught:
        CullPolicy.from_env(env)
    assert words in str(caught.value)


POLICY = CullPolicy(gpu_idle_after=7200, warn_before=900, keep_running=2)


@pytest.mark.parametrize(
    ("keep", "now", "stops_at", "warning"),
    [
        (KeepRunning(), T0, T0 + 7200, False),
        (KeepRunning(), T0 + 6299, T0 + 7200, False),
        (KeepRunning(), T0 + 6300, T0 + 7200, True),  # warn_before ahead of the stop
        (KeepRunning(), T0 + 9000, T0 + 7200, True),  # past it: still warned (not yet culled)
        # "Keep running" moves the stop only later, never earlier
        (KeepRunning(1, T0 + 6300 + 7200), T0 + 6300, T0 + 13500, False),
        (KeepRunning(1, T0 + 100), T0 + 6300, T0 + 7200, True),
    ],
)
def test_stops_at_and_warning(
    keep: KeepRunning, now: float, stops_at: float, warning: bool
) -> None:
    document = cull_document(POLICY, T0, keep, now)
    assert document == {
        "gpu_idle_after": 7200,
        "warn_before": 900,
        "stops_at": stops_at,
        "warning": warning,
        "keep_running": {"used": keep.used, "max": 2, "until": keep.until},
    }


# ---------------------------------------------------------------------------- the clock
def test_an_idle_server_counts_from_its_start() -> None:
    clock = Clock()
    activity = ServerActivity(POLICY, clock=clock)
    activity.observe(T0 + 1, [gpu()])
    clock.now = T0 + 3600
    activity.observe(T0 + 3600, [gpu()])
    document = activity.document()
    assert document["gpu_busy_at"] == T0
    assert document["gpu_idle_seconds"] == 3600
    assert document["gpu_memory_held"] is False
    assert document["cull"]["stops_at"] == T0 + 7200
    assert document["cull"]["warning"] is False


def test_a_busy_sample_restarts_the_clock_and_idle_ones_do_not() -> None:
    clock = Clock()
    activity = ServerActivity(POLICY, clock=clock)
    samples = [
        (T0 + 10, [gpu(utilization=0)]),
        (T0 + 20, [gpu(utilization=0), gpu(utilization=80, uuid="GPU-1")]),  # any GPU counts
        (T0 + 30, [gpu(utilization=3), gpu(utilization=0, uuid="GPU-1")]),
        (T0 + 40, [gpu(used=1024 * MIB), gpu(uuid="GPU-1")]),  # a model loaded: 1 GiB more
        (T0 + 50, [gpu(used=1024 * MIB), gpu(uuid="GPU-1")]),  # held, unchanged
    ]
    busy_at = []
    for timestamp, gpus in samples:
        activity.observe(timestamp, gpus)
        busy_at.append(activity.document()["gpu_busy_at"])
    assert busy_at == [T0, T0 + 20, T0 + 20, T0 + 40, T0 + 40]
    clock.now = T0 + 100
    assert activity.document()["gpu_idle_seconds"] == 60
    assert activity.document()["gpu_memory_held"] is True


def test_a_server_without_gpu_reports_null() -> None:
    activity = ServerActivity(POLICY, clock=Clock())
    assert activity.document() == {
        "gpu_busy_at": None,
        "gpu_idle_seconds": None,
        "gpu_memory_held": None,
        "cull": None,
    }
    activity.observe(T0 + 1, [])
    assert activity.document()["gpu_busy_at"] is None
    with pytest.raises(KeepRunningRefused) as caught:
        activity.keep_running()
    assert caught.value.status == 404


def test_without_a_policy_cull_is_null_and_keep_running_is_404() -> None:
    activity = ServerActivity(None, clock=Clock())
    activity.observe(T0 + 1, [gpu()])
    assert activity.document()["cull"] is None
    assert activity.document()["gpu_busy_at"] == T0
    with pytest.raises(KeepRunningRefused) as caught:
        activity.keep_running()
    assert caught.value.status == 404
    assert "no idle policy" in str(caught.value)


def test_keep_running_buys_one_period_at_a_time_up_to_the_limit() -> None:
    clock = Clock()
    activity = ServerActivity(POLICY, clock=clock)
    activity.observe(T0, [gpu()])
    clock.now = T0 + 6500  # warned since T0 + 6300
    assert activity.document()["cull"]["warning"] is True
    first = activity.keep_running()
    assert first["keep_running"] == {"used": 1, "max": 2, "until": T0 + 6500 + 7200}
    assert first["stops_at"] == T0 + 13700
    assert first["warning"] is False
    clock.now = T0 + 13000
    second = activity.keep_running()
    assert second["keep_running"] == {"used": 2, "max": 2, "until": T0 + 20200}
    with pytest.raises(KeepRunningRefused) as caught:
        activity.keep_running()
    assert caught.value.status == 409
    assert "used 2 of 2 times" in str(caught.value)
    assert activity.document()["cull"]["keep_running"]["used"] == 2  # the refusal changed nothing


def test_using_the_gpu_starts_a_new_idle_spell_with_every_press_back() -> None:
    clock = Clock()
    activity = ServerActivity(POLICY, clock=clock)
    activity.observe(T0, [gpu()])
    clock.now = T0 + 6500
    activity.keep_running()
    activity.keep_running()
    activity.observe(T0 + 7000, [gpu(utilization=90)])
    cull = activity.document()["cull"]
    assert cull["keep_running"] == {"used": 0, "max": 2, "until": None}
    assert cull["stops_at"] == T0 + 7000 + 7200


def test_no_keep_running_allowed_is_409_from_the_first_press() -> None:
    activity = ServerActivity(CullPolicy(60, 30, 0), clock=Clock())
    activity.observe(T0, [gpu()])
    with pytest.raises(KeepRunningRefused) as caught:
        activity.keep_running()
    assert caught.value.status == 409


def test_the_version_moves_with_every_field_but_the_idle_time() -> None:
    clock = Clock()
    activity = ServerActivity(CullPolicy(100, 20, 1), clock=clock)
    versions = [activity.version]

    def observe(timestamp: float, *gpus: dict[str, Any]) -> bool:
        changed = activity.observe(timestamp, gpus)
        versions.append(activity.version)
        return changed

    assert observe(T0 + 1, gpu()) is True  # a GPU appeared
    assert observe(T0 + 2, gpu()) is False  # idle, nothing else moved: not resent
    assert observe(T0 + 79, gpu()) is False
    assert observe(T0 + 80, gpu()) is True  # the warning starts
    assert observe(T0 + 81, gpu(utilization=50)) is True  # busy: gpu_busy_at and warning
    assert observe(T0 + 82, gpu(used=2 * MIB)) is True  # 2 MiB: not busy, but memory held
    assert activity.document()["gpu_busy_at"] == T0 + 81
    assert versions == [0, 1, 1, 1, 2, 3, 4]
    before = activity.version
    clock.now = T0 + 90
    activity.keep_running()
    assert activity.version > before
