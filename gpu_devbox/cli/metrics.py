"""Print the GPUs' live metrics, as the server's ``GET gpus`` reports them.

``--fields`` prints instead what gpu-devbox measures: every field with its unit, NVML call,
cadence and Prometheus name (``--markdown`` writes docs/metric-fields.md).

``--server URL --token TOKEN`` reads a running server's ``GET gpus`` instead, where each GPU
process carries its owner: the kernel (notebook), terminal or process of that server holding it.

Exit status: 0 when metrics were printed, 1 when NVML is unavailable (the reason and the remedy
are printed), 2 on bad input (including a server that cannot be reached or refuses the token).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from gpu_devbox.cli.common import (
    add_backend_option,
    bounded_float,
    bounded_int,
    chosen_backend,
    format_bytes,
    format_memory_pair,
    print_json,
)

#: Seconds between the two readings of a one-shot run, so PCIe rates can be computed.
RATE_WINDOW = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``gpu-devbox metrics``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--watch",
        metavar="SECONDS",
        type=bounded_float(0.1, 3600),
        help="refresh every SECONDS until interrupted (JSON: one document per line)",
    )
    add_backend_option(parser)
    parser.add_argument(
        "--fields",
        action="store_true",
        help="list the fields gpu-devbox measures (unit, NVML call, cadence, Prometheus name) "
        "instead of measuring them",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="with --fields: print them as the Markdown reference in the docs",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="read a running Jupyter server's GPUs instead of NVML (its base URL, e.g. "
        "http://127.0.0.1:8888/): shows which kernel, terminal or process holds each GPU process",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="with --server: the server's token (default: $JUPYTER_TOKEN)",
    )
    parser.add_argument(
        "--simulated-gpus",
        metavar="N",
        type=bounded_int(0, 64),
        default=2,
        help="number of GPUs the simulated backend invents (default 2)",
    )


def run(args: argparse.Namespace) -> int:
    """Sample the GPUs and print them (or, with ``--fields``, what is measured)."""
    if args.fields or args.markdown:
        return _fields(args)
    if args.server is not None:
        return _remote(args)
    if args.token is not None:
        from gpu_devbox.cli import CliError

        raise CliError("--token goes with --server")
    from gpu_devbox._version import __version__
    from gpu_devbox.gpus import Sampler, SamplerConfig
    from gpu_devbox.gpus.backends import BackendSpec, sample_once

    spec = BackendSpec(name=chosen_backend(args), simulated_gpus=args.simulated_gpus)
    if args.watch is None:
        snapshot, status = sample_once(spec, rate_window=RATE_WINDOW)
        return _show(snapshot, status, args.json)
    interval = args.watch
    sampler = Sampler(
        spec.make_adapter(),
        simulated=spec.simulated,
        config=SamplerConfig(interval=interval, slow_interval=interval, history_seconds=interval),
        version=__version__,
    )
    try:
        sampler.tick()
        while True:
            started = time.monotonic()
            if not args.json and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            _show(sampler.tick(), sampler.status(), args.json)
            time.sleep(max(0.0, args.watch - (time.monotonic() - started)))
    finally:
        sampler.stop()


def _remote(args: argparse.Namespace) -> int:
    from gpu_devbox.cli.remote import Server

    server = Server(args.server, args.token or os.environ.get("JUPYTER_TOKEN"))
    while True:
        started = time.monotonic()
        status, document = server.sample()
        if args.json:
            print_json({"status": status, **document})
        else:
            if args.watch is not None and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            sys.stdout.write(render_table(status, list(document["gpus"])))
            sys.stdout.flush()
        if args.watch is None:
            return 0 if status["nvml"]["available"] else 1
        time.sleep(max(0.0, args.watch - (time.monotonic() - started)))


def _show(snapshot: Any, status: dict[str, Any], as_json: bool) -> int:
    nvml = status["nvml"]
    if as_json:
        print_json({"status": status, "timestamp": snapshot.timestamp, "gpus": snapshot.gpus})
    else:
        sys.stdout.write(render_table(status, list(snapshot.gpus)))
        sys.stdout.flush()
    return 0 if nvml["available"] else 1


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _num(value: float | None, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def render_table(status: dict[str, Any], gpus: list[dict[str, Any]]) -> str:
    """The human-readable report: a header line, one row per GPU, then MIG and processes."""
    nvml = status["nvml"]
    lines = []
    if not nvml["available"]:
        lines.append(f"NVML unavailable: {nvml['reason']}")
        lines.append(f"What to do: {nvml['remedy']}")
        return "\n".join(lines) + "\n"
    head = f"driver {nvml['driver_version']} · CUDA {nvml['cuda_driver_version']}"
    head += f" · {status['visible_gpu_count']} of {status['gpu_count']} GPU(s) visible"
    if status["simulated"]:
        head += " · SIMULATED"
    lines.append(head)
    if nvml["reason"]:
        lines.append(f"{nvml['reason']} {nvml['remedy']}")
    columns = (
        "GPU",
        "NAME",
        "UTIL",
        "MEMORY USED/TOTAL",
        "TEMP",
        "POWER/LIMIT",
        "SM",
        "PCIe TX/RX",
    )
    rows = [columns]
    for gpu in gpus:
        memory, power, pcie = gpu["memory"], gpu["power"], gpu["pcie"]
        rows.append(
            (
                str(gpu["index"]),
                gpu["name"],
                _pct(gpu["utilization"]["gpu"]),
                format_memory_pair(memory["used"], memory["total"]),
                _num(gpu["temperature"]["gpu"], "°C"),
                f"{_num(power['usage'], '')} / {_num(power['limit'], ' W')}",
                _num(gpu["clocks"]["sm"], " MHz"),
                f"{format_bytes(pcie['tx'], '/s')} / {format_bytes(pcie['rx'], '/s')}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    for gpu in gpus:
        reason = gpu.get("reason")
        if reason:
            lines.append(f"  GPU {gpu['index']} unreadable: {reason['message']}")
            lines.append(f"  What to do: {reason['remedy']}")
        lines.extend(
            f"  GPU {gpu['index']} MIG {inst['profile']} (GI {inst['gpu_instance_id']}): "
            f"{format_memory_pair(inst['memory']['used'], inst['memory']['total'])}"
            for inst in gpu["mig"]["instances"]
        )
        lines.extend(_process_line(gpu["index"], proc) for proc in gpu["processes"] or [])
    return "\n".join(lines) + "\n"


def _process_line(index: int, process: dict[str, Any]) -> str:
    """``GPU 0 pid 4010: 45.4 GiB``, with the local PID and owner where the server knows them."""
    from gpu_devbox.cli.remote import describe_owner

    pid = f"pid {process['pid']}"
    local = process.get("local_pid")
    if local is not None and local != process["pid"]:
        pid += f" (here {local})"
    line = f"  GPU {index} {pid}: {format_bytes(process['used_memory'])}"
    owner = describe_owner(process)
    return f"{line} · {owner}" if owner else line


# ---------------------------------------------------------------------------------------------
# --fields: the field table, for people
# ---------------------------------------------------------------------------------------------
_CADENCES = {
    "static": "once, when NVML is opened",
    "fast": "every `c.GPUDevbox.interval` seconds",
    "slow": "every `c.GPUDevbox.slow_interval` seconds",
}


def _fields(args: argparse.Namespace) -> int:
    from gpu_devbox.cli import CliError

    if not args.fields:
        raise CliError("--markdown lists the fields: use it with --fields")
    if args.watch is not None or (args.json and args.markdown):
        raise CliError("--fields takes either --json or --markdown, and no --watch")
    if args.markdown:
        sys.stdout.write(fields_markdown())
    elif args.json:
        print_json(fields_json())
    else:
        sys.stdout.write(fields_table())
    return 0


def fields_json() -> list[dict[str, Any]]:
    """Every field of the table as JSON."""
    from gpu_devbox.gpus import fields

    return [
        {
            "field": f.path,
            "unit": f.unit,
            "type": f.type,
            "nvml": f.nvml.call,
            "cadence": f.cadence.value,
            "charted": f.charted,
            "description": f.description,
            "prometheus": f.prometheus.name if f.prometheus else None,
            "prometheus_type": ("counter" if f.prometheus.counter else "gauge")
            if f.prometheus
            else None,
            "dcgm": f.dcgm.name if f.dcgm else None,
        }
        for f in fields.FIELDS
    ]


def fields_table() -> str:
    """The fields as a plain-text table."""
    rows = [("FIELD", "UNIT", "CADENCE", "CHARTED", "NVML", "PROMETHEUS (gpu_devbox_...)")]
    rows += [
        (
            f["field"],
            f["unit"],
            f["cadence"],
            "yes" if f["charted"] else "no",
            f["nvml"],
            f["prometheus"] or "-",
        )
        for f in fields_json()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in rows
    )


def fields_markdown() -> str:
    """docs/metric-fields.md: the field reference, generated from the field table."""
    from gpu_devbox.gpus import fields

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = [
        (
            "<!-- Generated by `gpu-devbox metrics --fields --markdown > docs/metric-fields.md` "
            "from the field table (gpu_devbox/gpus/fields.py). Edit the table, not this file. -->"
        ),
        "",
        "# GPU metric fields",
        "",
        (
            "Every measured value of a GPU in `GET gpus`, the push stream and `gpu-devbox "
            "metrics --json`, with its unit and where it comes from. A value a GPU cannot report "
            "is `null`. How sampling works, which GPUs are shown and what `null` means: "
            "[metrics.md](metrics.md)."
        ),
        "",
        "Cadence: "
        + "; ".join(f"`{c.value}` {_CADENCES[c.value]}" for c in fields.Cadence)
        + ". Charted fields are kept in the server's history (`GET gpus/history`) and drawn "
        "by the panel.",
        "",
        "| field | unit | type | NVML | cadence | charted | meaning |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    out += [
        f"| `{f.path}` | {f.unit} | {f.type} | `{f.nvml.call}` | {f.cadence.value} | "
        f"{'yes' if f.charted else 'no'} | {cell(f.description)} |"
        for f in fields.FIELDS
    ]
    out += [
        "",
        "## Prometheus",
        "",
        (
            "On the server's `/metrics`, per GPU, with the labels `gpu` (NVML index), `uuid` and "
            "`model`. The prefix is `c.GPUDevbox.prometheus_prefix` (`gpu_devbox`). With "
            "`c.GPUDevbox.prometheus_dcgm_names = True` the same values are also exported under "
            "dcgm-exporter's names and units, with its labels (`gpu`, `UUID`, `device`, "
            "`modelName`, `Hostname`)."
        ),
        "",
        "| metric | type | unit | field | dcgm-exporter name |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in fields.FIELDS:
        if f.prometheus is None:
            continue
        metric = f"gpu_devbox_{f.prometheus.name}"
        kind = "counter" if f.prometheus.counter else "gauge"
        if f.prometheus.counter:
            metric += "_total"
        dcgm = f"`{f.dcgm.name}`: {cell(f.dcgm.help)}" if f.dcgm else ""
        out.append(
            f"| `{metric}` | {kind} | {f.prometheus.unit} | `{f.path}` | {dcgm} |".replace(
                " |  |", " | |"
            )
        )
    return "\n".join(out) + "\n"
