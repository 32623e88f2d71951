"""Datasheet peaks per GPU model, matched from NVML names, and measured-vs-peak judgements.

The table is ``peaks.json`` in this package: one row per model, each citing its source. A GPU
whose name matches no row is an *unknown model*: its figures are shown without a peak, never
compared with a guessed one.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import re
from typing import Any

from gpu_devbox.bench.suites import MEASUREMENTS

#: A figure is flagged when it is below this fraction of what the model normally reaches
#: (``typical fraction x datasheet peak``): more than 30% short. A healthy GPU varies by a few
#: percent between runs and up to ~10-15% with temperature and power capping; a throttled,
#: shared or misconfigured one (a PCIe link at x8, clocks locked low, another process on the
#: GPU) falls well below that.
FLAG_RATIO = 0.7

TERA = 1e12
GIGA = 1e9

_PREFIXES = ("NVIDIA ", "TESLA ")


def normalize_name(name: str) -> str:
    """``"NVIDIA A100-SXM4-40GB"`` -> ``"A100 SXM4 40GB"``: the form the table's patterns match."""
    text = re.sub(r"[-_/\s]+", " ", name.upper()).strip()
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if text.startswith(prefix):
                text = text[len(prefix) :].strip()
                changed = True
    return text


@dataclasses.dataclass(frozen=True)
class PeakRow:
    """One GPU model's datasheet figures, in base units (FLOP/s, bytes/s)."""

    model: str
    patterns: tuple[re.Pattern[str], ...]
    compute_capability: str | None
    memory_bandwidth: float | None
    fp32: float | None
    tensor: dict[str, float | None]
    pcie_gen: int | None
    pcie_bandwidth: float | None
    source: str
    typical: dict[str, float]

    def peak(self, measurement_id: str) -> float | None:
        """The datasheet peak a measurement is compared with (``None``: no figure)."""
        spec = MEASUREMENTS.get(measurement_id)
        if spec is None:
            return None
        if spec.kind == "matmul":
            if spec.dtype == "fp32":
                return self.fp32
            return self.tensor.get(spec.dtype or "")
        if spec.kind == "memory_bandwidth":
            return self.memory_bandwidth
        if spec.kind == "transfer":
            return self.pcie_bandwidth
        return None

    def describe(self) -> dict[str, Any]:
        """The row as reported with a result."""
        return {
            "model": self.model,
            "source": self.source,
            "pcie_gen": self.pcie_gen,
            "compute_capability": self.compute_capability,
        }


@dataclasses.dataclass(frozen=True)
class ModelMatch:
    """The outcome of looking a GPU up: its row, or why there is none."""

    row: PeakRow | None
    reason: str | None

    def describe(self) -> dict[str, Any]:
        """``{"model", "source", "pcie_gen", "compute_capability"}`` or ``{"model": null, ...}``."""
        if self.row is None:
            return {"model": None, "reason": self.reason}
        return {**self.row.describe(), "reason": None}


class PeakTable:
    """The parsed ``peaks.json``."""

    def __init__(self, document: dict[str, Any]) -> None:
        rates = document["pcie"]["x16_gb_s_per_direction"]
        self.pcie = {int(gen): float(rate) * GIGA for gen, rate in rates.items()}
        self.typical: dict[str, float] = dict(document["typical"]["fraction_of_peak"])
        self.rows = tuple(self._row(raw) for raw in document["models"])

    def _row(self, raw: dict[str, Any]) -> PeakRow:
        def scaled(value: float | None, unit: float) -> float | None:
            return None if value is None else float(value) * unit

        gen = raw.get("pcie_gen")
        return PeakRow(
            model=raw["model"],
            patterns=tuple(re.compile(p) for p in raw["names"]),
            compute_capability=raw.get("compute_capability"),
            memory_bandwidth=scaled(raw.get("memory_bandwidth_gb_s"), GIGA),
            fp32=scaled(raw.get("fp32_tflops"), TERA),
            tensor={k: scaled(v, TERA) for k, v in raw["tensor_tflops"].items()},
            pcie_gen=gen,
            pcie_bandwidth=self.pcie.get(gen) if gen is not None else None,
            source=raw["source"],
            typical={**self.typical, **raw.get("typical", {})},
        )

    def match(self, name: str | None, compute_capability: str | None = None) -> ModelMatch:
        """Find the row of the GPU called ``name`` (its NVML name).

        A MIG instance, a name no row matches, or a name that matches more than one row (a
        table error) gives no row, with the reason. When the compute capability is known it
        must agree with the row's.
        """
        if not name:
            return ModelMatch(None, "the GPU's name is unknown")
        normalized = normalize_name(name)
        if re.search(r"\bMIG\b", normalized):
            return ModelMatch(
                None, f"{name!r} is a MIG instance: datasheet peaks are for the whole GPU"
            )
        rows = [r for r in self.rows if any(p.fullmatch(normalized) for p in r.patterns)]
        if not rows:
            return ModelMatch(None, f"no datasheet figures for {name!r} (unknown model)")
        if len(rows) > 1:
            models = ", ".join(r.model for r in rows)
            return ModelMatch(None, f"{name!r} matches several models ({models})")
        row = rows[0]
        if compute_capability and row.compute_capability not in (None, compute_capability):
            return ModelMatch(
                None,
                f"{name!r} looks like {row.model} but reports compute capability "
                f"{compute_capability}, not {row.compute_capability}",
            )
        return ModelMatch(row, None)

    def annotate(self, measurement: dict[str, Any], row: PeakRow | None) -> dict[str, Any]:
        """Add ``peak``, ``percent_of_peak``, ``expected`` and ``flag`` to a measurement.

        ``expected`` is what a healthy GPU of this model normally reaches (typical fraction x
        peak); ``flag`` is ``"below_expected"`` when the value is under :data:`FLAG_RATIO` of
        it, else ``None``.
        """
        result = dict(measurement)
        value = result.get("value")
        peak = row.peak(result["id"]) if row is not None and value is not None else None
        typical = row.typical.get(result["id"]) if row is not None else None
        expected = peak * typical if peak is not None and typical is not None else None
        result["peak"] = peak
        result["percent_of_peak"] = (
            round(100.0 * value / peak, 2) if peak and value is not None else None
        )
        result["expected"] = expected
        result["flag"] = (
            "below_expected"
            if expected is not None and value is not None and value < FLAG_RATIO * expected
            else None
        )
        return result


@functools.cache
def load_table() -> PeakTable:
    """The table shipped with this package (parsed once)."""
    text = importlib.resources.files("gpu_devbox.bench").joinpath("peaks.json").read_text()
    return PeakTable(json.loads(text))
