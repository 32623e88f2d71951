"""`gpu-devbox images audit`: each nvidia/cuda base judged on a date, from the doctor's table."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpu_devbox.catalog import default_catalog, default_catalog_text, load_catalog
from gpu_devbox.cuda import lifecycle, tables
from gpu_devbox.cuda.versions import parse_cuda
from gpu_devbox.images import audit

EXE = shutil.which("gpu-devbox") or ""
day = datetime.date.fromisoformat


def on_cuda_12_6(tmp_path: Path) -> Path:
    """The default catalog with its CUDA 12 line on the 12.6.3 base (end of life in June 2026)."""
    text = (
        default_catalog_text()
        .replace(
            "nvidia/cuda:12.9.1-runtime-ubuntu24.04",
            "nvidia/cuda:12.6.3-runtime-ubuntu24.04",
        )
        .replace('cuda: "12.9"', 'cuda: "12.6"')
        .replace("cuda-12.9", "cuda-12.6")
    )
    path = tmp_path / "on-12.6.yaml"
    path.write_text(text)
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert EXE, "the gpu-devbox command is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    return subprocess.run(
        [EXE, "images", "audit", *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


# The facts these cases rest on, all in gpu_devbox/cuda/data/cuda_containers.json:
# 12.6 images are anchored to R535 (EOL June 2026), deleted six months later [Proj];
# 13.0 shipped with R580 (EOL June 2028) [Proj]; 12.6.2 is EOL since 2024-12-03 and was
# deleted 2025-06-03 [P, container_tags.xlsx]; 13.0.2 is the latest 13.0 release [P];
# 11.x is EOL since CUDA 13 shipped (Aug 2025) [Proj]; 12.9 stays supported until CUDA 14.
CASES = [
    ("12.6.3", "2026-01-15", "supported", "2026-06-01", "2026-12-01"),
    ("12.6.3", "2026-04-01", "expiring", "2026-06-01", "2026-12-01"),
    ("12.6.3", "2026-06-01", "eol", "2026-06-01", "2026-12-01"),
    ("12.6.3", "2026-11-22", "eol", "2026-06-01", "2026-12-01"),
    ("12.6.3", "2026-12-01", "deleted", "2026-06-01", "2026-12-01"),
    ("12.6.2", "2024-06-01", "not-latest", "2026-06-01", "2026-12-01"),
    ("12.6.2", "2025-01-10", "eol", "2024-12-03", "2025-06-03"),
    ("12.6.2", "2025-06-03", "deleted", "2024-12-03", "2025-06-03"),
    ("13.0.2", "2026-11-22", "supported", "2028-06-01", "2028-12-01"),
    ("13.0.1", "2026-11-22", "not-latest", "2028-06-01", "2028-12-01"),
    ("13.0.2", "2028-04-01", "expiring", "2028-06-01", "2028-12-01"),
    ("12.9.1", "2026-11-22", "supported", None, None),
    ("11.8.0", "2025-10-01", "eol", "2025-08-01", "2026-02-01"),
    ("11.8.0", "2026-11-22", "deleted", "2025-08-01", "2026-02-01"),
    ("12.8.1", "2026-03-01", "eol", "2026-02-01", "2026-08-01"),
    ("14.0.0", "2026-11-22", "unknown", None, None),
]


@pytest.mark.parametrize(("release", "today", "state", "eol", "deletion"), CASES)
def test_status_on(
    release: str, today: str, state: str, eol: str | None, deletion: str | None
) -> None:
    got = lifecycle.status_on(release, day(today))
    assert got.state == state
    assert got.eol == (day(eol) if eol else None)
    assert got.deletion == (day(deletion) if deletion else None)


def test_projected_dates_are_flagged() -> None:
    assert lifecycle.status_on("12.6.3", day("2026-11-22")).projected is True
    assert lifecycle.status_on("12.6.2", day("2025-01-10")).projected is False  # published
    assert lifecycle.status_on("13.0.1", day("2026-11-22")).latest == "13.0.2"


def releases_the_tables_know() -> list[str]:
    table = tables.load("cuda_containers")
    found = {entry["release"] for entry in table.document["latest"]}
    found |= {row["cuda"] for row in table.rows if len(parse_cuda(row["cuda"]) or ()) == 3}
    # One release below each latest one (not the latest point release).
    for entry in table.document["latest"]:
        major, minor, patch = parse_cuda(entry["release"]) or (0, 0, 0)
        if patch:
            found.add(f"{major}.{minor}.{patch - 1}")
    return sorted(found, key=lambda r: parse_cuda(r) or ())


def test_the_audit_and_the_doctor_agree_on_every_release_and_month() -> None:
    """Same table, same reading: what the audit fails, the doctor warns about, and back."""
    expected = {
        "supported": "pass",
        "expiring": "pass",
        "not-latest": "warn",
        "eol": "warn",
        "deleted": "warn",
        "unknown": "skip",
    }
    months = [day(f"{y}-{m:02d}-15") for y in range(2024, 2030) for m in range(1, 13)]
    checked = 0
    for release in releases_the_tables_know():
        for today in months:
            state = lifecycle.status_on(release, today).state
            doctor = lifecycle.assess(release, "test", None, today).status
            assert doctor == expected[state], (release, today, state, doctor)
            checked += 1
    assert checked > 1000


def test_the_shipped_catalog_passes_its_own_audit_when_the_tables_were_written() -> None:
    as_of = day(tables.load("cuda_containers").as_of)
    statuses = {s.base: s for s in audit.audit(default_catalog(), as_of)}
    # The CPU image has no nvidia/cuda base; PyTorch's flavors build on the -base variant.
    assert {base: s.images for base, s in statuses.items()} == {
        "nvidia/cuda:12.9.1-runtime-ubuntu24.04": ("cuda12-base",),
        "nvidia/cuda:12.9.1-base-ubuntu24.04": ("cuda12-pytorch",),
        "nvidia/cuda:13.0.2-runtime-ubuntu24.04": ("cuda13-base",),
        "nvidia/cuda:13.0.2-base-ubuntu24.04": ("cuda13-pytorch", "cuda13-finetune"),
    }
    assert {s.state for s in statuses.values()} == {"supported"}


def test_a_catalog_on_an_end_of_life_base_fails(tmp_path: Path) -> None:
    as_of = day(tables.load("cuda_containers").as_of)
    catalog = load_catalog(on_cuda_12_6(tmp_path))
    statuses = {s.release: s for s in audit.audit(catalog, as_of)}
    assert set(statuses) == {"12.6.3", "13.0.2"}
    assert statuses["13.0.2"].state == "supported"
    # A CUDA 12.6 line is past its (projected) end of life: the audit says so, names the
    # deletion date and a supported release to move to.
    cuda12 = statuses["12.6.3"]
    assert cuda12.failed
    assert cuda12.projected
    assert cuda12.deletion == day("2026-12-01")
    assert "12.9.1" in cuda12.remedy
    assert "support-policy.md" in cuda12.source


def test_cli_fails_past_end_of_life_and_passes_before(tmp_path: Path) -> None:
    path = str(on_cuda_12_6(tmp_path))
    late = cli("--catalog", path, "--today", "2026-11-22")
    assert late.returncode == 1, late.stderr
    assert late.stderr == ""
    lines = late.stdout.splitlines()
    assert lines[0].startswith(f"nvidia/cuda bases of {path}")
    assert any(
        line.startswith("x nvidia/cuda:12.6.3-runtime-ubuntu24.04 (cuda12-base)")
        and "END OF LIFE since 2026-06-01; deletion due 2026-12-01" in line
        for line in lines
    )
    assert lines[-1] == "audit FAILED: 2 base(s) past end of life or deprecated"
    early = cli("--catalog", path, "--today", "2026-01-15")
    assert early.returncode == 0, early.stdout
    assert early.stdout.splitlines()[-1] == "audit passed: none past end of life"
    soon = cli("--catalog", path, "--today", "2026-04-01")
    assert soon.returncode == 0
    assert "! nvidia/cuda:12.6.3" in soon.stdout
    assert "supported, end of life soon until 2026-06-01" in soon.stdout
    quiet = cli("--catalog", path, "--today", "2026-04-01", "--warn-days", "30")
    assert "+ nvidia/cuda:12.6.3" in quiet.stdout


def test_the_shipped_catalog_fails_once_its_bases_reach_end_of_life() -> None:
    # 13.0 images follow R580 (EOL June 2028) [Proj]; CI starts failing on that day.
    assert cli("--today", "2028-05-31").returncode == 0
    late = cli("--today", "2028-06-01")
    assert late.returncode == 1
    assert "x nvidia/cuda:13.0.2-runtime-ubuntu24.04" in late.stdout
    assert "x nvidia/cuda:13.0.2-base-ubuntu24.04 (cuda13-pytorch, cuda13-finetune)" in late.stdout


def test_cli_json(tmp_path: Path) -> None:
    result = cli("--catalog", str(on_cuda_12_6(tmp_path)), "--today", "2026-12-02", "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["today"] == "2026-12-02"
    bases = {b["release"]: b for b in document["bases"]}
    assert bases["12.6.3"]["state"] == "deleted"
    assert bases["12.6.3"]["deletion"] == "2026-12-01"
    assert bases["12.6.3"]["failed"] is True
    assert bases["13.0.2"]["failed"] is False


def test_the_shipped_catalog_passes_today() -> None:
    result = cli("--today", "2026-11-22")
    assert result.returncode == 0, result.stdout
    assert "+ nvidia/cuda:12.9.1-runtime-ubuntu24.04" in result.stdout


def test_an_old_point_release_is_reported_but_does_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(default_catalog_text().replace("13.0.2-runtime", "13.0.1-runtime"))
    result = cli("--catalog", str(path), "--today", "2026-01-15")
    assert result.returncode == 0
    assert "! nvidia/cuda:13.0.1-runtime-ubuntu24.04" in result.stdout
    assert "! nvidia/cuda:13.0.1-base-ubuntu24.04" in result.stdout
    assert "not the latest point release; latest is 13.0.2" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--today", "22/11/2026"], "--today '22/11/2026' is not a date"),
        (["--warn-days", "-1"], "outside the allowed range"),
        (["--catalog", "/nonexistent.yaml"], "cannot read the catalog"),
    ],
)
def test_bad_input(args: list[str], words: str) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert words in result.stderr


# -- what the images say about themselves (--pull) and the table's age -----------------------------

NOTICE_OUTPUT = """
==========
== CUDA ==
==========

CUDA Version 12.9.1

********************************
** DEPRECATION NOTICE! **
********************************
THIS IMAGE IS DEPRECATED and is scheduled for DELETION.
    https://gitlab.com/nvidia/container-images/cuda/blob/master/doc/support-policy.md

WARNING: The NVIDIA Driver was not detected.
"""


def test_the_notice_is_read_from_what_an_image_prints() -> None:
    from gpu_devbox.images import pulled

    assert pulled.notice_lines(NOTICE_OUTPUT) == (
        "DEPRECATION NOTICE!",
        "THIS IMAGE IS DEPRECATED and is scheduled for DELETION.",
        "https://gitlab.com/nvidia/container-images/cuda/blob/master/doc/support-policy.md",
    )
    clean = NOTICE_OUTPUT.split("*****")[0]
    assert pulled.notice_lines(clean) == ()


def test_the_audit_warns_when_its_table_is_old() -> None:
    as_of = day(tables.load("cuda_containers").as_of)
    fresh = cli("--today", (as_of + datetime.timedelta(days=90)).isoformat())
    assert "warning" not in fresh.stderr
    old_day = as_of + datetime.timedelta(days=91)
    stale = cli("--today", old_day.isoformat(), "--json")
    assert stale.stderr.strip() == (
        f"warning: the audit's table is from {as_of.isoformat()}, 91 days before "
        f"{old_day.isoformat()} (more than 90): NVIDIA may have changed its dates since; "
        "update gpu-devbox, and run the audit with --pull to ask the images themselves"
    )
    assert json.loads(stale.stdout)["tables_stale"] is True
    assert stale.returncode == 0  # a warning, not a failure


def test_pull_without_a_container_runtime_is_one_line() -> None:
    result = cli("--pull", "--runtime", "no-such-container-tool")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "gpu-devbox images: error: --runtime 'no-such-container-tool': no such command"
    )


def test_a_base_that_cannot_be_pulled_fails_the_audit(tmp_path: Path) -> None:
    """A runtime that cannot pull (here: a stand-in that always fails, as an offline docker
    does) makes --pull fail, saying which image and why, never a pass."""
    fake = tmp_path / "offline-docker"
    fake.write_text("#!/bin/sh\necho 'Error: registry unreachable' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = cli("--pull", "--runtime", str(fake), "--today", "2026-11-22")
    assert result.returncode == 2, result.stdout
    assert "cannot pull it: Error: registry unreachable" in result.stdout
    assert result.stdout.splitlines()[-1] == "audit FAILED: 4 base(s) could not be inspected"
