"""The datasheet table: NVML names find the right row (and only when sure), and figures are
judged against it the way the H100 reference measurements say a healthy GPU behaves."""

from __future__ import annotations

import re

import pytest

from gpu_devbox.bench.peaks import FLAG_RATIO, PeakTable, load_table, normalize_name
from gpu_devbox.bench.suites import MEASUREMENTS

# What plain PyTorch measured on an H100 SXM (the figures gpu_devbox/bench/peaks.json cites).
H100_REFERENCE = {
    "matmul_bf16": 797e12,
    "matmul_fp16": 764e12,
    "matmul_tf32": 386e12,
    "matmul_fp32": 51.5e12,
    "memory_copy": 3024e9,
    "h2d_pinned": 53.2e9,
    "d2h_pinned": 53.6e9,
}


@pytest.fixture(scope="module")
def table() -> PeakTable:
    return load_table()


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
        ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
        ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),
        ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("Tesla T4", "T4"),
        ("Tesla V100-SXM2-16GB", "V100 SXM2"),
        ("Tesla V100-SXM2-32GB", "V100 SXM2"),
        ("Tesla V100-PCIE-32GB", "V100 PCIe"),
        ("Tesla V100S-PCIE-32GB", "V100S PCIe"),
        ("NVIDIA B200", "B200"),
        ("NVIDIA GeForce RTX 3090", "GeForce RTX 3090"),
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
        ("  nvidia   h100  80gb  hbm3 ", "H100 SXM"),
    ],
)
def test_nvml_names_find_their_model(table: PeakTable, name: str, model: str) -> None:
    match = table.match(name)
    assert match.row is not None, match.reason
    assert match.row.model == model
    assert match.reason is None


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("NVIDIA A10G", "unknown model"),  # an AWS part with other figures, not an A10
        ("NVIDIA A100 80GB", "unknown model"),  # which A100 80GB? never guess
        ("NVIDIA L40", "unknown model"),  # not an L40S
        ("NVIDIA L4T", "unknown model"),
        ("NVIDIA GeForce RTX 3090 Ti", "unknown model"),
        ("NVIDIA H800", "unknown model"),
        ("NVIDIA GH200 480GB", "unknown model"),
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "MIG instance"),
        ("", "name is unknown"),
        (None, "name is unknown"),
    ],
)
def test_names_without_a_sure_match_are_unknown(
    table: PeakTable, name: str | None, words: str
) -> None:
    match = table.match(name)
    assert match.row is None
    assert match.reason is not None
    assert words in match.reason
    assert match.describe() == {"model": None, "reason": match.reason}


def test_a_compute_capability_that_disagrees_means_no_match(table: PeakTable) -> None:
    assert table.match("NVIDIA H100 80GB HBM3", "9.0").row is not None
    match = table.match("NVIDIA H100 80GB HBM3", "8.0")
    assert match.row is None
    assert "compute capability 8.0, not 9.0" in (match.reason or "")


def test_every_row_cites_a_source_and_no_two_rows_claim_a_name(table: PeakTable) -> None:
    for row in table.rows:
        assert row.source.strip(), row.model
        assert row.patterns, row.model
    names = [normalize_name(r.model) for r in table.rows]
    for name in names:
        claims = [r.model for r in table.rows if any(p.fullmatch(name) for p in r.patterns)]
        assert len(claims) <= 1, (name, claims)


def test_the_h100_sxm_row_holds_the_datasheet_figures_in_base_units(table: PeakTable) -> None:
    row = table.match("NVIDIA H100 80GB HBM3").row
    assert row is not None
    assert row.peak("matmul_bf16") == pytest.approx(989.5e12)
    assert row.peak("matmul_fp16") == pytest.approx(989.5e12)
    assert row.peak("matmul_tf32") == pytest.approx(494.5e12)
    assert row.peak("matmul_fp8") == pytest.approx(1979e12)
    assert row.peak("matmul_fp32") == pytest.approx(67e12)
    assert row.peak("memory_copy") == pytest.approx(3350e9)
    # PCIe Gen5 x16, one direction: 32 GT/s x 16 lanes x 128/130 / 8.
    assert row.peak("h2d_pinned") == pytest.approx(32e9 * 16 * 128 / 130 / 8, rel=1e-3)
    assert row.peak("launch_latency") is None
    assert row.pcie_gen == 5


def test_conflicting_sources_give_no_peak_rather_than_a_guess(table: PeakTable) -> None:
    b200 = table.match("NVIDIA B200").row
    assert b200 is not None
    assert b200.peak("memory_copy") is None
    assert b200.peak("matmul_bf16") == pytest.approx(2250e12)
    assert "conflict" in b200.source


def record(measurement_id: str, value: float | None) -> dict[str, object]:
    spec = MEASUREMENTS[measurement_id]
    return {"id": spec.id, "unit": spec.unit, "value": value}


@pytest.mark.parametrize("measurement_id", sorted(H100_REFERENCE))
def test_the_reference_h100_figures_are_not_flagged(table: PeakTable, measurement_id: str) -> None:
    row = table.match("NVIDIA H100 80GB HBM3").row
    judged = table.annotate(record(measurement_id, H100_REFERENCE[measurement_id]), row)
    assert judged["flag"] is None
    assert 75 <= judged["percent_of_peak"] <= 95
    # The typical fraction is what the reference reached, to within 2%.
    assert judged["expected"] == pytest.approx(H100_REFERENCE[measurement_id], rel=0.02)


def test_a_figure_far_below_what_the_model_reaches_is_flagged(table: PeakTable) -> None:
    row = table.match("NVIDIA H100 80GB HBM3").row
    assert row is not None
    expected = row.typical["matmul_bf16"] * 989.5e12
    just_below = table.annotate(record("matmul_bf16", FLAG_RATIO * expected * 0.99), row)
    just_above = table.annotate(record("matmul_bf16", FLAG_RATIO * expected * 1.01), row)
    assert just_below["flag"] == "below_expected"
    assert just_above["flag"] is None
    # A PCIe link trained at Gen3 shows up on the host transfers.
    gen3 = table.annotate(record("h2d_pinned", 12.5e9), row)
    assert gen3["flag"] == "below_expected"
    assert gen3["percent_of_peak"] == pytest.approx(19.84, abs=0.01)


def test_figures_without_a_typical_fraction_or_peak_are_never_flagged(table: PeakTable) -> None:
    row = table.match("NVIDIA H100 80GB HBM3").row
    fp8 = table.annotate(record("matmul_fp8", 1e12), row)
    assert fp8["percent_of_peak"] == pytest.approx(0.05, abs=0.01)
    assert fp8["flag"] is None
    pageable = table.annotate(record("h2d_pageable", 1e9), row)
    assert pageable["flag"] is None
    unknown = table.annotate(record("matmul_bf16", 1e12), None)
    assert unknown == {**unknown, "peak": None, "percent_of_peak": None, "flag": None}
    missing = table.annotate(record("matmul_bf16", None), row)
    assert missing["percent_of_peak"] is None


def test_names_are_normalized_for_matching() -> None:
    assert normalize_name("Tesla V100-SXM2-16GB") == "V100 SXM2 16GB"
    assert normalize_name("NVIDIA  A100_PCIE/40GB") == "A100 PCIE 40GB"
    assert re.fullmatch(r"[A-Z0-9 .]*", normalize_name("NVIDIA GeForce RTX 4090"))
