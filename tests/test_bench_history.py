"""The benchmark history file: round trip, damaged lines, and appends from several processes."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from gpu_devbox.bench.history import FILENAME, History, default_path


def run(run_id: str, **extra: object) -> dict[str, object]:
    return {"id": run_id, "state": "succeeded", "devices": [], **extra}


def test_runs_come_back_newest_first_with_the_schema_version(tmp_path: pathlib.Path) -> None:
    history = History(tmp_path / "sub" / "dir" / FILENAME)
    for n in range(3):
        history.append(run(f"r{n}", environment={"backend": "torch", "versions": {"torch": "2"}}))
    listing = history.read()
    assert [r["id"] for r in listing.runs] == ["r2", "r1", "r0"]
    assert listing.skipped_lines == 0
    assert listing.runs[0]["schema"] == 1
    assert listing.runs[0]["environment"] == {"backend": "torch", "versions": {"torch": "2"}}
    assert [r["id"] for r in history.read(limit=2).runs] == ["r2", "r1"]
    assert history.find("r1") == {
        "schema": 1,
        **run("r1", environment=listing.runs[1]["environment"]),
    }
    assert history.find("nope") is None


def test_a_missing_file_is_an_empty_history(tmp_path: pathlib.Path) -> None:
    listing = History(tmp_path / FILENAME).read()
    assert listing.runs == []
    assert listing.skipped_lines == 0


def test_damaged_lines_are_skipped_and_counted_never_hiding_the_others(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / FILENAME
    history = History(path)
    history.append(run("good-1"))
    with path.open("a") as handle:
        handle.write("{this is not json\n")
        handle.write('"a string"\n')
        handle.write('{"no": "id"}\n')
        handle.write("\n")
        handle.write("\xff\xfe garbage\n")
    history.append(run("good-2"))
    # A writer that died mid-line leaves a torn record without a newline ...
    with path.open("a") as handle:
        handle.write('{"id": "torn", "state": "succ')
    # ... and the next append still lands on a line of its own.
    history.append(run("good-3"))
    listing = history.read()
    assert [r["id"] for r in listing.runs] == ["good-3", "good-2", "good-1"]
    assert listing.skipped_lines == 5


def test_appends_from_many_processes_at_once_all_land_whole(tmp_path: pathlib.Path) -> None:
    path = tmp_path / FILENAME
    # Each record is large (~64 KiB), so unlocked writes would interleave.
    script = (
        "import sys\n"
        "from gpu_devbox.bench.history import History\n"
        "h = History(sys.argv[1])\n"
        "for n in range(25):\n"
        "    h.append({'id': f'{sys.argv[2]}-{n}', 'pad': 'x' * 65536})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), f"p{p}"]) for p in range(4)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    listing = History(path).read()
    assert listing.skipped_lines == 0
    assert len(listing.runs) == 100
    assert len({r["id"] for r in listing.runs}) == 100
    for line in path.read_text().splitlines():
        assert json.loads(line)["pad"] == "x" * 65536


def test_the_default_file_is_in_jupyters_data_directory(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "gpu_devbox" / "benchmarks.jsonl"
    History().append(run("here"))
    assert History().find("here") is not None


def test_an_unwritable_directory_raises_oserror(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):  # noqa: PT011 - the exact errno depends on the platform
        History(blocker / "sub" / FILENAME).append(run("x"))
