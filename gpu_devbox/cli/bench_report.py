"""How ``gpu-devbox bench`` shows a run: a progress bar while it runs, a table when it is done."""

from __future__ import annotations

import shutil
import threading
from typing import IO, Any

#: Prefixes for rates, largest first (decimal, as datasheets count).
_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def format_value(value: float | None, unit: str) -> str:
    """``797.3 TFLOP/s``, ``3.02 TB/s``, ``5.8 µs``; ``-`` for none."""
    if value is None:
        return "-"
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if value >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value * 1e9:.3g} ns"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def render_report(run: dict[str, Any]) -> str:
    """The run as text: a header, then per device a table of measured / peak / % of peak."""
    env = run["environment"]
    versions = env.get("versions") or {}
    backend = env.get("backend") or "no backend"
    library = versions.get(backend or "", "")
    cuda = f", CUDA {versions['cuda_runtime']}" if versions.get("cuda_runtime") else ""
    duration = f"{run['duration']:.1f} s" if run.get("duration") is not None else "-"
    lines = [
        f"gpu-devbox bench · {run['suite']} suite · {backend} {library}{cuda} · {duration}".rstrip()
    ]
    for device in run["devices"]:
        lines.append("")
        lines.extend(_device_lines(device))
    lines.append("")
    if run["state"] == "succeeded":
        if run["flagged"]:
            lines.append(
                f"! {run['flagged']} figure(s) far below what this GPU model normally reaches "
                "(marked !): a throttled, shared or misconfigured GPU?"
            )
        lines.append(f"Run {run['id']} succeeded.")
    else:
        error = run.get("error") or {}
        lines.append(f"Run {run['id']} {run['state']}: {error.get('message', 'no reason given')}")
    return "\n".join(lines) + "\n"


def _device_lines(device: dict[str, Any]) -> list[str]:
    sheet = device.get("datasheet") or {}
    if device.get("index") is None:
        head = f"CPU · {device.get('name')}"
    else:
        head = f"GPU {device['index']} · {device.get('name')}"
        if device.get("driver_version"):
            head += f" · driver {device['driver_version']}"
    model = sheet.get("model")
    head += f" · datasheet: {model}" if model else f" · {sheet.get('reason')}"
    rows = [("", "MEASUREMENT", "MEASURED", "PEAK", "% OF PEAK", "SPREAD (MIN-MAX)")]
    notes = []
    for m in device.get("measurements", []):
        if m["status"] != "ok":
            notes.append(f"  {m['label']}: {m['status']} ({m.get('reason')})")
            continue
        spread = m.get("spread") or {}
        spread_text = "-"
        if spread:
            low, high = (format_value(spread[k], m["unit"]) for k in ("min", "max"))
            spread_text = f"{low} - {high}"
        pct = m.get("percent_of_peak")
        rows.append(
            (
                "!" if m.get("flag") else "",
                m["label"],
                format_value(m["value"], m["unit"]),
                format_value(m.get("peak"), m["unit"]),
                "-" if pct is None else f"{pct:.0f}%",
                spread_text,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = [
        " ".join(
            cell.rjust(width) if 2 <= i <= 4 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    return [head, *table, *notes]


class ProgressBar:
    """A one-line bar on a terminal, redrawn on every runner event (from the runner's thread)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._shown = False

    def update(self, event: dict[str, Any]) -> None:
        """Redraw for a runner event."""
        progress = event.get("progress") or {}
        total = progress.get("total") or 0
        done = progress.get("done") or 0
        step = progress.get("step") or {}
        label = step.get("label") or ("starting" if event.get("state") == "running" else "")
        if step.get("device") is not None:
            label += f" (GPU {step['device']})"
        columns = shutil.get_terminal_size((80, 20)).columns
        width = 24
        filled = int(width * done / total) if total else 0
        text = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total or '?'} {label}"
        with self._lock:
            self.stream.write("\r\x1b[K" + text[: max(10, columns - 1)])
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        """Remove the bar."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False
