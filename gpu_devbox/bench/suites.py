"""What a benchmark measures, in which suite, at which sizes: pure functions and tables.

Both sides use this module: the server checks a request with it (a 400 before anything starts)
and the worker derives its sizes from it once it knows how much memory is free. Nothing here
touches a GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from gpu_devbox.quote import brief

Kind = Literal["gpu", "cpu"]

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10


@dataclasses.dataclass(frozen=True)
class MeasurementSpec:
    """One figure a benchmark reports."""

    id: str
    #: ``matmul``, ``memory_bandwidth``, ``transfer`` or ``latency``.
    kind: str
    label: str
    #: Base units: ``FLOP/s``, ``B/s`` or ``s``.
    unit: str
    dtype: str | None = None
    #: For transfers: ``pinned`` or ``pageable`` host memory.
    memory: str | None = None
    #: For transfers: ``h2d`` (host to device) or ``d2h``.
    direction: str | None = None


MEASUREMENTS: dict[str, MeasurementSpec] = {
    spec.id: spec
    for spec in (
        MeasurementSpec("matmul_fp32", "matmul", "matmul fp32 (no tensor cores)", "FLOP/s", "fp32"),
        MeasurementSpec("matmul_tf32", "matmul", "matmul tf32 (tensor cores)", "FLOP/s", "tf32"),
        MeasurementSpec("matmul_fp16", "matmul", "matmul fp16 (tensor cores)", "FLOP/s", "fp16"),
        MeasurementSpec("matmul_bf16", "matmul", "matmul bf16 (tensor cores)", "FLOP/s", "bf16"),
        MeasurementSpec("matmul_fp8", "matmul", "matmul fp8 e4m3 (tensor cores)", "FLOP/s", "fp8"),
        MeasurementSpec("matmul_fp64", "matmul", "matmul fp64", "FLOP/s", "fp64"),
        MeasurementSpec("memory_copy", "memory_bandwidth", "memory copy (read + write)", "B/s"),
        MeasurementSpec(
            "h2d_pinned", "transfer", "host to device, pinned", "B/s", None, "pinned", "h2d"
        ),
        MeasurementSpec(
            "d2h_pinned", "transfer", "device to host, pinned", "B/s", None, "pinned", "d2h"
        ),
        MeasurementSpec(
            "h2d_pageable", "transfer", "host to device, pageable", "B/s", None, "pageable", "h2d"
        ),
        MeasurementSpec(
            "d2h_pageable", "transfer", "device to host, pageable", "B/s", None, "pageable", "d2h"
        ),
        MeasurementSpec("launch_latency", "latency", "kernel launch (back to back)", "s"),
    )
}

#: Bytes per element of each matmul dtype (fp8 stores 1 byte, its bf16 output 2: counted as 4).
ITEMSIZE = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 2, "fp64": 8}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Problem sizes: an ``n x n x n`` matmul, bytes per copy, bytes per host transfer."""

    matmul_n: int
    copy_bytes: int
    transfer_bytes: int

    def as_dict(self) -> dict[str, int]:
        """The sizes as a JSON object."""
        return dataclasses.asdict(self)


#: What a caller may ask for, whatever memory is free: anything outside is absurd (a 400).
SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "matmul_n": (16, 65_536),
    "copy_bytes": (4 * KiB, 1 << 40),
    "transfer_bytes": (4 * KiB, 1 << 40),
}


@dataclasses.dataclass(frozen=True)
class SuiteSpec:
    """A named set of measurements with its repeat counts and default (largest) sizes."""

    name: str
    description: str
    steps: Mapping[Kind, tuple[str, ...]]
    warmup: Mapping[Kind, int]
    repeats: Mapping[Kind, int]
    sizes: Mapping[Kind, Sizes]
    #: Kernel launches timed together for one latency sample.
    launches: int
    #: Seconds a run of this suite may take per device before it is stopped (the default of
    #: ``c.GPUDevbox.benchmark_timeouts``).
    timeout: float


GPU_STEPS = (
    "matmul_fp32",
    "matmul_tf32",
    "matmul_fp16",
    "matmul_bf16",
    "matmul_fp8",
    "memory_copy",
    "h2d_pinned",
    "d2h_pinned",
    "h2d_pageable",
    "d2h_pageable",
    "launch_latency",
)
CPU_STEPS = ("matmul_fp32", "matmul_fp64", "memory_copy")

SUITES: dict[str, SuiteSpec] = {
    "quick": SuiteSpec(
        name="quick",
        description="every figure once, in about 5 s on an H100 (process start included)",
        steps={"gpu": GPU_STEPS, "cpu": CPU_STEPS},
        warmup={"gpu": 3, "cpu": 1},
        repeats={"gpu": 10, "cpu": 5},
        sizes={
            "gpu": Sizes(matmul_n=8192, copy_bytes=1 * GiB, transfer_bytes=256 * MiB),
            "cpu": Sizes(matmul_n=1024, copy_bytes=128 * MiB, transfer_bytes=0),
        },
        launches=200,
        timeout=60.0,
    ),
    "full": SuiteSpec(
        name="full",
        description="the same figures with more repeats and larger copies (about 30 s per GPU)",
        steps={"gpu": GPU_STEPS, "cpu": CPU_STEPS},
        warmup={"gpu": 10, "cpu": 2},
        repeats={"gpu": 50, "cpu": 10},
        sizes={
            "gpu": Sizes(matmul_n=8192, copy_bytes=4 * GiB, transfer_bytes=1 * GiB),
            "cpu": Sizes(matmul_n=2048, copy_bytes=512 * MiB, transfer_bytes=0),
        },
        launches=1000,
        timeout=600.0,
    ),
}

#: The smallest matmul the default sizes shrink to before a step is given up.
MIN_DEFAULT_MATMUL_N = 256
#: Default sizes are rounded down to these steps.
MATMUL_N_STEP = 256
BYTES_STEP = MiB


class SuiteError(ValueError):
    """A request that cannot run: unknown suite, absurd size, or more memory than allowed."""


def parse_sizes(raw: Any) -> dict[str, int]:
    """Validate a ``sizes`` object from a request (keys from :data:`SIZE_LIMITS`, integers).

    Raises:
        SuiteError: the object, a key or a value is not acceptable; the message names it.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SuiteError(f"sizes must be an object, not {type(raw).__name__}")
    sizes: dict[str, int] = {}
    for key, value in raw.items():
        if key not in SIZE_LIMITS:
            raise SuiteError(f"unknown size {brief(key)}; allowed: {', '.join(SIZE_LIMITS)}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise SuiteError(f"sizes.{key} must be an integer, not {brief(value)}")
        low, high = SIZE_LIMITS[key]
        if not low <= value <= high:
            raise SuiteError(
                f"sizes.{key}={brief(value)} is outside the allowed range {low} to {high}"
            )
        sizes[key] = value
    return sizes


def suite(name: Any) -> SuiteSpec:
    """The suite called ``name``.

    Raises:
        SuiteError: no such suite.
    """
    if not isinstance(name, str) or name not in SUITES:
        raise SuiteError(f"unknown suite {brief(name)}; choose one of: {', '.join(SUITES)}")
    return SUITES[name]


def matmul_bytes(n: int, kind: Kind, steps: tuple[str, ...]) -> int:
    """Memory one matmul step needs: A, B, C and a scratch matrix of the widest dtype."""
    widest = max(
        (ITEMSIZE[MEASUREMENTS[s].dtype or "fp32"] for s in steps if s.startswith("matmul_")),
        default=ITEMSIZE["fp64" if kind == "cpu" else "fp32"],
    )
    return 4 * n * n * widest


def suite_sizes(
    spec: SuiteSpec,
    kind: Kind,
    *,
    device_budget: int,
    host_budget: int,
    requested: Mapping[str, int] | None = None,
) -> Sizes:
    """The sizes a run uses: requested ones when they fit, else the suite's shrunk to fit.

    Args:
        spec: the suite.
        kind: ``gpu`` or ``cpu`` (a CPU run has only host memory: ``device_budget`` is ignored).
        device_budget: bytes of device memory the run may use (free memory x allowed fraction).
        host_budget: bytes of host memory the run may use.
        requested: explicit sizes (already range-checked by :func:`parse_sizes`).

    Raises:
        SuiteError: a requested size needs more memory than the budget, or the budget is too
            small for even the smallest default.
    """
    requested = dict(requested or {})
    steps = spec.steps[kind]
    default = spec.sizes[kind]
    memory = host_budget if kind == "cpu" else device_budget
    where = "host memory" if kind == "cpu" else "GPU memory"

    per_n = matmul_bytes(1, kind, steps)
    if "matmul_n" in requested:
        n = requested["matmul_n"]
        if per_n * n * n > memory:
            raise SuiteError(
                f"sizes.matmul_n={n} needs {_gib(per_n * n * n)} of {where}; "
                f"the benchmark may use {_gib(memory)}"
            )
    else:
        n = default.matmul_n
        while n > MIN_DEFAULT_MATMUL_N and per_n * n * n > memory:
            n -= MATMUL_N_STEP
        if per_n * n * n > memory:
            raise SuiteError(
                f"not enough free {where} for even a {n}x{n} matmul "
                f"({_gib(per_n * n * n)} needed, {_gib(memory)} allowed)"
            )

    copy = _fit(requested, "copy_bytes", default.copy_bytes, memory // 2, where, factor=2)
    transfer = 0
    if any(MEASUREMENTS[s].kind == "transfer" for s in steps):
        transfer = _fit(
            requested,
            "transfer_bytes",
            default.transfer_bytes,
            min(memory, host_budget),
            "host and GPU memory",
            factor=1,
        )
    return Sizes(matmul_n=n, copy_bytes=copy, transfer_bytes=transfer)


def _fit(
    requested: Mapping[str, int], key: str, default: int, limit: int, where: str, *, factor: int
) -> int:
    if key in requested:
        value = requested[key]
        if value > limit:
            raise SuiteError(
                f"sizes.{key}={value} needs {_gib(factor * value)} of {where}; "
                f"the benchmark may use {_gib(factor * limit)}"
            )
        return value
    value = min(default, limit // BYTES_STEP * BYTES_STEP)
    if value < BYTES_STEP:
        raise SuiteError(f"not enough free {where} for a {key.split('_')[0]} of 1 MiB")
    return value


def _gib(value: float) -> str:
    return f"{value / GiB:.2f} GiB"
