"""What the notebook images ship for users: the git sync helper and the S3 example notebook.

Real programs: git and nbgitpuller for ``gpu-devbox-sync`` (against a repository on disk, as a
``file://`` URL), and the example notebook run by nbclient in a real kernel against moto's S3
server started by the test on a loopback port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYNC = ROOT / "images" / "gpu-devbox-sync"
BIN = Path(sys.executable).parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Teacher",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "Teacher",
    "GIT_COMMITTER_EMAIL": "t@example.org",
}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, **GIT_ENV},
    ).stdout  # fmt: skip


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A course repository with one notebook, on branch ``trunk`` (not ``main``)."""
    repo = tmp_path / "course"
    repo.mkdir()
    git("init", "-q", "-b", "trunk", cwd=repo)
    (repo / "lesson1.py").write_text("print('lesson 1')\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "lesson 1", cwd=repo)
    return repo


def sync(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "HOME": str(home)}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [str(SYNC), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.mark.slow
def test_sync_clones_then_merges_upstream_and_keeps_the_users_edits(
    upstream: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = upstream.as_uri()
    first = sync(home, url)
    assert first.returncode == 0, first.stderr
    clone = home / "course"
    assert (clone / "lesson1.py").read_text() == "print('lesson 1')\n"
    assert f"{clone} is at " in first.stdout
    assert "(" + url + ", trunk)" in first.stdout  # the remote's default branch, found
    # The user edits the lesson; upstream adds a lesson and edits nothing the user touched.
    (clone / "lesson1.py").write_text("print('my answer')\n")
    (upstream / "lesson2.py").write_text("print('lesson 2')\n")
    git("add", ".", cwd=upstream)
    git("commit", "-q", "-m", "lesson 2", cwd=upstream)
    second = sync(home, url, "course")
    assert second.returncode == 0, second.stderr
    assert (clone / "lesson2.py").read_text() == "print('lesson 2')\n"
    assert (clone / "lesson1.py").read_text() == "print('my answer')\n"


@pytest.mark.slow
def test_sync_into_a_named_folder_with_a_branch(upstream: Path, tmp_path: Path) -> None:
    git("checkout", "-q", "-b", "solutions", cwd=upstream)
    (upstream / "answers.py").write_text("print(42)\n")
    git("add", ".", cwd=upstream)
    git("commit", "-q", "-m", "answers", cwd=upstream)
    home = tmp_path / "home"
    home.mkdir()
    result = sync(home, upstream.as_uri(), "week1/answers", "--branch", "solutions")
    assert result.returncode == 0, result.stderr
    assert (home / "week1" / "answers" / "answers.py").is_file()


def test_sync_prints_the_nbgitpuller_link(tmp_path: Path) -> None:
    result = sync(
        tmp_path,
        "--link", "https://hub.example.org/", "https://github.com/org/course.git",
        "--branch", "main", "--open", "course/lesson1.ipynb",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    link = urlsplit(result.stdout.strip())
    assert (link.scheme, link.netloc, link.path) == (
        "https", "hub.example.org", "/hub/user-redirect/git-pull"
    )  # fmt: skip
    assert parse_qs(link.query) == {
        "repo": ["https://github.com/org/course.git"],
        "branch": ["main"],
        "targetPath": ["course"],
        "urlpath": ["lab/tree/course/lesson1.ipynb"],
    }


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ([], 2, "usage: gpu-devbox-sync"),
        (["course"], 2, "'course' is not a repository URL"),
        (["--frob", "https://x/y"], 2, "unknown option --frob"),
        (["--link", "hub", "https://x/y"], 2, "--link 'hub' is not the hub's URL"),
        (["file:///nonexistent/repo.git"], 1, "cannot read file:///nonexistent/repo.git"),
    ],
)
def test_sync_bad_input_is_one_line(args: list[str], code: int, words: str, tmp_path: Path) -> None:
    result = sync(tmp_path, *args)
    assert result.returncode == code
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert words in result.stderr


# -- the S3 example notebook against a real S3-compatible server ---------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[str]:
    """moto's S3-compatible server on a loopback port; yields its endpoint URL."""
    port = free_port()
    log = (tmp_path / "moto.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, (tmp_path / "moto.log").read_text()
            assert time.monotonic() < deadline, "moto's server did not listen"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_s3_example_notebook_runs_against_an_s3_compatible_server(
    s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    import nbformat
    from nbclient import NotebookClient

    env = {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "example-key",
        "AWS_SECRET_ACCESS_KEY": "example-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "S3_BUCKET": "team-datasets",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(ROOT / "images/examples/s3-datasets-and-models.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )
    assert f"endpoint {s3_server}, bucket team-datasets" in text
    assert "created bucket team-datasets" in text
    assert "read 1000 rows" in text
    assert "model round trip: identical weights" in text
    # What the notebook wrote is really on the server, seen by another client.
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="team-datasets")["Contents"]}
    assert keys == {"examples/train.csv", "examples/model.npz"}
    # The shipped notebook carries no outputs (it is run by its users, not by us).
    shipped = nbformat.read(ROOT / "images/examples/s3-datasets-and-models.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in shipped.cells if cell.cell_type == "code")
