"""How much JavaScript the JupyterLab extension ships, gzipped (budget: 60 KB in all).

Measures every ``.js`` file of a built labextension: a directory (the build output,
``gpu_devbox/labextension``, or an installed ``share/jupyter/labextensions/gpu-devbox``) or a
wheel. Measure a production build, which is what a wheel ships::

    (cd labextension && jlpm clean:all && jlpm build:prod)
    python benchmarks/labext_bundle_size.py gpu_devbox/labextension
    python benchmarks/labext_bundle_size.py dist/gpu_devbox-*.whl

Every file counts, whether or not JupyterLab loads it on start-up; source maps are not
JavaScript and are only fetched by developer tools, so they are listed apart. Exit status 1 when
the total is over the budget, 2 when there is nothing to measure.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

BUDGET_BYTES = 60 * 1000  # "≤ 60 KB gzipped"
WHEEL_PREFIX = "share/jupyter/labextensions/gpu-devbox/"


def files_in(target: Path) -> Iterator[tuple[str, bytes]]:
    """(name, content) of every file of the labextension in a directory or a wheel."""
    if target.is_dir():
        for path in sorted(target.rglob("*")):
            if path.is_file():
                yield str(path.relative_to(target)), path.read_bytes()
        return
    with zipfile.ZipFile(target) as wheel:
        for name in sorted(wheel.namelist()):
            _, _, inner = name.partition(".data/data/")
            if inner.startswith(WHEEL_PREFIX) and not name.endswith("/"):
                yield inner[len(WHEEL_PREFIX) :], wheel.read(name)


def gzipped(data: bytes) -> int:
    """Size after gzip at the level web servers typically use for static files (6)."""
    return len(gzip.compress(data, compresslevel=6, mtime=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path, help="labextension directory or wheel")
    args = parser.parse_args(argv)
    if not args.target.exists():
        print(f"labext_bundle_size: {args.target} does not exist", file=sys.stderr)
        return 2

    rows = [(name, len(data), gzipped(data)) for name, data in files_in(args.target)]
    scripts = [row for row in rows if row[0].endswith(".js")]
    maps = [row for row in rows if row[0].endswith(".js.map")]
    if not scripts:
        print(f"labext_bundle_size: no .js files in {args.target}", file=sys.stderr)
        return 2
    if maps:
        print("note: source maps present: this looks like a development build", file=sys.stderr)

    width = max(len(name) for name, _, _ in scripts)
    print(f"{'file':<{width}}  {'raw':>9}  {'gzip':>9}")
    for name, raw, packed in scripts:
        print(f"{name:<{width}}  {raw:>9,}  {packed:>9,}")
    raw_total = sum(raw for _, raw, _ in scripts)
    gz_total = sum(packed for _, _, packed in scripts)
    print(f"{'total JavaScript':<{width}}  {raw_total:>9,}  {gz_total:>9,}")
    verdict = "within" if gz_total <= BUDGET_BYTES else "OVER"
    print(
        f"budget: {BUDGET_BYTES:,} bytes gzipped: {verdict} ({100 * gz_total / BUDGET_BYTES:.0f}%)"
    )
    if maps:
        print(f"source maps (not counted): {len(maps)} files, {sum(r for _, r, _ in maps):,} bytes")
    return 0 if gz_total <= BUDGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
