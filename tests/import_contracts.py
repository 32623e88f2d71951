"""An import-linter contract type of the project's own: no module imports itself through others.

import-linter's ``acyclic_siblings`` finds circles between the children of a package, but not
one between a package's ``__init__`` and its own submodules (``backends/__init__.py`` importing
``torch_backend.py``, which imports ``backends``). This contract looks at every module, package
``__init__`` modules included, and every import, ``TYPE_CHECKING`` ones included (import-linter
builds its graph with them): any strongly connected set of two or more modules is a circle.

Configured in pyproject.toml (``[tool.importlinter]``), run by ``lint-imports``.
"""

from __future__ import annotations

from typing import Any

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


class AcyclicModulesContract(Contract):
    """No circle of imports among the modules of ``containers``."""

    containers = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        """Every circle among the containers' modules, each with the imports that close it."""
        containers: list[str] = self.containers  # type: ignore[assignment]
        modules = sorted(
            m for m in graph.modules if any(m == c or m.startswith(c + ".") for c in containers)
        )
        inside = set(modules)
        edges = {m: sorted(graph.find_modules_directly_imported_by(m) & inside) for m in modules}
        circles = [sorted(c) for c in strongly_connected(modules, edges) if len(c) > 1]
        described = [_describe(graph, circle, edges) for circle in sorted(circles)]
        return ContractCheck(kept=not described, metadata={"circles": described})

    def render_broken_contract(self, check: ContractCheck) -> None:
        """One paragraph a circle: its modules, then each import that ties them, with its line."""
        for circle in check.metadata["circles"]:
            output.print_error(f"A circle of {len(circle['modules'])} modules:")
            output.new_line()
            for importer, imported, line, text in circle["imports"]:
                output.indent_cursor()
                output.print(f"{importer} -> {imported} (l.{line}: {text})")
            output.new_line()


def _describe(graph: ImportGraph, circle: list[str], edges: dict[str, list[str]]) -> dict[str, Any]:
    members = set(circle)
    imports = []
    for importer in circle:
        for imported in edges[importer]:
            if imported in members:
                details = graph.get_import_details(importer=importer, imported=imported)
                first = details[0] if details else {"line_number": 0, "line_contents": "?"}
                imports.append(
                    (importer, imported, first["line_number"], first["line_contents"].strip())
                )
    return {"modules": circle, "imports": imports}


def strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, without recursion (import chains run deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components
