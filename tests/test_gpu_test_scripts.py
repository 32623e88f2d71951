"""The gpu-tests/ scripts cannot run here (no GPU), but their judgement can be checked.

Their comparison logic is run on what a real H100 reported through NVML and through nvidia-smi
at the same time (fixtures/h100-nvml-capture.json), so a script that would misjudge real
hardware fails here first.
"""

from __future__ import annotations

from gpu_devbox.gpus import NvmlAdapter
from tests import gpu_scripts
from tests.fakenvml import CAPTURE, FakeNVML

load_script = gpu_scripts.load_script


def loaded_h100() -> dict[str, object]:
    fake = FakeNVML(state="loaded")
    adapter = NvmlAdapter(lambda: fake)
    _, devices = adapter.open()
    return {**devices[0].static_dict(), **adapter.sample(devices[0], slow=False)}


def captured_smi() -> dict[str, str]:
    keys = [
        "name",
        "uuid",
        "memory.total",
        "memory.used",
        "memory.reserved",
        "utilization.gpu",
        "temperature.gpu",
        "power.draw",
        "clocks.sm",
        "clocks.mem",
        "driver_version",
    ]
    return dict(zip(keys, CAPTURE["nvidia_smi_loaded"].split(", "), strict=True))


def test_metrics_script_agrees_with_the_captured_h100() -> None:
    script = load_script("metrics_vs_nvidia_smi")
    gpu = loaded_h100()
    smi = captured_smi()
    gpu["uuid"] = smi["uuid"]  # the fake numbers its GPUs; the capture has the real UUID
    rows = script.compare(gpu, smi, CAPTURE["driver"])
    assert len(rows) == 8
    assert [field for field, _, _, good in rows if not good] == []


def test_metrics_script_catches_a_v1_memory_reading() -> None:
    # The classic bug (gpustat#141): v1 memory counts 480 MiB reserved as used. On an idle GPU
    # that is 480 MiB against nvidia-smi's 0: far outside the ±64 MiB tolerance.
    script = load_script("metrics_vs_nvidia_smi")
    gpu = loaded_h100()
    smi = captured_smi()
    gpu["uuid"] = smi["uuid"]
    smi["memory.used"] = "0"
    gpu["memory"] = {**gpu["memory"], "used": CAPTURE["idle"]["mem_v1"]["used"]}  # type: ignore[dict-item]
    bad = [field for field, _, _, good in script.compare(gpu, smi, CAPTURE["driver"]) if not good]
    assert bad == ["memory.used MiB"]


def test_metrics_script_refuses_to_run_without_nvidia_smi() -> None:
    result = gpu_scripts.run_without_nvidia_smi("metrics_vs_nvidia_smi")
    assert result.returncode == 2
    assert "nvidia-smi not found" in result.stderr


# ---------------------------------------------------------------------------------------------
# gpu-tests/attribution_vs_nvidia_smi.py (issue 13, item 7), judged on synthetic documents shaped
# exactly as GET gpus / GET kernels answer (validated against openapi.json) and on nvidia-smi's
# --query-compute-apps CSV
# ---------------------------------------------------------------------------------------------
ATTR_UUID = "GPU-6f2b4c36-6a8e-3d0c-1111-222233334444"
ATTR_KERNEL = "7c5ef238-c543-4565-9ce9-1be790a75fc2"
TWO_GIB = 2 * 1024**3
# What a 2 GiB torch allocation shows: the CUDA context (~500 MiB) on top of the tensor.
HELD = TWO_GIB + 518 * 2**20


def attribution_documents(
    *, method: str = "pids", owner_id: str = ATTR_KERNEL, memory: int = HELD
) -> tuple[list[dict[str, object]], dict[str, object]]:
    from tests.openapi import validate_component

    owner = {
        "type": "kernel",
        "kernel_id": owner_id,
        "kernel_name": "python3",
        "path": "gpu-test.ipynb",
        "execution_state": "idle",
    }
    process = {
        "pid": 4010,
        "used_memory": memory,
        "gpu_instance_id": None,
        "sm_utilization": 0,
        "local_pid": 4010 if method == "pids" else None,
        "owner": owner,
    }
    gpus = [{"index": 0, "uuid": ATTR_UUID, "processes": [process]}]
    usage = {
        "index": 0,
        "uuid": ATTR_UUID,
        "memory": memory,
        "shared_with": [],
        "shared_memory": None,
        "processes": [
            {
                "pid": 4010,
                "local_pid": process["local_pid"],
                "used_memory": memory,
                "sm_utilization": 0,
                "certain": True,
            }
        ],
    }
    kernels = {
        "timestamp": 1.0,
        "attribution": {"method": method, "exclusive_gpus": True, "shared_gpus": []},
        "kernels": [
            {
                "id": owner_id,
                "name": "python3",
                "path": "gpu-test.ipynb",
                "execution_state": "idle",
                "last_activity": 1.0,
                "connections": 0,
                "pid": 4010,
                "gpu_since": 1.0,
                "gpus": [usage],
            }
        ],
        "terminals": [],
        "processes": [],
        "gpus": [
            {
                "index": 0,
                "uuid": ATTR_UUID,
                "processes": 1,
                "others": 0,
                "others_memory": 0,
                "uncertain": 0,
            }
        ],
    }
    validate_component("KernelsDocument", kernels)
    return gpus, kernels


def judge(
    gpus: list[dict[str, object]], kernels: dict[str, object], smi_csv: str, kernel_pid: int = 4010
) -> list[str]:
    script = load_script("attribution_vs_nvidia_smi")
    rows = script.compare(
        gpus,
        kernels,
        script.parse_compute_apps(smi_csv),
        device=0,
        kernel_id=ATTR_KERNEL,
        path="gpu-test.ipynb",
        kernel_pid=kernel_pid,
        gib=2.0,
    )
    assert rows
    return [what for what, _, _, good in rows if not good]


SMI_APPS = f"4010, {ATTR_UUID}, 2566\n"


def test_attribution_script_passes_a_right_attribution() -> None:
    gpus, kernels = attribution_documents()
    assert judge(gpus, kernels, SMI_APPS) == []


def test_attribution_script_catches_a_wrong_owner_and_a_wrong_pid() -> None:
    gpus, kernels = attribution_documents(owner_id="someone-else")
    assert judge(gpus, kernels, SMI_APPS) == ["kernel's process holding the memory"]
    gpus, kernels = attribution_documents()
    assert judge(gpus, kernels, SMI_APPS, kernel_pid=4011) == ["local_pid"]
    other_pid = f"9999, {ATTR_UUID}, 2566\n"
    assert judge(gpus, kernels, other_pid) == ["NVML pid in nvidia-smi"]


def test_attribution_script_catches_memory_that_disagrees_with_nvidia_smi() -> None:
    gpus, kernels = attribution_documents()
    assert judge(gpus, kernels, f"4010, {ATTR_UUID}, 2400\n") == ["used_memory MiB"]
    assert judge(gpus, kernels, f"4010, {ATTR_UUID}, [N/A]\n") == []  # not reported: not judged


def test_attribution_script_in_a_container_judges_without_nvidia_smis_list() -> None:
    # nvidia-smi in a pod lists no processes; the owner and GET kernels are still judged
    gpus, kernels = attribution_documents(method="device_files")
    assert judge(gpus, kernels, "") == []
    gpus, kernels = attribution_documents(method="device_files", memory=TWO_GIB // 2)
    assert judge(gpus, kernels, "") == ["kernel's process holding the memory"]


def test_attribution_script_refuses_to_run_without_nvidia_smi() -> None:
    result = gpu_scripts.run_without_nvidia_smi("attribution_vs_nvidia_smi")
    assert result.returncode == 2
    assert "nvidia-smi not found" in result.stderr
