"""Process attribution, table-tested: who owns each GPU process, and what is exact.

The pure decision (:func:`gpu_devbox.attribution.attribute`) on hand-built process tables, in the
three settings of issue 13: NVML's PIDs are ours (a workstation), they are the host's (a
container with its own PID namespace, matched by device files), and a GPU shared with other
containers. The matching by device files is also checked against brute force on random cases.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_devbox.attribution import (
    OTHER,
    GpuEntry,
    GpuView,
    Kernel,
    LocalProcess,
    OwnerKey,
    ProcessTable,
    Terminal,
    Workspace,
    attribute,
    kernels_document,
)

SERVER = 100
GIB = 1024**3

KERNEL_A = Kernel("a" * 8 + "-1111", "python3", "train.ipynb", 200, "idle", 1_700_000_000.0, 1)
KERNEL_B = Kernel("b" * 8 + "-2222", "python3", "eval.ipynb", 300, "busy", 1_700_000_100.0, 0)
TERMINAL = Terminal("1", 400, 1_700_000_050.0)
WORKSPACE = Workspace(kernels=(KERNEL_A, KERNEL_B), terminals=(TERMINAL,), server_pid=SERVER)
A = OwnerKey("kernel", KERNEL_A.id)
B = OwnerKey("kernel", KERNEL_B.id)
T = OwnerKey("terminal", "1")


def proc(
    pid: int,
    ppid: int,
    cmd: str = "python",
    *,
    uid: int = 1000,
    devices: tuple[int, ...] | None = None,
) -> LocalProcess:
    return LocalProcess(
        pid=pid,
        ppid=ppid,
        uid=uid,
        start_time=pid,
        comm=cmd.split()[0],
        cmdline=tuple(cmd.split()),
        devices=frozenset(devices) if devices is not None else None,
    )


#: The server, its kernels (A with a forked DataLoader worker and a `subprocess` training run,
#: B), a terminal with a job started from it, and a helper process of the server.
TREE = [
    proc(1, 0, "tini -- start.sh"),
    proc(SERVER, 1, "jupyter-lab"),
    proc(200, SERVER, "python -m ipykernel_launcher -f a.json"),
    proc(201, 200, "python -m ipykernel_launcher -f a.json"),  # forked worker
    proc(210, 200, "python train.py --epochs 3"),  # subprocess.run
    proc(300, SERVER, "python -m ipykernel_launcher -f b.json"),
    proc(400, SERVER, "/bin/bash -l"),
    proc(410, 400, "python finetune.py"),
    proc(500, SERVER, "python -m gpu_devbox.bench.worker"),
]


def table(processes: list[LocalProcess], *, shared: bool, self_uid: int = 1000) -> ProcessTable:
    return ProcessTable(
        processes={p.pid: p for p in processes},
        shared_namespace=shared,
        self_pid=SERVER,
        self_uid=self_uid,
    )


def with_devices(devices: dict[int, tuple[int, ...]]) -> list[LocalProcess]:
    """The tree, with these processes holding these /dev/nvidia<minor> files open."""
    return [
        proc(p.pid, p.ppid, " ".join(p.cmdline), uid=p.uid or 0, devices=devices.get(p.pid, ()))
        for p in TREE
    ]


def gpu(index: int, *entries: tuple[int, int], minor: int | None = -1) -> GpuView:
    return GpuView(
        index=index,
        minor=index if minor == -1 else minor,
        entries=tuple(GpuEntry(pid, size) for pid, size in entries),
        uuid=f"GPU-{index}",
    )


# ------------------------------------------------------------------------------------------
# NVML's PIDs are ours: exact, by walking up the tree
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pid", "owner"),
    [
        (200, A),  # the kernel itself
        (201, A),  # its forked DataLoader worker
        (210, A),  # a training run it started with subprocess
        (300, B),
        (400, T),  # the terminal's shell
        (410, T),  # anything started from it
        (500, OwnerKey("process", 500)),  # the server's benchmark worker
        (SERVER, OwnerKey("process", SERVER)),
    ],
)
def test_by_pid_each_process_belongs_to_its_kernel_terminal_or_process(
    pid: int, owner: OwnerKey
) -> None:
    result = attribute([gpu(0, (pid, GIB))], table(TREE, shared=True), WORKSPACE)
    assert result.method == "pids"
    assert result.decision(0, pid).owner == owner
    assert result.decision(0, pid).local_pid == pid


def test_by_pid_a_pid_that_is_not_in_proc_is_other() -> None:
    # gone meanwhile, or another user's under hidepid
    decision = attribute([gpu(0, (4242, GIB))], table(TREE, shared=True), WORKSPACE).decision(
        0, 4242
    )
    assert (decision.owner, decision.local_pid) == (OTHER, None)


def test_by_pid_another_users_process_outside_the_server_is_other_but_ours_is_named() -> None:
    processes = [*TREE, proc(700, 1, "python job.py", uid=1001), proc(800, 1, "python mine.py")]
    result = attribute([gpu(0, (700, GIB), (800, GIB))], table(processes, shared=True), WORKSPACE)
    assert result.decision(0, 700).owner == OTHER
    assert result.decision(0, 800).owner == OwnerKey("process", 800)


def test_forked_workers_of_a_program_are_one_owner() -> None:
    processes = [*TREE, proc(801, 800, "python mine.py"), proc(800, 1, "python mine.py")]
    result = attribute([gpu(0, (801, GIB))], table(processes, shared=True), WORKSPACE)
    assert result.decision(0, 801).owner == OwnerKey("process", 800)


def test_a_kernel_that_died_leaves_its_orphans_as_processes_and_unknown_ids_change_nothing() -> (
    None
):
    # Kernel A's process is gone; its worker was reparented to PID 1. The workspace still lists
    # A (and a kernel whose PID was never known, as for a remote kernel).
    orphan = proc(201, 1, "python -m ipykernel_launcher -f a.json")
    processes = [p for p in TREE if p.pid not in (200, 201)] + [orphan]
    remote = Kernel("remote", "python3", None, None, "idle", None)
    workspace = Workspace(kernels=(KERNEL_A, remote), server_pid=SERVER)
    result = attribute([gpu(0, (201, GIB), (200, GIB))], table(processes, shared=True), workspace)
    assert result.decision(0, 201).owner == OwnerKey("process", 201)
    assert result.decision(0, 200).owner == OTHER


# ------------------------------------------------------------------------------------------
# NVML's PIDs are the host's: matched by device files
# ------------------------------------------------------------------------------------------
def test_a_kernel_and_its_worker_holding_one_gpu_own_its_process_exactly() -> None:
    # The worker inherited the kernel's open device file: which of the two runs the CUDA
    # context cannot be told, whose it is can.
    processes = with_devices({200: (0,), 201: (0,)})
    result = attribute([gpu(0, (91234, 45 * GIB))], table(processes, shared=False), WORKSPACE)
    assert result.method == "device_files"
    assert result.decision(0, 91234).owner == A
    assert result.decision(0, 91234).local_pid is None


def test_a_single_holder_gives_the_exact_local_pid() -> None:
    processes = with_devices({200: (0,), 210: (1,)})
    result = attribute(
        [gpu(0), gpu(1, (95000, 2 * GIB))], table(processes, shared=False), WORKSPACE
    )
    assert result.decision(1, 95000).owner == A
    assert result.decision(1, 95000).local_pid == 210


def test_two_kernels_holding_the_gpu_with_one_process_are_not_guessed() -> None:
    processes = with_devices({200: (0,), 300: (0,)})
    result = attribute([gpu(0, (91234, 45 * GIB))], table(processes, shared=False), WORKSPACE)
    decision = result.decision(0, 91234)
    assert decision.owner is None
    assert decision.candidates == (A, B)


def test_counting_tells_holding_memory_from_being_able_to_use_a_gpu() -> None:
    # CUDA opened every visible GPU in kernel A; B sees only GPU 1. One process per GPU: the one
    # on GPU 0 can only be A's, so the one on GPU 1 is B's.
    processes = with_devices({200: (0, 1), 300: (1,)})
    result = attribute(
        [gpu(0, (91000, GIB)), gpu(1, (92000, 2 * GIB))],
        table(processes, shared=False),
        WORKSPACE,
    )
    assert (result.decision(0, 91000).owner, result.decision(0, 91000).local_pid) == (A, 200)
    assert (result.decision(1, 92000).owner, result.decision(1, 92000).local_pid) == (B, 300)


def test_a_process_on_two_gpus_is_the_one_holder_of_both() -> None:
    processes = with_devices({200: (0, 1), 300: (0,)})
    result = attribute(
        [gpu(0, (91000, GIB)), gpu(1, (91000, GIB))], table(processes, shared=False), WORKSPACE
    )
    assert result.decision(0, 91000).owner == A
    assert result.decision(1, 91000).owner == A


def test_a_gpu_this_container_does_not_hold_runs_only_others() -> None:
    processes = with_devices({200: (0,)})
    result = attribute(
        [gpu(0), gpu(1, (93000, GIB), (93001, GIB))], table(processes, shared=False), WORKSPACE
    )
    assert result.decision(1, 93000).owner == OTHER
    assert result.decision(1, 93001).owner == OTHER


def test_the_server_holding_device_files_for_nvml_is_no_candidate() -> None:
    processes = with_devices({SERVER: (0,), 200: (0,)})
    result = attribute([gpu(0, (91000, GIB))], table(processes, shared=False), WORKSPACE)
    assert result.decision(0, 91000).owner == A


def test_a_gpu_whose_minor_number_is_unknown_cannot_be_matched() -> None:
    processes = with_devices({200: (0,)})
    result = attribute(
        [gpu(0, (91000, GIB), minor=None)], table(processes, shared=False), WORKSPACE
    )
    decision = result.decision(0, 91000)
    assert (decision.owner, decision.candidates) == (None, ())


def test_minor_numbers_not_indices_match_device_files() -> None:
    # NVML index 0 is /dev/nvidia1 and index 1 is /dev/nvidia0 (minors follow the driver's
    # probe order, indices the PCI bus order).
    processes = with_devices({200: (1,), 300: (0,)})
    result = attribute(
        [gpu(0, (91000, GIB), minor=1), gpu(1, (92000, GIB), minor=0)],
        table(processes, shared=False),
        WORKSPACE,
    )
    assert result.decision(0, 91000).owner == A
    assert result.decision(1, 92000).owner == B


# ------------------------------------------------------------------------------------------
# A GPU shared with other containers: others are counted, not named
# ------------------------------------------------------------------------------------------
def test_on_a_shared_gpu_a_candidate_may_also_be_another_containers() -> None:
    processes = with_devices({200: (0,)})
    result = attribute(
        [gpu(0, (91000, GIB))], table(processes, shared=False), WORKSPACE, exclusive=False
    )
    assert result.decision(0, 91000).candidates == (A, OTHER)
    assert result.shared_gpus == {0}


def test_more_processes_than_holders_prove_a_gpu_shared_whatever_the_setting() -> None:
    processes = with_devices({200: (0,), 201: (0,)})
    result = attribute(
        [gpu(0, (91000, GIB), (91001, GIB), (91002, GIB))],
        table(processes, shared=False),
        WORKSPACE,
    )
    assert result.shared_gpus == {0}
    assert all(result.decision(0, pid).candidates == (A, OTHER) for pid in (91000, 91001, 91002))


def test_mig_processes_of_instances_this_server_cannot_see_are_others() -> None:
    processes = with_devices({200: (0,)})
    view = GpuView(
        index=0,
        minor=0,
        entries=(GpuEntry(91000, GIB, gpu_instance_id=1), GpuEntry(99000, GIB, gpu_instance_id=2)),
        mig_instances=frozenset({1}),
    )
    result = attribute([view], table(processes, shared=False), WORKSPACE)
    assert result.decision(0, 91000).owner == A
    assert result.decision(0, 99000).owner == OTHER


# ------------------------------------------------------------------------------------------
# the GET kernels document
# ------------------------------------------------------------------------------------------
def document(views: list[GpuView], processes: list[LocalProcess], **kwargs: Any) -> Any:
    t = table(processes, shared=False)
    return kernels_document(
        timestamp=1.0,
        views=views,
        attribution=attribute(views, t, WORKSPACE, **kwargs),
        workspace=WORKSPACE,
        table=t,
        since={A: 10.0},
        exclusive=kwargs.get("exclusive", True),
    )


def test_kernels_document_gives_exact_memory_per_kernel_and_gpu() -> None:
    views = [gpu(0, (91000, 45 * GIB)), gpu(1, (92000, 2 * GIB))]
    doc = document(views, with_devices({200: (0, 1), 300: (1,)}))
    a, b = doc["kernels"]
    assert (a["id"], a["path"], a["gpu_since"]) == (KERNEL_A.id, "train.ipynb", 10.0)
    assert [(g["index"], g["memory"], g["shared_with"]) for g in a["gpus"]] == [(0, 45 * GIB, [])]
    assert [(g["index"], g["memory"]) for g in b["gpus"]] == [(1, 2 * GIB)]
    assert a["gpus"][0]["processes"] == [
        {
            "pid": 91000,
            "local_pid": 200,
            "used_memory": 45 * GIB,
            "sm_utilization": None,
            "certain": True,
        }
    ]
    assert doc["terminals"] == [
        {"name": "1", "pid": 400, "last_activity": 1_700_000_050.0, "gpu_since": None, "gpus": []}
    ]
    assert doc["attribution"] == {
        "method": "device_files",
        "exclusive_gpus": True,
        "shared_gpus": [],
    }


def test_kernels_sharing_a_gpu_say_with_whom_and_how_much_together() -> None:
    # "shared by 2 kernels: 45.4 GiB together"
    views = [gpu(0, (91000, 40 * GIB), (91001, 5 * GIB))]
    doc = document(views, with_devices({200: (0,), 300: (0,)}))
    a, b = doc["kernels"]
    assert a["gpus"][0]["memory"] is None
    assert a["gpus"][0]["shared_memory"] == 45 * GIB
    assert [o["kernel_id"] for o in a["gpus"][0]["shared_with"]] == [KERNEL_B.id]
    assert [o["path"] for o in b["gpus"][0]["shared_with"]] == ["train.ipynb"]
    assert all(not p["certain"] for p in a["gpus"][0]["processes"])
    assert doc["gpus"] == [
        {
            "index": 0,
            "uuid": "GPU-0",
            "processes": 2,
            "others": 0,
            "others_memory": 0,
            "uncertain": 2,
        }
    ]


def test_others_are_counted_with_their_memory_not_named() -> None:
    views = [gpu(0, (91000, GIB)), gpu(1, (93000, 3 * GIB))]
    doc = document(views, with_devices({200: (0,)}))
    assert doc["gpus"][1]["others"] == 1
    assert doc["gpus"][1]["others_memory"] == 3 * GIB
    assert doc["processes"] == []
    assert "93000" not in str(doc["kernels"])


def test_a_process_of_the_container_is_listed_with_its_command_line() -> None:
    views = [gpu(0, (95000, GIB))]
    doc = document(views, with_devices({500: (0,)}))
    assert doc["processes"] == [
        {
            "pid": 500,
            "cmdline": "python -m gpu_devbox.bench.worker",
            "gpu_since": None,
            "gpus": [
                {
                    "index": 0,
                    "uuid": "GPU-0",
                    "memory": GIB,
                    "shared_with": [],
                    "shared_memory": None,
                    "processes": [
                        {
                            "pid": 95000,
                            "local_pid": 500,
                            "used_memory": GIB,
                            "sm_utilization": None,
                            "certain": True,
                        }
                    ],
                }
            ],
        }
    ]


# ------------------------------------------------------------------------------------------
# the matching against brute force
# ------------------------------------------------------------------------------------------
def brute_force(
    gpus_of: dict[int, set[int]],
    holders: dict[int, set[int]],
    owners: dict[int, OwnerKey],
    shared: set[int],
) -> dict[int, set[OwnerKey]] | None:
    """Every owner each GPU process has in some valid assignment (None: no valid one)."""
    hosts = sorted(gpus_of)
    locals_ = sorted(holders)
    possible: dict[int, set[OwnerKey]] = {h: set() for h in hosts}
    found = False
    for choice in itertools.product([None, *locals_], repeat=len(hosts)):
        used = [c for c in choice if c is not None]
        if len(used) != len(set(used)):
            continue
        valid = True
        for h, c in zip(hosts, choice, strict=True):
            if c is None:
                if gpus_of[h] - shared:
                    valid = False  # on an exclusive GPU every process is ours
            elif not gpus_of[h] <= holders[c]:
                valid = False
        if not valid:
            continue
        found = True
        for h, c in zip(hosts, choice, strict=True):
            possible[h].add(OTHER if c is None else owners[c])
    return possible if found else None


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.dictionaries(st.integers(1, 4), st.sets(st.integers(0, 2), min_size=1), max_size=4),
    st.dictionaries(st.integers(0, 4), st.sets(st.integers(0, 2), min_size=1), max_size=5),
)
def test_device_file_matching_agrees_with_brute_force(
    gpus_of: dict[int, set[int]], holder_gpus: dict[int, set[int]]
) -> None:
    # Local process 1000+i is a child of kernel A (even i) or B (odd i).
    holders = {1000 + i: gpus for i, gpus in holder_gpus.items()}
    processes = [proc(SERVER, 1, "jupyter"), proc(1, 0, "init")]
    owners = {}
    for local, gpus in holders.items():
        root = 200 if local % 2 == 0 else 300
        processes.append(proc(local, root, f"w{local}", devices=tuple(gpus)))
        owners[local] = A if root == 200 else B
    processes += [proc(200, SERVER, "a"), proc(300, SERVER, "b")]
    holders = {pid: set(g) for pid, g in holders.items()}
    pid_gpus = {90000 + h: gpus for h, gpus in gpus_of.items()}
    views = [
        gpu(g, *[(pid, GIB) for pid, gpus in sorted(pid_gpus.items()) if g in gpus])
        for g in range(3)
    ]
    result = attribute(views, table(processes, shared=False), WORKSPACE)
    expected = brute_force(pid_gpus, holders, owners, set(result.shared_gpus))
    assert expected is not None, "the GPUs left exclusive must admit an assignment"
    for pid, possible in expected.items():
        decision = result.decision(min(pid_gpus[pid]), pid)
        if len(possible) == 1:
            assert decision.owner == next(iter(possible)), (pid, possible, decision)
        else:
            assert decision.owner is None
            assert set(decision.candidates) == possible, (pid, possible, decision)
    # a GPU is only declared shared when something proves it: more processes than holders, a
    # process no holder could be, or a set of processes with fewer candidates than members
    for g in result.shared_gpus:
        running = [p for p, gs in pid_gpus.items() if g in gs]
        holding = [h for h, gs in holders.items() if g in gs]
        impossible = any(not any(pid_gpus[p] <= holders[h] for h in holders) for p in running)
        all_exclusive = brute_force(pid_gpus, holders, owners, set())
        assert len(running) > len(holding) or impossible or all_exclusive is None
