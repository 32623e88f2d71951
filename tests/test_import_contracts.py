"""The project's own import-linter contract finds circles that acyclic_siblings cannot see."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import grimp
import pytest

from tests.import_contracts import AcyclicModulesContract, strongly_connected


@pytest.mark.parametrize(
    ("edges", "circles"),
    [
        pytest.param({"a": ["b"], "b": []}, [], id="a line"),
        pytest.param({"a": ["a"]}, [], id="a module importing itself is no circle"),
        pytest.param({"a": ["b"], "b": ["a"]}, [["a", "b"]], id="two"),
        pytest.param({"a": ["b"], "b": ["c"], "c": ["a"]}, [["a", "b", "c"]], id="three"),
        pytest.param(
            {"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c", "a"]},
            [["a", "b"], ["c", "d"]],
            id="two circles, one leading to the other",
        ),
        pytest.param(
            {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, [], id="a diamond is no circle"
        ),
    ],
)
def test_strongly_connected(edges: dict[str, list[str]], circles: list[list[str]]) -> None:
    found = [sorted(c) for c in strongly_connected(sorted(edges), edges) if len(c) > 1]
    assert sorted(found) == circles


def test_a_chain_as_deep_as_python_allows_needs_no_recursion() -> None:
    nodes = [f"m{i:05}" for i in range(20_000)]
    edges = {a: [b] for a, b in itertools.pairwise(nodes)}
    edges[nodes[-1]] = [nodes[0]]
    [circle] = strongly_connected(nodes, edges)
    assert len(circle) == len(nodes)


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.mark.parametrize(
    ("backend_imports", "kept"),
    [
        ("from circlepkg.backends.errors import Unavailable", True),
        ("from circlepkg.backends import Unavailable", False),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import circlepkg.backends",
            False,
        ),
    ],
    ids=["through a sibling module", "through the package", "type-only, through the package"],
)
def test_a_package_and_its_own_module_make_a_circle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend_imports: str, kept: bool
) -> None:
    write_package(
        tmp_path,
        {
            "circlepkg/__init__.py": "",
            "circlepkg/backends/__init__.py": """\
                from circlepkg.backends.errors import Unavailable

                def select():
                    from circlepkg.backends.torch_backend import Torch
                    return Torch()
            """,
            "circlepkg/backends/errors.py": "class Unavailable(Exception): ...\n",
            "circlepkg/backends/torch_backend.py": backend_imports + "\nclass Torch: ...\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("circlepkg", cache_dir=None)
    contract = AcyclicModulesContract(
        name="no circles", session_options={}, contract_options={"containers": ["circlepkg"]}
    )
    check = contract.check(graph, verbose=False)
    assert check.kept is kept
    if not kept:
        [circle] = check.metadata["circles"]
        assert circle["modules"] == ["circlepkg.backends", "circlepkg.backends.torch_backend"]
        lines = {(importer, line) for importer, _, line, _ in circle["imports"]}
        assert ("circlepkg.backends", 4) in lines
