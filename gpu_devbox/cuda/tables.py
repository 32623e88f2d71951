"""The dated data tables behind the CUDA checks, shipped as JSON in ``gpu_devbox/cuda/data``.

Every table has an ``as_of`` date, a ``sources`` map (title, URL, quality) and ``rows`` that each
name their source and its quality: ``P`` primary (NVIDIA, PyTorch, CuPy or the project itself),
``S`` secondary (a third party quoting a primary source), ``U`` unverified, ``Proj`` a
projection from a published policy. Updating a fact means editing one row and its source.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
from collections.abc import Mapping
from typing import Any

#: The table files, by name (``<name>.json`` in the data folder).
TABLE_NAMES = (
    "toolkit_drivers",
    "minor_version",
    "forward_compat",
    "driver_branches",
    "architectures",
    "pytorch_wheels",
    "cupy_packages",
    "cuda_containers",
    "gpu_classes",
)

QUALITIES = ("P", "S", "U", "Proj")


@dataclasses.dataclass(frozen=True)
class Table:
    """One loaded data table."""

    name: str
    title: str
    as_of: str
    sources: Mapping[str, Mapping[str, Any]]
    rows: tuple[Mapping[str, Any], ...]
    document: Mapping[str, Any]

    def source_of(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """The source entry a row cites."""
        return self.sources[str(row["source"])]

    def cite(self, row: Mapping[str, Any]) -> str:
        """``"<title> <url> [P]"`` for a row: what the checks print as their source."""
        source = self.source_of(row)
        quality = row.get("quality", source.get("quality", "U"))
        return f"{source['title']} <{source['url']}> [{quality}]"


def package_text(*parts: str) -> str:
    """The text of a file shipped in ``gpu_devbox/cuda``."""
    resource = importlib.resources.files("gpu_devbox.cuda")
    for part in parts:
        resource = resource.joinpath(part)
    return resource.read_text(encoding="utf-8")


def data_text(filename: str) -> str:
    """The text of a file in the package's data folder."""
    return package_text("data", filename)


@functools.cache
def load(name: str) -> Table:
    """Load (once) the table ``name``.

    Raises:
        KeyError: no such table.
    """
    if name not in TABLE_NAMES:
        raise KeyError(f"no CUDA data table named {name!r}")
    document = json.loads(data_text(f"{name}.json"))
    return Table(
        name=name,
        title=str(document["title"]),
        as_of=str(document["as_of"]),
        sources=document["sources"],
        rows=tuple(document["rows"]),
        document=document,
    )


def as_of() -> dict[str, str]:
    """Each table's ``as_of`` date, by table name (reported with every checks document)."""
    return {name: load(name).as_of for name in TABLE_NAMES}
