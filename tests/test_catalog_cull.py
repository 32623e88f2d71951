"""The catalog's ``cull`` blocks: durations, defaults, exemptions, errors with file and line, and
the policy the spawner passes to a GPU server's pod."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_devbox.catalog import CatalogError, CullPolicy, parse_catalog_text
from gpu_devbox.catalog.durations import format_duration, parse_duration
from gpu_devbox.placement import ClusterState, compute_offers, plan
from gpu_devbox_spawner.manifests import Baseline, pod_settings
from tests import k8s_objects as k

CATALOG = """\
version: 1
images:
  - {{name: cpu, reference: example.org/nb:cpu, cuda: null}}
  - {{name: cuda12, reference: example.org/nb:cuda12.6, cuda: "12.6"}}
{top}profiles:
  - slug: cpu
    display_name: CPU only
    images: [cpu]
{cpu}  - slug: gpu
    display_name: One GPU
    gpu: {{count: 1, max_count: 2}}
    images: [cuda12]
{gpu}  - slug: big
    display_name: Big GPUs
    gpu: {{count: 4}}
    images: [cuda12]
{big}"""


def catalog(top: str = "", cpu: str = "", gpu: str = "", big: str = "") -> str:
    return CATALOG.format(top=top, cpu=cpu, gpu=gpu, big=big)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (45, 45), ("0", 0)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2 hours", "must be a duration like 90s, 15m, 2h, 1d or 1h30m, not '2 hours'"),
        ("30m1h", "give each unit once, largest first, not '30m1h'"),
        ("1h1h", "give each unit once, largest first"),
        (-5, "not negative"),
        (1.5, "must be a duration"),
        (True, "must be a duration"),
    ],
)
def test_bad_durations(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for seconds in (0, 59, 90, 3600, 5400, 86400 + 3600 + 1):
        assert parse_duration(format_duration(seconds)) == seconds


def test_the_top_level_policy_applies_to_gpu_profiles_only() -> None:
    cat = parse_catalog_text(catalog(top="cull: {gpu_idle_after: 2h, warn_before: 15m}\n"))
    policies = {p.slug: p.cull for p in cat.profiles}
    assert policies == {
        "cpu": None,
        "gpu": CullPolicy(7200, 900, 1),
        "big": CullPolicy(7200, 900, 1),
    }
    assert cat.cull == CullPolicy(7200, 900, 1)


def test_a_profile_overrides_fields_and_false_exempts_it() -> None:
    cat = parse_catalog_text(
        catalog(
            top="cull: {gpu_idle_after: 2h, keep_running: 2}\n",
            gpu="    cull: {gpu_idle_after: 30m}\n",
            big="    cull: false\n",
        )
    )
    policies = {p.slug: p.cull for p in cat.profiles}
    # warn_before: 15 minutes, or half of gpu_idle_after when that is shorter
    assert policies["gpu"] == CullPolicy(1800, 900, 2)
    assert policies["big"] is None


def test_without_a_top_level_policy_only_profiles_with_their_own_are_culled() -> None:
    cat = parse_catalog_text(catalog(gpu="    cull: {gpu_idle_after: 20m, warn_before: 0s}\n"))
    assert {p.slug: p.cull for p in cat.profiles} == {
        "cpu": None,
        "gpu": CullPolicy(1200, 0, 1),
        "big": None,
    }
    assert cat.cull is None
    short = parse_catalog_text(catalog(gpu="    cull: {gpu_idle_after: 10m}\n"))
    assert short.profile("gpu").cull == CullPolicy(600, 300, 1)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (
            {"top": "cull: {gpu_idle_after: 2 h}\n"},
            (
                "c.yaml:5: cull.gpu_idle_after: must be a duration like 90s, 15m, 2h, 1d or 1h30m, "
                "not '2 h'"
            ),
        ),
        ({"top": "cull: {warn_before: 5m}\n"}, "c.yaml:5: cull: needs the field 'gpu_idle_after'"),
        (
            {"top": "cull:\n  gpu_idle_after: 1h\n  warn_before: 1h\n"},
            "c.yaml:7: cull.warn_before: must be shorter than gpu_idle_after (1h), not 1h",
        ),
        (
            {"gpu": "    cull:\n      gpu_idle_after: 0s\n"},
            "c.yaml:14: profiles[1].cull.gpu_idle_after: must be longer than 0s",
        ),
        (
            {"gpu": "    cull: {warn_before: 5m}\n"},
            (
                "c.yaml:13: profiles[1].cull: needs the field 'gpu_idle_after' (here or in the "
                "top-level cull)"
            ),
        ),
        (
            {"gpu": "    cull: true\n"},
            (
                "c.yaml:13: profiles[1].cull: must be a policy {gpu_idle_after: 2h, "
                "warn_before: 15m, keep_running: 2} or false, not True"
            ),
        ),
        (
            {"gpu": "    cull:\n      gpu_idle_after: 1h\n      keep_runing: 2\n"},
            (
                "c.yaml:15: profiles[1].cull.keep_runing: is not a known field; allowed here: "
                "gpu_idle_after, warn_before, keep_running"
            ),
        ),
        (
            {"gpu": "    cull:\n      gpu_idle_after: 1h\n      keep_running: -1\n"},
            (
                "c.yaml:15: profiles[1].cull.keep_running: must be a whole number from 0 to 1000, "
                "not -1"
            ),
        ),
        (
            {"cpu": "    cull: {gpu_idle_after: 1h}\n"},
            (
                "c.yaml:9: profiles[0].cull: a profile without GPUs has no GPU to be idle: "
                "only GPU profiles are culled; remove cull here"
            ),
        ),
    ],
)
def test_a_malformed_cull_block_is_a_catalog_error_with_file_and_line(
    parts: dict[str, str], message: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog_text(catalog(**parts), "c.yaml")
    assert str(caught.value) == message


def test_the_shipped_catalog_and_examples_still_load() -> None:
    from gpu_devbox.catalog import default_catalog

    assert default_catalog().profiles


def _settings(text: str, slug: str) -> dict[str, str]:
    cat = parse_catalog_text(text)
    state = ClusterState.from_objects([k.gpu_node("a100-1", k.A100), k.node("cpu-1")], [])
    offers = {o.slug: o for o in compute_offers(cat, state.snapshot())}
    offer = offers[slug]
    chosen = plan(offer, offer.default_image, offer.profile.gpu.count)
    env: dict[str, str] = pod_settings(
        chosen, Baseline.capture({"environment": {"GPU_DEVBOX_CULL_WARN_BEFORE": "1"}})
    )["environment"]
    return env


def test_the_spawner_passes_a_gpu_profiles_policy_to_the_pod() -> None:
    text = catalog(
        top="cull: {gpu_idle_after: 2h, warn_before: 15m, keep_running: 3}\n",
        big="    cull: false\n",
    )
    env = _settings(text, "gpu")
    assert env["GPU_DEVBOX_CULL_GPU_IDLE_AFTER"] == "7200"
    assert env["GPU_DEVBOX_CULL_WARN_BEFORE"] == "900"
    assert env["GPU_DEVBOX_CULL_KEEP_RUNNING"] == "3"
    # an exempt profile and a CPU profile get none (not even the admin's own value)
    for slug in ("big", "cpu"):
        assert not [name for name in _settings(text, slug) if name.startswith("GPU_DEVBOX_CULL_")]


def test_example_catalogs_in_the_repository_load() -> None:
    root = Path(__file__).resolve().parents[1]
    parse_catalog_text((root / "tests_hub" / "catalog.yaml").read_text())
