"""The shipped OpenAPI document and its generated part.

``openapi.json`` (next to this module) is written by hand, except the schemas of the GPU
documents, ``Gpu`` and ``HistoryGpu``, which are generated from the field table
(:mod:`gpu_devbox.gpus.fields`, through :func:`gpu_devbox.gpus.payload.schemas`). After changing
the table, regenerate them (a test fails until the committed document is up to date)::

    python -m gpu_devbox.server.openapi            # rewrite them in openapi.json
    python -m gpu_devbox.server.openapi --check    # exit status 1 when they are stale

Then regenerate the Lab extension's TypeScript types from the document: ``jlpm build:tokens``
in ``labextension/``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

from gpu_devbox.gpus import payload

#: The document in the source tree (and in the installed package).
PATH = pathlib.Path(__file__).with_name("openapi.json")


def render(document: dict[str, Any]) -> str:
    """The document as the committed file spells it (one-space indent, ASCII escapes)."""
    return json.dumps(document, indent=1) + "\n"


def regenerated(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its generated schemas made anew (hand-written parts kept as they are)."""
    schemas = dict(document["components"]["schemas"])
    schemas.update(payload.schemas())
    return {**document, "components": {**document["components"], "schemas": schemas}}


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated schemas of ``--path`` (or, with ``--check``, say they are stale)."""
    parser = argparse.ArgumentParser(
        prog="python -m gpu_devbox.server.openapi",
        description="Regenerate the GPU schemas of openapi.json from the field table.",
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    parser.add_argument("--path", type=pathlib.Path, default=PATH, help="the document")
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    fresh = render(regenerated(json.loads(current)))
    if fresh == current:
        return 0
    if args.check:
        print(
            f"{args.path}: the GPU schemas are stale; run python -m gpu_devbox.server.openapi",
            file=sys.stderr,
        )
        return 1
    args.path.write_text(fresh, encoding="utf-8")
    print(f"{args.path}: regenerated the GPU schemas", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
