"""The GPU schemas of the shipped openapi.json are generated from the field table, and kept so.

A stale document (someone changed the table and did not regenerate) fails here, with the command
that fixes it.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from gpu_devbox.gpus import fields, payload
from gpu_devbox.server import openapi
from tests.openapi import validate_component


def test_the_committed_document_is_up_to_date() -> None:
    committed = openapi.PATH.read_text(encoding="utf-8")
    fresh = openapi.render(openapi.regenerated(json.loads(committed)))
    assert fresh == committed, "openapi.json is stale: run python -m gpu_devbox.server.openapi"


def test_every_field_of_the_table_is_described_with_its_unit() -> None:
    gpu = json.loads(openapi.PATH.read_text())["components"]["schemas"]["Gpu"]
    for f in fields.FIELDS:
        schema = gpu["properties"][f.group]["properties"][f.key]
        assert schema["type"] == [f.type, "null"]
        assert schema["description"].endswith(f"Unit: {f.unit}.")


def test_the_check_fails_on_a_stale_document_and_the_rewrite_fixes_it(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(openapi.PATH.read_text())
    del document["components"]["schemas"]["Gpu"]["properties"]["temperature"]
    stale = tmp_path / "openapi.json"
    stale.write_text(openapi.render(document))
    assert openapi.main(["--check", "--path", str(stale)]) == 1
    assert "python -m gpu_devbox.server.openapi" in capsys.readouterr().err
    assert openapi.main(["--path", str(stale)]) == 0
    assert openapi.main(["--check", "--path", str(stale)]) == 0
    assert stale.read_text() == openapi.PATH.read_text()


def test_documents_built_from_the_table_validate_against_the_generated_schemas() -> None:
    # A GPU whose every value is null (lost) and a history entry: the schema and the builders
    # come from the same table.
    from gpu_devbox.gpus.errors import ReasonCode, reason_for
    from gpu_devbox.gpus.nvml import Device

    device = Device.unreadable(3, reason_for(ReasonCode.GPU_LOST))
    gpu = payload.unreadable_gpu(device, reason_for(ReasonCode.GPU_LOST))
    validate_component("Gpu", gpu)
    validate_component("HistoryGpu", payload.history_entry(gpu))
