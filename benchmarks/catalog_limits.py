"""How fast a catalog file is read or refused, and how much memory that takes (issue 10, item 17).

    python benchmarks/catalog_limits.py

Prints, for each file, the time ``load_catalog`` takes to read or refuse it (best of 3) and the
peak of Python allocations meanwhile (tracemalloc), and the ratio of the refusals to reading
the shipped catalog: an alias bomb, a 50 MB file and a FIFO against the few KB that every hub
reads. Before the limits, the 300-byte bomb took 10 s and 150 MiB and the FIFO never returned.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from gpu_devbox.catalog import CatalogError, default_catalog_text, load_catalog


def bomb(levels: int = 9, width: int = 9) -> str:
    first = "a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"
    rest = [
        f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]"
        for level in range(1, levels)
    ]
    return "\n".join([first, *rest]) + "\n"


def largest_valid() -> str:
    """A catalog near the 20,000-value limit whose duplicate checks all have long lists."""
    images = "".join(f"  - {{name: i{i}, reference: r}}\n" for i in range(2000))
    names = "".join(f"      - i{i}\n" for i in range(2000))
    volumes = "".join(f"      - {{name: v{i}, mount: /m{i}, scratch: 1Gi}}\n" for i in range(800))
    return (
        f"version: 1\nimages:\n{images}profiles:\n  - slug: p\n    display_name: P\n"
        f"    images:\n{names}    volumes:\n{volumes}"
    )


def load(path: Path) -> str:
    try:
        load_catalog(path)
    except CatalogError as exc:
        return "refused: " + str(exc).split(": ", 1)[1][:60]
    return "read"


def measure(path: Path) -> tuple[float, int, str]:
    """Best-of-3 seconds, then (in a run of its own: tracing slows it) the peak traced bytes."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        outcome = load(path)
        best = min(best, time.perf_counter() - started)
    tracemalloc.start()
    load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak, outcome


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shipped = f"shipped catalog ({len(default_catalog_text()) / 1000:.1f} KB)"
        files: dict[str, Callable[[Path], None]] = {
            shipped: lambda p: p.write_text(default_catalog_text()),
            "largest valid (20k values)": lambda p: p.write_text(largest_valid()),
            "alias bomb (342 bytes)": lambda p: p.write_text(bomb()),
            "50 MB file": lambda p: p.write_bytes(b"# padding\n" * 5_000_000),
            "FIFO": lambda p: os.mkfifo(p),
        }
        results = {}
        for i, (name, make) in enumerate(files.items()):
            path = folder / f"catalog-{i}.yaml"
            make(path)
            results[name] = measure(path)
        base = results[shipped][0]
        print(f"Python {sys.version.split()[0]}; best of 3 each")
        for name, (seconds, peak, outcome) in results.items():
            print(
                f"{name:28} {seconds * 1000:8.2f} ms  {seconds / base:7.3f}x shipped  "
                f"peak {peak / 1024**2:6.2f} MiB  {outcome}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
