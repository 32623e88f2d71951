"""Hostile catalog files: alias bombs, huge files, FIFOs and devices get one clear error, fast.

A catalog path comes from an admin's config or command line; a mistake (a log file, a pipe)
or a crafted file must not hold the hub or the command for minutes or eat its memory.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from gpu_devbox.catalog import (
    CatalogError,
    default_catalog,
    default_catalog_text,
    load_catalog,
    loader,
    parse_catalog_text,
)

MIB = 1024 * 1024


def list_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" document: each level is a list of ``width`` aliases of the last."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def mapping_bomb(levels: int = 9, width: int = 9) -> str:
    """The same with mappings, each value an alias of the level below."""
    lines = ["m0: &m0 {" + ", ".join(f"k{i}: x" for i in range(width)) + "}"]
    for level in range(1, levels):
        refs = ", ".join(f"k{i}: *m{level - 1}" for i in range(width))
        lines.append(f"m{level}: &m{level} {{{refs}}}")
    return "\n".join(lines) + "\n"


#: A real catalog of a few KiB (the placement tests'), for a bomb hidden in a real file: the
#: shipped one grows with every image, and the bomb's point is a small file.
SMALL_CATALOG = Path(__file__).with_name("fixtures") / "placement-catalog.yaml"


def profiles_bomb() -> str:
    """A real catalog whose profiles' tolerations are a bomb (the reader would walk it)."""
    return (
        SMALL_CATALOG.read_text(encoding="utf-8")
        + "\n# a crafted extra\n"
        + "".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]\n" for i in range(1, 9))
    ).replace("version: 1", "x0: &x0 [{key: a}, {key: b}, {key: c}]\nversion: 1", 1)


def timed(call: object) -> tuple[float, BaseException | None]:
    start = time.perf_counter()
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:  # noqa: BLE001 - returned to the test to assert on
        return time.perf_counter() - start, exc
    return time.perf_counter() - start, None


@pytest.mark.parametrize(
    "text",
    [list_bomb(), list_bomb(12, 5), mapping_bomb(), profiles_bomb()],
    ids=["lists", "deep-lists", "mappings", "in-a-catalog"],
)
def test_an_alias_bomb_is_refused_at_once(text: str) -> None:
    assert len(text) < 6000
    elapsed, error = timed(lambda: parse_catalog_text(text, "bomb.yaml"))
    assert isinstance(error, CatalogError), error
    assert str(error).startswith("bomb.yaml:")
    assert "through its aliases (*name)" in str(error)
    assert elapsed < 1.0


def test_an_alias_bomb_is_refused_by_the_pure_python_parser_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loader, "_LOADER", yaml.SafeLoader)
    elapsed, error = timed(lambda: parse_catalog_text(list_bomb(), "bomb.yaml"))
    assert isinstance(error, CatalogError)
    assert "through its aliases" in str(error)
    assert elapsed < 1.0


def test_the_c_parser_is_used_when_pyyaml_has_it() -> None:
    assert yaml.__with_libyaml__, "PyYAML's wheels carry libyaml"
    assert issubclass(loader._LOADER, yaml.CSafeLoader.__mro__[1])  # libyaml's CParser


def test_aliases_within_the_limits_still_work_with_located_errors() -> None:
    text = default_catalog_text()
    gpu_images = "[cuda13-pytorch, cuda12-pytorch, cuda13-base, cuda12-base]"
    assert text.count(f"images: {gpu_images}") == 4
    anchored = text.replace(f"images: {gpu_images}", f"images: &gpu {gpu_images}", 1).replace(
        f"images: {gpu_images}", "images: *gpu"
    )
    assert anchored.count("images: *gpu") == 3
    assert parse_catalog_text(anchored).profiles == default_catalog().profiles
    lines = anchored.splitlines()
    slug = next(i for i, line in enumerate(lines) if "slug: gpu-1" in line)
    broken = anchored.replace("slug: gpu-1", "slug: GPU!", 1)
    with pytest.raises(CatalogError) as caught:
        parse_catalog_text(broken, "catalog.yaml")
    assert str(caught.value).startswith(f"catalog.yaml:{slug + 1}: profiles[1].slug: ")


def test_an_alias_inside_what_it_names_is_refused() -> None:
    with pytest.raises(CatalogError, match=r"x\.yaml:1: the alias \*a is used inside the value"):
        parse_catalog_text("version: &a [1, *a]\n", "x.yaml")


def test_too_many_values_without_aliases_are_refused_fast() -> None:
    images = "".join(f"  - {{name: i{i}, reference: r}}\n" for i in range(5000))
    text = f"version: 1\nimages:\n{images}profiles: []\n"
    assert len(text) < MIB
    elapsed, error = timed(lambda: parse_catalog_text(text, "many.yaml"))
    assert isinstance(error, CatalogError)
    assert "has more than 20,000 YAML values" in str(error)
    assert elapsed < 1.0


def test_a_large_valid_catalog_loads_in_seconds_not_minutes(tmp_path: Path) -> None:
    # as many values as allowed, and every list the reader checks for duplicates long
    images = "".join(f"  - {{name: i{i}, reference: r}}\n" for i in range(2000))
    names = "".join(f"      - i{i}\n" for i in range(2000))
    volumes = "".join(f"      - {{name: v{i}, mount: /m{i}, scratch: 1Gi}}\n" for i in range(800))
    path = tmp_path / "large.yaml"
    path.write_text(
        f"version: 1\nimages:\n{images}profiles:\n  - slug: p\n    display_name: P\n"
        f"    images:\n{names}    volumes:\n{volumes}"
    )
    elapsed, error = timed(lambda: load_catalog(path))
    assert error is None
    # about 0.2 s on a quiet machine; duplicate checks that compared every pair took 80 s
    assert elapsed < 5.0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "is nested more than 100 levels deep"),
        ("- " * 100_000 + "x\n", "is nested more than 100 levels deep"),
        ("a: " + "{a: " * 5000 + "1" + "}" * 5000, "is nested more than 100 levels deep"),
    ],
    ids=["flow-lists", "block-lists", "flow-mappings"],
)
@pytest.mark.parametrize("parser", ["c", "python"])
def test_deep_nesting_is_refused(
    monkeypatch: pytest.MonkeyPatch, text: str, problem: str, parser: str
) -> None:
    if parser == "python":
        monkeypatch.setattr(loader, "_LOADER", yaml.SafeLoader)
    elapsed, error = timed(lambda: parse_catalog_text(text, "deep.yaml"))
    assert isinstance(error, CatalogError), error
    # libyaml may meet its own limit (1,000 levels) first: it scans ahead in flow lists
    assert str(error) in (
        f"deep.yaml:1: the catalog {problem}",
        "deep.yaml:1: not valid YAML: exceeded maximum nesting depth",
    )
    # the pure-Python parser (only where PyYAML lacks libyaml) also scans 1,024 characters
    # ahead, at a cost that grows with the depth
    assert elapsed < (1.0 if parser == "c" else 5.0)


def test_a_file_over_one_mib_is_refused_without_parsing_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as out:
        out.write("version: 1\nimages:\n")
        line = "  - {name: image, reference: example/notebook:latest}\n"
        out.write(line * (50 * MIB // len(line)))  # 50 MB
    elapsed, error = timed(lambda: load_catalog(path))
    assert str(error) == (f"{path}: the catalog is 50.0 MiB; a catalog file may be at most 1 MiB")
    assert elapsed < 1.0
    with pytest.raises(CatalogError, match="at most 1 MiB"):
        parse_catalog_text("#" * (MIB + 1))


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "catalog.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/zero")
    errors: list[BaseException | None] = []
    reader = threading.Thread(target=lambda: errors.append(timed(lambda: load_catalog(path))[1]))
    reader.daemon = True  # if it hangs on the FIFO, the test fails instead of hanging
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), f"reading a {kind} did not return"
    words = {
        "fifo": "it is a FIFO (named pipe), not a file",
        "directory": "it is a directory, not a file",
        "device": "it is a character device, not a file",
    }
    assert str(errors[0]) == f"{path}: cannot read the catalog: {words[kind]}"


#: The address space the command may use: its imports need about 200 MiB; a 330-byte alias
#: bomb once grew it past 900 MiB.
CLI_MEMORY = 512 * MIB


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CLI_MEMORY, CLI_MEMORY))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("gpu-devbox")
    argv = [exe, *args] if exe else [sys.executable, "-m", "gpu_devbox", *args]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
        preexec_fn=_limit_memory,
    )


@pytest.mark.parametrize("kind", ["bomb", "huge", "fifo"])
@pytest.mark.parametrize("command", ["profiles", "images"])
def test_the_commands_exit_2_with_one_line(tmp_path: Path, kind: str, command: str) -> None:
    path = tmp_path / f"{kind}.yaml"
    if kind == "bomb":
        path.write_text(list_bomb(10, 9))  # 9**10 values once expanded
    elif kind == "huge":
        path.write_text("# padding\n" * (5 * MIB // 10))
    else:
        os.mkfifo(path)
    empty = tmp_path / "empty.json"
    empty.write_text('{"kind": "List", "items": []}')
    args = (
        ["profiles", "--catalog", str(path), "--nodes", str(empty), "--pods", str(empty)]
        if command == "profiles"
        else ["images", "matrix", "--catalog", str(path)]
    )
    start = time.perf_counter()
    result = _cli(*args)
    elapsed = time.perf_counter() - start
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"gpu-devbox {command}: error: ")
    assert str(path) in lines[0]
    assert elapsed < 15  # mostly Python's start; the refusal itself takes milliseconds (above)
