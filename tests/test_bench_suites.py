"""Suites, sizes and statistics: pure functions, table-tested."""

from __future__ import annotations

import pytest

from gpu_devbox.bench import suites
from gpu_devbox.bench.measure import spread
from gpu_devbox.bench.suites import GiB, MiB, Sizes, SuiteError, parse_sizes, suite_sizes

QUICK = suites.SUITES["quick"]
FULL = suites.SUITES["full"]
H100_FREE = 79 * GiB


def test_an_h100_runs_the_quick_suite_at_the_reference_sizes() -> None:
    budget = int(H100_FREE * 0.5)
    sizes = suite_sizes(QUICK, "gpu", device_budget=budget, host_budget=8 * GiB)
    # 8192 is the size the plain-PyTorch reference measures at.
    assert sizes == Sizes(matmul_n=8192, copy_bytes=1 * GiB, transfer_bytes=256 * MiB)
    full = suite_sizes(FULL, "gpu", device_budget=budget, host_budget=8 * GiB)
    assert full == Sizes(matmul_n=8192, copy_bytes=4 * GiB, transfer_bytes=1 * GiB)


def test_default_sizes_shrink_to_the_memory_allowed() -> None:
    # 300 MiB allowed: 4 matrices of fp32 must fit, the copy gets half, the transfer the rest.
    sizes = suite_sizes(QUICK, "gpu", device_budget=300 * MiB, host_budget=64 * MiB)
    assert sizes.matmul_n % suites.MATMUL_N_STEP == 0
    assert 16 * sizes.matmul_n**2 <= 300 * MiB < 16 * (sizes.matmul_n + 256) ** 2
    assert sizes.copy_bytes == 150 * MiB
    assert sizes.transfer_bytes == 64 * MiB


def test_too_little_memory_for_the_smallest_default_is_an_error() -> None:
    with pytest.raises(SuiteError, match="not enough free GPU memory for even a 256x256 matmul"):
        suite_sizes(QUICK, "gpu", device_budget=512 * 1024, host_budget=GiB)


def test_requested_sizes_are_used_as_given_when_they_fit() -> None:
    sizes = suite_sizes(
        QUICK,
        "cpu",
        device_budget=0,
        host_budget=GiB,
        requested={"matmul_n": 100, "copy_bytes": 5000},
    )
    assert sizes == Sizes(matmul_n=100, copy_bytes=5000, transfer_bytes=0)


@pytest.mark.parametrize(
    ("requested", "words"),
    [
        ({"matmul_n": 16384}, "sizes.matmul_n=16384 needs 4.00 GiB of GPU memory"),
        ({"copy_bytes": 2 * GiB}, "sizes.copy_bytes=2147483648 needs 4.00 GiB"),
        ({"transfer_bytes": 3 * GiB}, "sizes.transfer_bytes=3221225472 needs 3.00 GiB"),
    ],
)
def test_requested_sizes_beyond_the_budget_are_refused(
    requested: dict[str, int], words: str
) -> None:
    with pytest.raises(SuiteError) as error:
        suite_sizes(QUICK, "gpu", device_budget=2 * GiB, host_budget=2 * GiB, requested=requested)
    assert words in str(error.value)
    assert "the benchmark may use" in str(error.value)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([1], "sizes must be an object"),
        ({"n": 5}, "unknown size 'n'"),
        ({"matmul_n": 8.5}, "must be an integer"),
        ({"matmul_n": True}, "must be an integer"),
        ({"matmul_n": 15}, "outside the allowed range 16 to 65536"),
        ({"copy_bytes": 1}, "outside the allowed range 4096"),
        ({"transfer_bytes": 1 << 50}, "outside the allowed range"),
    ],
)
def test_malformed_or_absurd_sizes_are_refused(raw: object, words: str) -> None:
    with pytest.raises(SuiteError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_sizes(raw)


def test_no_sizes_is_fine() -> None:
    assert parse_sizes(None) == {}
    assert parse_sizes({}) == {}


def test_unknown_suites_name_the_known_ones() -> None:
    assert suites.suite("full") is FULL
    with pytest.raises(SuiteError, match="unknown suite 'fast'; choose one of: quick, full"):
        suites.suite("fast")


def test_every_step_of_every_suite_is_a_known_measurement() -> None:
    for spec in suites.SUITES.values():
        for kind in ("gpu", "cpu"):
            for step in spec.steps[kind]:
                assert step in suites.MEASUREMENTS
            assert spec.repeats[kind] >= 5
            assert spec.warmup[kind] >= 1


def test_spread_is_the_median_and_quartiles_of_the_repeats() -> None:
    median, quartiles = spread([4.0, 1.0, 3.0, 2.0, 5.0])
    assert median == 3.0
    assert quartiles == {"min": 1.0, "q1": 2.0, "q3": 4.0, "max": 5.0}
    one, single = spread([0.5])
    assert one == 0.5
    assert single == {"min": 0.5, "q1": 0.5, "q3": 0.5, "max": 0.5}
    # A zero duration (a timer too coarse) never divides by zero.
    tiny, _ = spread([0.0, 0.0])
    assert tiny > 0
    with pytest.raises(ValueError, match="no durations"):
        spread([])
