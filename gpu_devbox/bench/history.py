"""Benchmark history: one JSON document per line in Jupyter's data directory.

``<jupyter_data_dir>/gpu_devbox/benchmarks.jsonl`` by default. Appends are safe between
processes (the server and ``gpu-devbox bench`` may write at the same time): each record is one
``write`` of a whole line to a file opened for appending, under an exclusive ``flock``. Reading
skips lines that do not parse (a torn write from a crashed process, an edit by hand) and counts
them, so one bad line never hides the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import threading
from collections.abc import Iterator
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: appends stay line-atomic, unlocked
    fcntl = None  # type: ignore[assignment]

#: Version of the record layout (stored in every line as ``schema``).
SCHEMA = 1
FILENAME = "benchmarks.jsonl"


def default_path() -> pathlib.Path:
    """``<jupyter_data_dir>/gpu_devbox/benchmarks.jsonl`` (honours ``JUPYTER_DATA_DIR``)."""
    from jupyter_core.paths import jupyter_data_dir

    return pathlib.Path(jupyter_data_dir()) / "gpu_devbox" / FILENAME


@dataclasses.dataclass(frozen=True)
class Listing:
    """What :meth:`History.read` found: the records, newest first, and the lines skipped."""

    runs: list[dict[str, Any]]
    skipped_lines: int


class History:
    """The history file of one user."""

    def __init__(self, path: pathlib.Path | str | None = None) -> None:
        self.path = pathlib.Path(path) if path else default_path()
        self._lock = threading.Lock()

    def append(self, run: dict[str, Any]) -> None:
        """Add one finished run.

        Raises:
            OSError: the directory or file cannot be written.
        """
        line = json.dumps({"schema": SCHEMA, **run}, allow_nan=False, separators=(",", ":"))
        data = (line + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self._locked(os.O_WRONLY | os.O_APPEND | os.O_CREAT) as fd:
            # A previous writer that died mid-line left no newline: start on a fresh line so
            # that only its torn record is lost, never this one.
            if os.fstat(fd).st_size and not self._ends_with_newline():
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]

    def read(self, limit: int | None = None) -> Listing:
        """The runs recorded, newest first (at most ``limit``); unreadable lines are skipped."""
        runs: list[dict[str, Any]] = []
        skipped = 0
        for line in self._lines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                skipped += 1
                continue
            runs.append(record)
        runs.reverse()
        return Listing(runs if limit is None else runs[:limit], skipped)

    def find(self, run_id: str) -> dict[str, Any] | None:
        """The recorded run with this id, if any."""
        found = None
        for run in self.read().runs:
            if run["id"] == run_id:
                found = run
                break
        return found

    def _lines(self) -> Iterator[str]:
        try:
            with self._locked(os.O_RDONLY) as fd, os.fdopen(os.dup(fd), "rb") as handle:
                for raw in handle:
                    yield raw.decode("utf-8", errors="replace")
        except FileNotFoundError:
            return

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    @contextlib.contextmanager
    def _locked(self, flags: int) -> Iterator[int]:
        fd = os.open(self.path, flags, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if flags & os.O_WRONLY else fcntl.LOCK_SH)
            yield fd
        finally:
            os.close(fd)
