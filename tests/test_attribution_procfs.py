"""The /proc and /dev reader, on this machine's real /proc (and in a real PID namespace).

Processes vanish while they are read; entries can be odd. None of it may raise: a process that
is gone is skipped.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from gpu_devbox.attribution import ProcReader
from gpu_devbox.attribution.procfs import PROC_PID_INIT_INO
from tests import pidns


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["sleep", "30"])
    # Popen returns once exec has begun: the new command line is in place a moment later
    cmdline = pathlib.Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 10
    while cmdline.read_bytes() != b"sleep\x0030\x00":
        assert time.monotonic() < deadline, "sleep never started"
        time.sleep(0.005)
    yield process
    process.kill()
    process.wait()


def test_a_real_process_is_read_with_its_parent_command_line_and_user(
    sleeper: subprocess.Popen[bytes],
) -> None:
    reader = ProcReader()
    process = reader.process(sleeper.pid)
    assert process is not None
    assert (process.pid, process.ppid, process.uid) == (sleeper.pid, os.getpid(), os.getuid())
    assert process.cmdline == ("sleep", "30")
    assert process.comm == "sleep"
    assert process.command() == "sleep 30"
    assert sleeper.pid in reader.pids()


def test_lineage_climbs_to_the_first_process(sleeper: subprocess.Popen[bytes]) -> None:
    table = ProcReader().lineage([sleeper.pid])
    pid = sleeper.pid
    chain = []
    while pid in table:
        chain.append(pid)
        pid = table[pid].ppid
    assert chain[:2] == [sleeper.pid, os.getpid()]
    assert chain[-1] == 1


def test_a_process_that_is_gone_is_none_not_an_error() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    reader = ProcReader()
    assert reader.process(process.pid) is None
    assert reader.devices(process.pid) is None
    assert reader.lineage([process.pid]) == {}


def test_this_machine_runs_in_the_initial_pid_namespace() -> None:
    # The tests run on a VM (or a workstation): NVML's PIDs would be ours.
    assert os.readlink("/proc/self/ns/pid") == f"pid:[{PROC_PID_INIT_INO}]"
    assert ProcReader().nvml_pids_are_ours() is True


def test_processes_vanishing_mid_scan_never_break_it() -> None:
    # Short-lived processes start and end all the time while the whole /proc is read, open
    # files included: a process, its fd directory or one of its fds may go at any point.
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            subprocess.run(["true"], check=True)

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for thread in threads:
        thread.start()
    reader = ProcReader()
    try:
        deadline = time.monotonic() + 2
        scans = 0
        while time.monotonic() < deadline:
            pids = reader.pids()
            table = reader.lineage(pids)
            holders = reader.device_holders()
            assert all(isinstance(minor, int) for minors in holders.values() for minor in minors)
            assert all(p.pid == pid for pid, p in table.items())
            scans += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert scans >= 3


def fake_proc(tmp_path: pathlib.Path) -> pathlib.Path:
    """A /proc-like tree with odd entries (the layout of the real one)."""
    root = tmp_path / "proc"
    # a process whose comm holds spaces and parentheses, holding two GPUs and other files
    odd = root / "41"
    (odd / "fd").mkdir(parents=True)
    (odd / "stat").write_bytes(b"41 (a) b (c) S 7 41 41 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 4242 0 0\n")
    (odd / "cmdline").write_bytes(b"python\0-c\0print('x y')\0")
    for fd, target in {
        "0": "/dev/null",
        "3": "/dev/nvidia1",
        "4": "/dev/nvidiactl",
        "5": "/dev/nvidia-uvm",
        "6": "/dev/nvidia0",
        "7": "/dev/nvidia-caps/nvidia-cap1",
        "8": "/dev/nvidia10x",
        "9": "socket:[1234]",
    }.items():
        (odd / "fd" / fd).symlink_to(target)
    # a process that went between the directory listing and the reads: no stat, no fd
    (root / "42").mkdir()
    # a kernel thread: no command line
    thread = root / "2"
    thread.mkdir()
    (thread / "stat").write_bytes(b"2 (kthreadd) S 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n")
    (thread / "cmdline").write_bytes(b"")
    # a truncated stat file
    cut = root / "43"
    cut.mkdir()
    (cut / "stat").write_bytes(b"43 (cut) S 1")
    (root / "self").mkdir()
    (root / "not-a-pid").mkdir()
    return root


def test_odd_entries_are_parsed_or_skipped(tmp_path: pathlib.Path) -> None:
    reader = ProcReader(str(fake_proc(tmp_path)))
    assert sorted(reader.pids()) == [2, 41, 42, 43]
    odd = reader.process(41)
    assert odd is not None
    assert (odd.ppid, odd.comm, odd.start_time) == (7, "a) b (c", 4242)
    assert odd.cmdline == ("python", "-c", "print('x y')")
    # only /dev/nvidia<minor> counts: not nvidiactl, nvidia-uvm, the MIG capabilities, others
    assert reader.devices(41) == {0, 1}
    assert reader.process(42) is None
    assert reader.devices(42) is None
    assert reader.process(43) is None
    thread = reader.process(2)
    assert thread is not None
    assert (thread.cmdline, thread.command()) == ((), "[kthreadd]")
    assert reader.device_holders() == {41: frozenset({0, 1})}
    table = reader.lineage([41], devices={41: frozenset({0, 1})})
    assert table[41].devices == {0, 1}


def test_a_long_command_line_is_shortened() -> None:
    from gpu_devbox.attribution import LocalProcess

    process = LocalProcess(1, 0, 0, 0, "python", ("python", "x" * 300))
    assert len(process.command()) == 120
    assert process.command().endswith("…")


INSIDE = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from gpu_devbox.attribution import ProcReader
    gpu0 = open("/dev/nvidia0")
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; f = open('/dev/nvidia1'); time.sleep(30)"]
    )
    forked = os.fork()
    if forked == 0:  # a DataLoader-like worker: inherits the open /dev/nvidia0
        time.sleep(30)
        os._exit(0)
    time.sleep(1.5)
    reader = ProcReader()
    print(json.dumps({
        "ours": reader.nvml_pids_are_ours(),
        "me": os.getpid(),
        "child": child.pid,
        "forked": forked,
        "holders": {str(k): sorted(v) for k, v in reader.device_holders().items()},
    }), flush=True)
    child.kill()
    os.kill(forked, 9)
    """
)


@pytest.mark.skipif(not pidns.AVAILABLE, reason=pidns.REASON)
def test_in_its_own_pid_namespace_the_reader_sees_device_files_not_host_pids(
    tmp_path: pathlib.Path,
) -> None:
    import json

    process = pidns.start(
        [sys.executable, "-c", INSIDE], tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = process.communicate(timeout=60)
    finally:
        pidns.stop(process)
    assert process.returncode == 0, err.decode()
    seen = json.loads(out)
    assert seen["ours"] is False  # NVML's PIDs would be the host's
    assert seen["me"] == 1
    assert seen["holders"] == {
        "1": [0],
        str(seen["child"]): [1],
        str(seen["forked"]): [0],
    }
