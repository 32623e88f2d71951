"""Reference pages generated from the code are committed up to date.

docs/metric-fields.md comes from the GPU field table (``gpu-devbox metrics --fields --markdown``);
a test here fails, naming the command that regenerates the page, when someone changes the source
and not the page.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpu_devbox.cli.metrics import fields_markdown
from gpu_devbox.gpus import fields

DOCS = Path(__file__).resolve().parents[1] / "docs"


def gpu_devbox(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("gpu-devbox")
    assert exe, "the gpu-devbox command is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_metric_fields_md_is_what_the_command_prints() -> None:
    result = gpu_devbox("metrics", "--fields", "--markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout == fields_markdown()
    committed = (DOCS / "metric-fields.md").read_text(encoding="utf-8")
    assert committed == result.stdout, (
        "docs/metric-fields.md is stale: run "
        "gpu-devbox metrics --fields --markdown > docs/metric-fields.md"
    )


def test_metric_fields_md_names_every_field_and_prometheus_metric() -> None:
    page = (DOCS / "metric-fields.md").read_text(encoding="utf-8")
    for f in fields.FIELDS:
        assert f"| `{f.path}` | {f.unit} |" in page
        if f.prometheus is not None:
            assert f"`gpu_devbox_{f.prometheus.name}" in page
        if f.dcgm is not None:
            assert f"`{f.dcgm.name}`" in page


def test_a_changed_field_makes_the_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    before = fields_markdown()
    changed = (dataclasses.replace(fields.FIELDS[0], unit="permille"), *fields.FIELDS[1:])
    monkeypatch.setattr(fields, "FIELDS", changed)
    assert fields_markdown() != before


def test_fields_as_json_and_as_a_table() -> None:
    result = gpu_devbox("metrics", "--fields", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [f["field"] for f in listed] == [f.path for f in fields.FIELDS]
    energy = next(f for f in listed if f["field"] == "energy.total")
    assert energy["unit"] == "J"
    assert energy["cadence"] == "slow"
    assert energy["prometheus"] == "energy_joules"
    assert energy["prometheus_type"] == "counter"
    table = gpu_devbox("metrics", "--fields")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["FIELD", "UNIT", "CADENCE", "CHARTED"]
    assert len(table.stdout.splitlines()) == len(fields.FIELDS) + 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--markdown"], "--markdown lists the fields: use it with --fields"),
        (
            ["--fields", "--watch", "1"],
            "--fields takes either --json or --markdown, and no --watch",
        ),
        (
            ["--fields", "--json", "--markdown"],
            "--fields takes either --json or --markdown, and no --watch",
        ),
    ],
)
def test_misused_options_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    result = gpu_devbox("metrics", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"gpu-devbox metrics: error: {words}"]
