"""A run's state from the worker's protocol, on the GPU path this machine cannot execute: the
lines a torch worker prints on an H100 become a document with datasheet comparisons, and the
CLI's report shows it."""

from __future__ import annotations

import json

from gpu_devbox.bench.measure import base_record
from gpu_devbox.bench.peaks import load_table
from gpu_devbox.bench.run import DeviceTarget, Run, RunRequest
from gpu_devbox.cli.bench_report import format_value, render_report

H100 = DeviceTarget(
    index=1,
    uuid="GPU-29b8a7a4-a578-6140-8ee1-527f74f50001",
    name="NVIDIA H100 80GB HBM3",
    compute_capability="9.0",
    memory_free=84_000_000_000,
    driver_version="580.159.04",
)


def line(event: str, **data: object) -> bytes:
    return json.dumps({"event": event, **data}).encode() + b"\n"


def measured(step: str, value: float) -> dict[str, object]:
    record = base_record(step, "device_events")
    record.update(
        value=value,
        spread={"min": value * 0.98, "q1": value * 0.99, "q3": value * 1.01, "max": value * 1.02},
        warmup=3,
        repeats=10,
    )
    return record


def h100_run(bf16: float) -> Run:
    run = Run("abc", RunRequest("quick", targets=(H100,)), timeout=60)
    run.started = run.created
    table = load_table()
    lines = [
        line(
            "hello",
            backend="torch",
            kind="gpu",
            timer="device_events",
            versions={"python": "3.12.3", "torch": "2.11.0+cu130", "cuda_runtime": "13.0"},
            pid=123,
            suite="quick",
            devices=1,
            total=3,
        ),
        b"some library printed this on stdout\n",
        line(
            "device",
            device={"ordinal": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
            sizes={"matmul_n": 8192, "copy_bytes": 1 << 30, "transfer_bytes": 1 << 28},
        ),
        line("step", index=0, total=3, device=0, id="matmul_bf16", label="matmul bf16"),
        line("measurement", device=0, measurement=measured("matmul_bf16", bf16)),
        line("step", index=1, total=3, device=0, id="memory_copy", label="memory copy"),
        line("measurement", device=0, measurement=measured("memory_copy", 3024e9)),
        line("step", index=2, total=3, device=0, id="launch_latency", label="launch"),
        line("measurement", device=0, measurement=measured("launch_latency", 6.2e-6)),
        line("done"),
    ]
    published = [event for raw in lines for event in run.handle_line(raw, table)]
    assert [kind for kind, _ in published] == [
        "progress",
        "step",
        "measurement",
        "step",
        "measurement",
        "step",
        "measurement",
    ]
    run.finish(0)
    return run


def test_a_healthy_h100_run_reads_as_such() -> None:
    document = h100_run(797e12).document()
    assert document["state"] == "succeeded"
    assert document["environment"]["backend"] == "torch"
    assert document["environment"]["driver_version"] == "580.159.04"
    [device] = document["devices"]
    assert device["index"] == 1
    assert device["uuid"] == H100.uuid
    assert device["datasheet"]["model"] == "H100 SXM"
    assert "nvidia.com" in device["datasheet"]["source"]
    bf16, copy, launch = device["measurements"]
    assert bf16["peak"] == 989.5e12
    assert bf16["percent_of_peak"] == 80.55
    assert copy["percent_of_peak"] == 90.27
    assert launch["peak"] is None
    assert document["flagged"] == 0
    assert document["progress"]["fraction"] == 1.0
    # The document is plain JSON (no private fields, no NaN).
    json.dumps(document, allow_nan=False)
    assert "_row" not in device

    report = render_report(document)
    assert "GPU 1 · NVIDIA H100 80GB HBM3 · driver 580.159.04 · datasheet: H100 SXM" in report
    assert "torch 2.11.0+cu130, CUDA 13.0" in report
    row = next(r for r in report.splitlines() if "matmul bf16" in r)
    for text in ("797 TFLOP/s", "989.5 TFLOP/s", "81%", "781.1 TFLOP/s - 812.9 TFLOP/s"):
        assert text in row
    assert "6.2 µs" in report
    assert "far below" not in report


def test_a_throttled_h100_is_flagged_in_the_document_and_the_report() -> None:
    document = h100_run(400e12).document()
    [device] = document["devices"]
    assert device["measurements"][0]["flag"] == "below_expected"
    assert document["flagged"] == 1
    report = render_report(document)
    flagged = next(r for r in report.splitlines() if "matmul bf16" in r)
    assert flagged.startswith("!")
    assert "1 figure(s) far below what this GPU model normally reaches" in report


def test_noise_on_stdout_is_kept_for_the_failure_message() -> None:
    run = Run("abc", RunRequest("quick"), timeout=60)
    assert run.handle_line(b"not json at all\n", load_table()) == []
    assert run.handle_line(b"[1, 2]\n", load_table()) == []
    run.finish(5)
    document = run.document()
    assert document["state"] == "failed"
    assert document["error"] == {
        "code": "crashed",
        "message": "the worker exited with status 5: stdout: not json at all",
    }


def test_values_are_shown_with_the_units_a_person_reads() -> None:
    assert format_value(797.3e12, "FLOP/s") == "797.3 TFLOP/s"
    assert format_value(44.76e9, "FLOP/s") == "44.76 GFLOP/s"
    assert format_value(3024e9, "B/s") == "3.024 TB/s"
    assert format_value(53.2e9, "B/s") == "53.2 GB/s"
    assert format_value(6.2e-6, "s") == "6.2 µs"
    assert format_value(0.0123, "s") == "12.3 ms"
    assert format_value(None, "s") == "-"
