"""The driver/CUDA compatibility decision, one row per fact it rests on (cuda-facts §1)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from gpu_devbox.cuda import tables
from gpu_devbox.cuda.compat import (
    Mechanism,
    compat_active,
    compat_branches,
    driver_runs_cuda,
    max_cuda_for_driver,
    min_driver_for_cuda,
    mvc_floor,
)
from gpu_devbox.cuda.versions import parse_cuda, parse_date, parse_driver


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    driver: str
    cuda: str
    expect: Mechanism
    fact: str
    datacenter: bool = False
    compat_loaded: bool = False
    driver_cuda: str | None = None
    compat_cuda: str | None = None
    min_driver: str | None = None
    detail_has: str = ""


NATIVE, MVC, FC = Mechanism.NATIVE, Mechanism.MINOR_VERSION, Mechanism.FORWARD_COMPAT
NO, UNKNOWN = Mechanism.UNSUPPORTED, Mechanism.UNKNOWN

CASES = [
    Case(
        "r580-cuda13.0.2",
        "580.159.04",
        "13.0.2",
        NATIVE,
        "§1.1 13.0 GA >= 580.65.06",
        min_driver="580.65.06",
    ),
    Case(
        "r580-runs-older-12.8",
        "580.159.04",
        "12.8",
        NATIVE,
        "§1.2 newer drivers always run older toolkits (backward compatibility)",
    ),
    Case(
        "ga-driver-runs-update",
        "570.26",
        "12.8.1",
        NATIVE,
        "§1.1 12.8 GA >= 570.26: any driver at the minor's GA minimum reports CUDA 12.8",
        min_driver="570.26",
    ),
    Case(
        "r615-cuda13.4-by-branch",
        "615.20.01",
        "13.4",
        NATIVE,
        "§1.4 R615 max CUDA 13.4 (13.4's own minimum is [U])",
    ),
    Case(
        "r610-cuda13.3-secondary",
        "610.43.02",
        "13.3.1",
        NATIVE,
        "§1.1 13.3 >= 610.43.02 [S]",
        detail_has="13.3",
    ),
    Case(
        "nvml-extends-unknown-branch",
        "616.5",
        "13.4",
        NATIVE,
        "§6 nvmlSystemGetCudaDriverVersion_v2 reports 13.4; tables lack R616",
        driver_cuda="13.4",
    ),
    Case(
        "r580-cuda13.2-mvc",
        "580.159.04",
        "13.2",
        MVC,
        "§1.2 13.x MVC floor 580.65.06",
        min_driver="595.45.04",
        detail_has="SASS",
    ),
    Case("r535-cuda12.8-mvc", "535.104.05", "12.8", MVC, "§1.2 12.x MVC floor 525.60.13"),
    Case("r470-cuda11.8-mvc", "470.57.02", "11.8", MVC, "§1.2 11.x MVC floor 450.80.02"),
    Case(
        "r580-cuda13.4-mvc-min-unknown",
        "580.159.04",
        "13.4.1",
        MVC,
        "§1.1 13.4 minimum [U]; §1.2 13.x floor 580",
        detail_has="do not know",
    ),
    Case(
        "below-12-floor-by-patch",
        "525.60.12",
        "12.0",
        NO,
        "§1.2 12.x floor 525.60.13",
        min_driver="525.60.13",
        detail_has="525.60.13",
    ),
    Case(
        "r570-cuda13.0-cross-major",
        "570.124.06",
        "13.0",
        NO,
        "§1.2 MVC only within a major line; 13.0 GA >= 580.65.06",
        min_driver="580.65.06",
    ),
    Case(
        "r450-before-11-floor",
        "450.51.05",
        "11.8",
        NO,
        "§1.2 11.x floor 450.80.02",
        detail_has="520.61.05 natively or 450.80.02",
    ),
    Case(
        "rc-row-is-not-a-minimum",
        "450.36.06",
        "11.0",
        NO,
        "§1.1 11.0.1 RC 450.36.06 is a prerelease; 11.0.2 GA >= 450.51.05",
        min_driver="450.51.05",
    ),
    Case(
        "r535-cuda13.0-fc",
        "535.104.05",
        "13.0",
        FC,
        "§1.3 cuda-compat-13-0 runs on R535",
        datacenter=True,
        compat_loaded=True,
    ),
    Case(
        "r580-cuda13.2-fc-beats-mvc",
        "580.159.04",
        "13.2",
        FC,
        "§1.3 cuda-compat-13-2 runs on 535 ... 590",
        datacenter=True,
        compat_loaded=True,
    ),
    Case(
        "nvml-shows-compat-loaded",
        "580.65.06",
        "13.2",
        FC,
        "§6 _v2 reflects a loaded compat libcuda; 13.2 needs 595.45.04 natively",
        datacenter=True,
        driver_cuda="13.2",
    ),
    Case(
        "newer-compat-package",
        "535.104.05",
        "12.8",
        FC,
        "§1.3 cuda-compat-12-9 runs on R535",
        datacenter=True,
        compat_loaded=True,
        compat_cuda="12.9",
    ),
    Case(
        "fc-not-on-geforce",
        "535.104.05",
        "13.0",
        NO,
        "§1.3 forward compatibility only on data-center GPUs (error 804)",
        compat_loaded=True,
        detail_has="804",
    ),
    Case(
        "fc-branch-not-in-matrix",
        "550.54.15",
        "13.0",
        NO,
        "§1.3 cuda-compat-13-0 supports R535, R570 only (R550 is EOL)",
        datacenter=True,
        compat_loaded=True,
        detail_has="R535, R570",
    ),
    Case(
        "fc-needs-loaded-libs",
        "535.104.05",
        "13.0",
        NO,
        "§1.3 the package does not configure the loader",
        datacenter=True,
    ),
    Case(
        "fc-older-package",
        "535.104.05",
        "13.0",
        NO,
        "§1.3 cuda-compat-X-Y is named after the highest toolkit it supports",
        datacenter=True,
        compat_loaded=True,
        compat_cuda="12.9",
        detail_has="older",
    ),
    Case(
        "major-only-newer-driver",
        "580.159.04",
        "12",
        NATIVE,
        "§1.2 a 13.x driver runs every 12.x toolkit",
    ),
    Case(
        "major-only-same-major",
        "570.124.06",
        "12",
        MVC,
        "§1.2 12.x floor 525.60.13; the build's minor is unknown",
    ),
    Case("major-only-too-old", "515.48.07", "12", NO, "§1.2 12.x floor 525.60.13"),
    Case(
        "cuda12.7-never-released",
        "565.57.01",
        "12.7",
        UNKNOWN,
        "§1.1 CUDA 12.7 never released [S]",
        detail_has="never released",
    ),
    Case(
        "cuda14-not-in-tables",
        "615.20.01",
        "14.0",
        UNKNOWN,
        "tables end at 13.4",
        detail_has="not in the tables",
    ),
    Case("cuda10-no-mvc", "440.33.01", "10.2", UNKNOWN, "§1.2 10.x and older have no MVC"),
    Case("unreadable-driver", "N/A", "12.8", UNKNOWN, "never guess", detail_has="not an NVIDIA"),
    Case("unreadable-cuda", "580.159.04", "cuda", UNKNOWN, "never guess"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.id}[{c.fact}]" for c in CASES])
def test_driver_runs_cuda(case: Case) -> None:
    verdict = driver_runs_cuda(
        case.driver,
        case.cuda,
        datacenter=case.datacenter,
        compat_loaded=case.compat_loaded,
        driver_cuda=case.driver_cuda,
        compat_cuda=case.compat_cuda,
    )
    assert verdict.mechanism is case.expect, verdict.detail
    assert verdict.ok is (case.expect in (NATIVE, MVC, FC))
    assert verdict.ptx_jit is (case.expect in (NATIVE, FC))
    if case.min_driver is not None:
        assert verdict.min_driver == case.min_driver
    assert case.detail_has in verdict.detail
    if case.expect is not UNKNOWN:
        assert "<https://" in verdict.source  # every decision cites a table row
    assert verdict.as_dict()["mechanism"] == case.expect.value


def test_unsupported_names_the_driver_needed() -> None:
    verdict = driver_runs_cuda("570.124.06", "13.0")
    assert verdict.detail == (
        "Driver 570.124.06 is too old for CUDA 13.0: it needs driver 580.65.06 or newer."
    )
    assert (verdict.min_driver, verdict.mvc_floor, verdict.driver_max_cuda) == (
        "580.65.06",
        "580.65.06",
        "12.8",
    )


@pytest.mark.parametrize(
    ("driver", "expected"),
    [
        ("580.159.04", "13.0"),  # §1.5 what the H100 host reports
        ("575.57.08", "12.9"),
        ("570.26", "12.8"),
        ("565.57.01", "12.6"),  # 12.7 never released; R565 is not in the branch table
        ("535.104.05", "12.2"),
        ("610.43.02", "13.3"),
        ("615.1", "13.4"),  # §1.4 branch table
        ("440.33.01", None),  # older than every row
        ("not-a-driver", None),
    ],
)
def test_max_cuda_for_driver(driver: str, expected: str | None) -> None:
    assert max_cuda_for_driver(driver) == expected


def test_small_lookups() -> None:
    assert min_driver_for_cuda("12.8.1") == "570.26"
    assert min_driver_for_cuda("13.3") == "610.43.02"
    assert min_driver_for_cuda("13.4") is None  # [U]: never guessed
    assert min_driver_for_cuda("12") is None
    assert mvc_floor("13.2") == "580.65.06"
    assert mvc_floor("10.2") is None
    assert compat_branches("13.3") == (535, 570, 580, 590, 595)
    assert compat_branches("12.2") is None
    assert compat_active("580.65.06", "13.2") is True
    assert compat_active("580.159.04", "13.0") is False
    assert compat_active("565.57.01", "12.7") is False  # R565 really reports 12.7
    assert compat_active("615.1", "13.4") is False


@pytest.mark.parametrize("name", tables.TABLE_NAMES)
def test_every_row_cites_a_source_and_is_dated(name: str) -> None:
    table = tables.load(name)
    assert parse_date(table.as_of) is not None
    assert parse_date(table.as_of) <= datetime.date.today()
    for source in table.sources.values():
        assert source["url"].startswith("https://")
        assert source["quality"] in tables.QUALITIES
    for row in table.rows:
        assert row["source"] in table.sources, row
        assert row.get("quality", table.source_of(row)["quality"]) in tables.QUALITIES
        assert table.cite(row).endswith("]")


def test_toolkit_rows_parse_and_drivers_rise_with_releases() -> None:
    rows = [
        r for r in tables.load("toolkit_drivers").rows if r["linux"] and not r.get("prerelease")
    ]
    parsed = sorted((parse_cuda(r["cuda"]), parse_driver(r["linux"])) for r in rows)
    assert all(c is not None and d is not None for c, d in parsed)
    drivers = [d for _, d in parsed]
    assert drivers == sorted(drivers), "a newer toolkit never ships an older minimum driver"
