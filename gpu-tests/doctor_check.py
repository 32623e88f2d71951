"""Compare what ``gpu-devbox doctor`` reports with ``nvidia-smi`` and torch, on a real GPU.

Run on a machine (or in a container) with an NVIDIA GPU, the driver, and gpu-devbox installed::

    python gpu-tests/doctor_check.py [--python PYTHON] [--output comparison.json]

It runs ``gpu-devbox doctor --json --backend nvml`` (which also probes ``--python``'s
environment, this interpreter's by default), ``nvidia-smi`` and ``PYTHON -c "import torch; ..."``,
and compares the driver version, the driver's CUDA version, the GPU names and compute
capabilities, and torch's version, CUDA build and ``torch.cuda.is_available()``. It prints one
line per comparison and exits 0 when all agree, 1 on any disagreement, 2 when this is not a GPU
machine (no nvidia-smi, or it fails). ``--output`` also writes the comparison as JSON, to be
committed with the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any, NoReturn

TORCH_PROBE = """
import json, torch
out = {"version": torch.__version__, "cuda": torch.version.cuda,
       "is_available": torch.cuda.is_available(), "devices": []}
if out["is_available"]:
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        out["devices"].append({"name": torch.cuda.get_device_name(i),
                               "capability": f"{major}.{minor}"})
print(json.dumps(out))
"""


def stop(message: str, status: int) -> NoReturn:
    """Print one line on stderr and exit."""
    print(f"doctor_check: {message}", file=sys.stderr)
    raise SystemExit(status)


def run(argv: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def nvidia_smi() -> dict[str, Any]:
    """Driver, CUDA version and GPUs as nvidia-smi reports them."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        stop("nvidia-smi not found: this is not a GPU machine", 2)
    header = run([smi])
    if header.returncode != 0:
        stop(f"nvidia-smi failed: {(header.stdout or header.stderr).strip()}", 2)
    fields = "index,name,driver_version,compute_cap"
    query = run([smi, f"--query-gpu={fields}", "--format=csv,noheader"])
    if query.returncode != 0:  # drivers before ~R510 cannot report compute_cap
        fields = "index,name,driver_version"
        query = run([smi, f"--query-gpu={fields}", "--format=csv,noheader"])
    return parse_nvidia_smi(header.stdout, query.stdout)


def parse_nvidia_smi(header: str, query: str) -> dict[str, Any]:
    """The driver, CUDA version and GPUs from ``nvidia-smi`` (or ``-q``) and a CSV query."""
    cuda = re.search(r"CUDA Version\s*:\s*([0-9.]+)", header)
    gpus = []
    driver = None
    for line in query.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        index, name, driver = parts[:3]
        cc = parts[3] if len(parts) > 3 else None
        gpus.append({"index": int(index), "name": name, "compute_capability": cc})
    return {"driver": driver, "cuda": cuda.group(1) if cuda else None, "gpus": gpus}


def torch_facts(python: str) -> dict[str, Any] | None:
    """What torch reports in ``python``'s environment; ``None`` when torch is not installed."""
    done = run([python, "-c", TORCH_PROBE])
    if done.returncode != 0:
        if "No module named 'torch'" in done.stderr:
            return None
        stop(f"the torch probe failed: {done.stderr.strip()[-400:]}", 1)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def doctor(python: str) -> tuple[dict[str, Any], str]:
    """``gpu-devbox doctor --json`` from this interpreter, probing ``python`` too.

    Returns the report and the name of the environment that is ``python``.
    """
    argv = [sys.executable, "-m", "gpu_devbox", "doctor", "--json", "--backend", "nvml"]
    env = dict(os.environ)
    name = "server"
    with tempfile.TemporaryDirectory() as jupyter_path:
        if python != sys.executable:
            folder = os.path.join(jupyter_path, "kernels", "doctor-check")
            os.makedirs(folder)
            spec = {"argv": [python, "-m", "ipykernel_launcher"], "display_name": "doctor-check"}
            with open(os.path.join(folder, "kernel.json"), "w", encoding="utf-8") as handle:
                json.dump(spec, handle)
            env["JUPYTER_PATH"] = jupyter_path
            name = "kernel:doctor-check"
        else:
            argv.append("--no-kernelspecs")
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=600, check=False, env=env
        )
    if done.returncode not in (0, 1):
        stop(f"gpu-devbox doctor failed: {done.stderr.strip()}", 1)
    report: dict[str, Any] = json.loads(done.stdout)
    return report, name


def compare(
    report: dict[str, Any], name: str, smi: dict[str, Any], torch: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """One row per compared value: ``{"what", "doctor", "other", "source", "agree"}``."""
    facts = report["facts"]
    nvml = facts["nvml"]
    rows = []

    def row(what: str, ours: Any, theirs: Any, source: str) -> None:
        rows.append(
            {
                "what": what,
                "doctor": ours,
                "other": theirs,
                "source": source,
                "agree": ours == theirs,
            }
        )

    row("driver version", nvml.get("driver_version"), smi["driver"], "nvidia-smi")
    row("driver CUDA version", nvml.get("cuda_driver_version"), smi["cuda"], "nvidia-smi")
    row("GPU count", nvml.get("gpu_count"), len(smi["gpus"]), "nvidia-smi")
    by_index = {g["index"]: g for g in smi["gpus"]}
    for gpu in nvml.get("gpus") or []:
        theirs = by_index.get(gpu["index"], {})
        row(f"GPU {gpu['index']} name", gpu["name"], theirs.get("name"), "nvidia-smi")
        if theirs.get("compute_capability") is not None:
            cc = theirs["compute_capability"]
            row(
                f"GPU {gpu['index']} compute capability",
                gpu["compute_capability"],
                cc,
                "nvidia-smi",
            )
    environment = next((e for e in facts["environments"] if e["name"] == name), {})
    probed = environment.get("torch")
    if torch is None:
        row("torch installed", probed is not None, False, "python -c 'import torch'")
    else:
        probed = probed or {}
        row("torch version", probed.get("version"), torch["version"], "torch")
        row("torch.version.cuda", probed.get("cuda"), torch["cuda"], "torch")
        row("torch.cuda.is_available()", probed.get("is_available"), torch["is_available"], "torch")
        if torch["devices"]:
            row(
                "torch device capabilities",
                sorted(d["capability"] for d in probed.get("devices") or []),
                sorted(d["capability"] for d in torch["devices"]),
                "torch",
            )
        label = "server" if name == "server" else "kernel doctor-check (doctor-check)"
        available = next(
            (
                c
                for c in report["checks"]
                if c["id"] == "cuda-available"
                and c.get("environment") == label
                and "torch " in c["detail"]
            ),
            None,
        )
        expected = "pass" if torch["is_available"] else "fail"
        row(
            "doctor's cuda-available check for torch",
            available["status"] if available else None,
            expected,
            "torch",
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the environment to compare")
    parser.add_argument("--output", help="also write the comparison as JSON to this file")
    args = parser.parse_args()
    smi = nvidia_smi()
    torch = torch_facts(args.python)
    report, name = doctor(args.python)
    rows = compare(report, name, smi, torch)
    for r in rows:
        mark = "ok  " if r["agree"] else "DIFF"
        print(f"{mark} {r['what']}: doctor={r['doctor']!r} {r['source']}={r['other']!r}")
    print(f"doctor overall status: {report['status']} {report['counts']}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(
                {"comparison": rows, "report": report, "nvidia_smi": smi, "torch": torch},
                handle,
                indent=1,
            )
    bad = [r for r in rows if not r["agree"]]
    print("all agree" if not bad else f"{len(bad)} disagreement(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
