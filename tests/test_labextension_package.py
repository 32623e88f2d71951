"""The Lab extension's package metadata agrees with the Python package that ships it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

import gpu_devbox

ROOT = Path(__file__).resolve().parent.parent
LABEXT = ROOT / "labextension"


def _package_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((LABEXT / "package.json").read_text())
    return data


def test_labextension_paths_match_the_build_output() -> None:
    # `jupyter labextension develop` links src -> share/jupyter/labextensions/<dest>.
    package = _package_json()
    (path,) = gpu_devbox._jupyter_labextension_paths()
    assert path["dest"] == package["name"] == "gpu-devbox"
    built = (LABEXT / package["jupyterlab"]["outputDir"]).resolve()
    assert built == (ROOT / "gpu_devbox" / path["src"]).resolve()


def test_install_json_names_the_python_package() -> None:
    install = json.loads((LABEXT / "install.json").read_text())
    assert install["packageManager"] == "python"
    assert install["packageName"] == "gpu-devbox"


def test_settings_schema_is_valid_and_its_defaults_validate() -> None:
    schema = json.loads((LABEXT / "schema" / "plugin.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = {name: prop["default"] for name, prop in schema["properties"].items()}
    jsonschema.validate(defaults, schema)
    # A typo'd setting must be refused, not silently ignored.
    bad = {**defaults, "refreshIntervall": 2}
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(bad))
    assert any("refreshIntervall" in error.message for error in errors)
