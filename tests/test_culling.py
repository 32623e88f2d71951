"""The culler's pure parts: which servers, what they said, the decision, the GPU-hours."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import pytest

from gpu_devbox.catalog import CullPolicy, parse_catalog_text
from gpu_devbox.culling import (
    Action,
    Observation,
    RunningServer,
    Unreadable,
    Usage,
    decide,
    human_duration,
    interval_usage,
    parse_gpus,
    parse_status,
    running_servers,
    split_days,
    totals,
)
from gpu_devbox.culling import prometheus as prom

CATALOG = parse_catalog_text(
    """
images:
  - {name: cpu, reference: x/cpu, cuda: null}
  - {name: cuda, reference: x/cuda, cuda: "12.6"}
cull: {gpu_idle_after: 2h, warn_before: 15m, keep_running: 2}
profiles:
  - {slug: cpu, display_name: CPU, images: [cpu], default: true}
  - {slug: gpu, display_name: GPU, gpu: {count: 1, max_count: 4}, images: [cuda]}
  - {slug: free, display_name: Exempt, gpu: {count: 1}, images: [cuda], cull: false}
  - {slug: mig, display_name: MIG, gpu: {mig: 1g.10gb}, images: [cuda]}
"""
)
POLICY = CullPolicy(7200, 900, 2)
NOW = 1_800_000_000.0


def server(**kwargs: Any) -> RunningServer:
    values: dict[str, Any] = {
        "user": "alice",
        "name": "",
        "url": "/user/alice/",
        "profile": "gpu",
        "gpus": 1,
        "policy": POLICY,
    }
    values.update(kwargs)
    return RunningServer(**values)


def status(idle: float | None, *, until: float | None = None, **extra: Any) -> dict[str, Any]:
    """A status document the server would send at NOW."""
    doc: dict[str, Any] = {
        "visible_gpu_count": 1 if idle is not None else 0,
        "gpu_busy_at": None if idle is None else NOW - idle,
        "gpu_idle_seconds": idle,
        "gpu_memory_held": None if idle is None else True,
        "cull": None,
    }
    if idle is not None:
        doc["cull"] = {
            "gpu_idle_after": 7200,
            "warn_before": 900,
            "stops_at": max(NOW - idle + 7200, until or 0),
            "warning": False,
            "keep_running": {"used": 1 if until else 0, "max": 2, "until": until},
        }
    doc.update(extra)
    return doc


# -- which servers ----------------------------------------------------------------------------


def user(name: str, servers: dict[str, Any], groups: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"name": name, "groups": list(groups), "servers": servers}


def model(options: Any, **kwargs: Any) -> dict[str, Any]:
    base = {
        "ready": True,
        "pending": None,
        "stopped": False,
        "url": "/user/x/",
        "started": "2026-12-01T10:00:00.000000Z",
        "user_options": options,
    }
    base.update(kwargs)
    return base


def test_only_ready_gpu_servers_are_read() -> None:
    users = [
        user("alice", {"": model({"profile": "gpu", "gpus": "3"})}, ("ml",)),
        user("bob", {"": model({"profile": "cpu"})}),
        user("carol", {"train": model({"profile": "mig"}, url="/user/carol/train/")}),
        user("dave", {"": model({"profile": "gpu"}, ready=False, pending="spawn")}),
        user("erin", {"": model({"profile": "free"})}),
        user("frank", {"": model({"profile": "gone"})}),
        user("gina", {"": model({})}),  # no options: the default profile (CPU)
        {"name": "broken", "servers": ["not", "a", "dict"]},
        "garbage",
        user("hank", {"": model({"profile": ["gpu"]})}),
    ]
    found = {s.label: s for s in running_servers(users, CATALOG)}
    assert set(found) == {"alice", "carol/train", "erin", "frank", "hank"}
    alice = found["alice"]
    assert (alice.profile, alice.gpus, alice.policy, alice.groups) == ("gpu", 3, POLICY, ("ml",))
    assert (
        alice.started
        == datetime.datetime(2026, 12, 1, 10, tzinfo=datetime.timezone.utc).timestamp()
    )
    assert found["carol/train"].gpus == 1
    assert found["carol/train"].url == "/user/carol/train/"
    assert found["erin"].policy is None  # cull: false
    assert found["frank"].policy == POLICY  # a profile the catalog lost: the top-level policy
    assert found["hank"].profile is None


def test_node_and_pod_come_from_the_spawners_state_when_readable() -> None:
    state = {"pod_name": "jupyter-alice", "namespace": "jh", "gpu_devbox": {"node": "a100-1"}}
    (found,) = running_servers(
        [user("alice", {"": model({"profile": "gpu"}, state=state)})], CATALOG
    )
    assert (found.node, found.pod) == ("a100-1", ("jh", "jupyter-alice"))


# -- what a server said -------------------------------------------------------------------------


def test_a_status_with_gpu_activity() -> None:
    seen = parse_status(status(600.0, until=NOW + 60))
    assert seen.gpu_idle_seconds == 600
    assert seen.server_now == NOW
    assert seen.cull is not None
    assert seen.cull.keep_running.until == NOW + 60
    assert parse_status(status(None)).has_gpu is False


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([], "the status is not a JSON object"),
        ({"version": "1.0"}, "reports no GPU activity"),
        (status(600.0, gpu_idle_seconds="600"), "gpu_idle_seconds is not a number"),
        (status(600.0, gpu_idle_seconds=math.inf), "gpu_idle_seconds is not a number"),
        (status(600.0, gpu_idle_seconds=-1), "gpu_idle_seconds is negative"),
        (status(600.0, gpu_busy_at=None), "disagree about having a GPU"),
        (status(600.0, gpu_memory_held="yes"), "gpu_memory_held is not true"),
        (status(600.0, cull=[]), "cull is not an object"),
        (status(600.0, cull={"warning": False}), "cull.keep_running is not an object"),
    ],
)
def test_garbage_is_unreadable_with_the_reason(doc: Any, why: str) -> None:
    with pytest.raises(Unreadable, match=why):
        parse_status(json.loads(json.dumps(doc, allow_nan=True)))


def test_the_gpu_list() -> None:
    gpus = parse_gpus(
        {
            "gpus": [
                {"name": "H100", "utilization": {"gpu": 90}, "memory": {"used": 2**30}},
                {"name": "H100", "utilization": {"gpu": None}, "memory": {"used": 2**30}},
                {"name": "H100", "utilization": {"gpu": 30}, "memory": {"used": None}},
            ]
        }
    )
    assert (gpus.names, gpus.utilization, gpus.memory_used) == (("H100",) * 3, 60.0, 2**31)
    with pytest.raises(Unreadable):
        parse_gpus({"gpus": "none"})


# -- the decision -------------------------------------------------------------------------------

CASES = [
    # (idle seconds, keep-running until (relative to NOW), action, reason, stops in)
    (0.0, None, Action.KEEP, "busy", 7200),
    (3600.0, None, Action.KEEP, "busy", 3600),
    (7200 - 900.0, None, Action.WARN, "warning", 900),
    (7200 - 60.0, None, Action.WARN, "warning", 60),
    (7200.0, None, Action.WARN, "warning", 0),  # at the limit, not past it
    (7201.0, None, Action.CULL, "gpu-idle", 0),
    (7201.0, 3600.0, Action.KEEP, "keep-running", 3600),
    (7201.0, 600.0, Action.WARN, "warning", 600),
    (7201.0, -1.0, Action.CULL, "gpu-idle", 0),  # the extension ran out
    # a claimed extension longer than one period counts as one period from now
    (7201.0, 10 * 86400.0, Action.KEEP, "keep-running", 7200),
    (100.0, 9000.0, Action.KEEP, "keep-running", 7200),
]


@pytest.mark.parametrize(("idle", "until", "action", "reason", "stops_in"), CASES)
def test_decisions(
    idle: float, until: float | None, action: Action, reason: str, stops_in: float
) -> None:
    seen = parse_status(status(idle, until=None if until is None else NOW + until))
    # the culler's clock is 30 s ahead of the server's: only the server's clock counts
    decision = decide(server(), seen, NOW + 30)
    assert (decision.action, decision.reason) == (action, reason)
    assert decision.idle_seconds == idle
    assert decision.stops_at == pytest.approx(NOW + 30 + stops_in)


def test_nothing_is_culled_that_may_not_be() -> None:
    idle = parse_status(status(10 * 3600.0))
    never = [
        decide(server(groups=("staff", "vip")), idle, NOW, exempt_groups={"vip"}),
        decide(server(policy=None, profile="free"), idle, NOW),
        decide(server(), None, NOW, error="timed out after 10 s"),
        decide(server(), parse_status(status(None)), NOW),
    ]
    assert [(d.action, d.reason) for d in never] == [
        (Action.SKIP, "exempt-group"),
        (Action.SKIP, "no-policy"),
        (Action.SKIP, "unreadable"),
        (Action.SKIP, "no-gpu"),
    ]
    assert never[0].message == "in the exempt group vip"
    assert never[2].message == "cannot read its GPU activity: timed out after 10 s"
    assert decide(server(), idle, NOW).action is Action.CULL


def test_human_durations() -> None:
    assert [human_duration(s) for s in (None, 5, 60, 600, 3600, 6300, 86400, 90000)] == [
        "-",
        "5 s",
        "1 min",
        "10 min",
        "1 h",
        "1 h 45 min",
        "1 d",
        "1 d 1 h",
    ]


# -- GPU-hours ----------------------------------------------------------------------------------

UTC = datetime.timezone.utc
PARIS = datetime.timezone(datetime.timedelta(hours=1))


def at(day: int, hour: float, tz: datetime.tzinfo = UTC) -> float:
    return datetime.datetime(2026, 12, day, tzinfo=tz).timestamp() + hour * 3600


def test_split_at_local_midnight() -> None:
    assert split_days(at(1, 23), at(2, 1), UTC) == [("2026-12-01", 3600.0), ("2026-12-02", 3600.0)]
    # 23:00 UTC is already the next day in UTC+1
    assert split_days(at(1, 23), at(2, 1), PARIS) == [("2026-12-02", 7200.0)]


@pytest.mark.parametrize(
    ("start", "end", "gpus", "idle", "expected"),
    [
        (None, at(1, 1), 1, 0.0, {}),  # the first look counts nothing
        (at(1, 0), at(1, 1), 2, 0.0, {"2026-12-01": Usage(7200, 7200)}),
        (at(1, 0), at(1, 1), 2, 900.0, {"2026-12-01": Usage(7200, 5400)}),
        (at(1, 0), at(1, 1), 1, 99999.0, {"2026-12-01": Usage(3600, 0)}),
        (at(1, 0), at(1, 1), 1, None, {"2026-12-01": Usage(3600, 0)}),  # unreadable
        # busy first, then idle across midnight
        (
            at(1, 23),
            at(2, 1),
            1,
            5400.0,
            {"2026-12-01": Usage(3600, 1800), "2026-12-02": Usage(3600, 0)},
        ),
        # the culler was down for 10 hours: only max_gap (2 h) counts
        (at(1, 0), at(1, 10), 1, 0.0, {"2026-12-01": Usage(7200, 7200)}),
    ],
)
def test_interval_usage(
    start: float | None, end: float, gpus: int, idle: float | None, expected: dict[str, Usage]
) -> None:
    assert interval_usage(start, end, gpus, idle, max_gap=7200, tz=UTC) == expected


def test_today_and_the_last_seven_days() -> None:
    rows = {
        "2026-11-24": Usage(100, 1),  # eight days before: out
        "2026-11-25": Usage(10, 5),
        "2026-12-01": Usage(3600, 1800),
        "2026-12-02": Usage(7200, 0),  # tomorrow (another timezone): out
    }
    today, week = totals(rows, "2026-12-01")
    assert (today, week) == (Usage(3600, 1800), Usage(3610, 1805))
    assert today.held_hours == 1
    assert today.busy_hours == 0.5


# -- Prometheus ---------------------------------------------------------------------------------


def vector(*samples: tuple[dict[str, str], float | str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [NOW, str(v)]} for m, v in samples],
        },
    }


def test_gpu_devbox_series() -> None:
    alice = {"username": "alice"}
    bob = {"username": "bob", "servername": "train"}
    part = prom.PART
    doc = vector(
        ({part: "idle", **alice}, 600),
        ({part: "busy_at", **alice}, NOW - 600),
        ({part: "memory_held", **alice}, 1),
        ({part: "utilization", **alice}, 0.3),
        ({part: "models", "model": "H100", **alice}, 2),
        ({part: "memory_used", **alice}, 1024),
        ({part: "idle", **bob}, "NaN"),  # no GPU
        ({part: "busy_at", **bob}, "NaN"),
        ({part: "utilization"}, 1),  # no user label
        ({part: "memory_used", **alice, "servername": "other"}, "NaN"),  # no idle series
    )
    found = prom.gpu_devbox_activity(prom.parse_vector(doc))
    assert set(found) == {("alice", ""), ("bob", "train")}
    alice_seen = found["alice", ""]
    assert (alice_seen.gpu_idle_seconds, alice_seen.gpu_memory_held) == (600, True)
    assert alice_seen.gpus.names == ("H100", "H100")
    assert alice_seen.gpus.utilization == pytest.approx(30)
    assert alice_seen.gpus.memory_used == 1024
    assert found["bob", "train"].has_gpu is False


def test_dcgm_series() -> None:
    pod = {"namespace": "jh", "pod": "jupyter-alice"}
    doc = vector(
        ({prom.PART: "busy_at", **pod}, NOW - 300),
        ({prom.PART: "utilization", **pod}, 2),
        ({prom.PART: "memory_used_mib", **pod}, 512),
        ({prom.PART: "models", "modelName": "NVIDIA H100", **pod}, 2),
        ({prom.PART: "utilization", "namespace": "jh", "pod": "jupyter-bob"}, 0),
    )
    found = prom.dcgm_activity(prom.parse_vector(doc))
    alice = prom.dcgm_observation(
        found["jh", "jupyter-alice"], now=NOW, started=None, lookback=9000
    )
    assert (alice.gpu_idle_seconds, alice.gpu_memory_held, alice.gpu_count) == (300, True, 2)
    assert alice.gpus.memory_used == 512 * 2**20
    # no busy sample in the window: idle since the window began, or since the server started
    bob = found["jh", "jupyter-bob"]
    assert prom.dcgm_observation(bob, now=NOW, started=None, lookback=9000).gpu_idle_seconds == 9000
    assert (
        prom.dcgm_observation(bob, now=NOW, started=NOW - 60, lookback=9000).gpu_idle_seconds == 60
    )


def test_the_dcgm_query_is_one_query_over_a_lookback() -> None:
    query = prom.dcgm_query(busy_utilization=5, lookback=7500, step=30)
    assert query.count("DCGM_FI_DEV_GPU_UTIL >= 5)[7500s:30s]") == 1
    assert " or " in query


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"status": "error", "error": "bad query"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "x"]}]}},
    ],
)
def test_prometheus_garbage(doc: Any) -> None:
    with pytest.raises(prom.PrometheusError):
        prom.parse_vector(doc)


def test_label_names_are_checked() -> None:
    assert prom.check_label("username") == "username"
    with pytest.raises(ValueError, match="is not a Prometheus label name"):
        prom.check_label('user"}')


def test_observation_defaults() -> None:
    seen = Observation(gpu_busy_at=None, gpu_idle_seconds=None, gpu_memory_held=None)
    assert not seen.has_gpu
    assert seen.server_now is None
