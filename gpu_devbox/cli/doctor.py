"""Check that this machine's NVIDIA driver, the image's CUDA, the frameworks' CUDA builds and
the GPUs fit together, and say how to fix what does not.

Gathers the facts (NVML, the container, and every Python environment: the current one and each
kernelspec, probed in subprocesses), judges them and prints a report grouped by status with the
remedies. ``--facts FILE`` judges a facts file instead (e.g. another machine's
``--dump-facts``).

Exit status: 0 when no check fails, 1 when a check fails, 2 on bad input (the facts file is
unreadable or invalid: one line naming the bad field).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from gpu_devbox.cli import CliError
from gpu_devbox.cli.common import add_backend_option, bounded_float, chosen_backend, print_json

ORDER = ("fail", "warn", "pass", "skip")
HEADINGS = {"fail": "FAILED", "warn": "WARNINGS", "pass": "PASSED", "skip": "SKIPPED"}
MARKS = {"fail": "x", "warn": "!", "pass": "+", "skip": "-"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``gpu-devbox doctor``."""
    parser.add_argument("--json", action="store_true", help="print the checks and facts as JSON")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--facts",
        metavar="FILE",
        help="judge this facts file (from --dump-facts; '-' reads stdin) instead of this machine",
    )
    source.add_argument(
        "--dump-facts",
        metavar="FILE",
        help="also write the gathered facts as JSON to FILE ('-' for stdout, then no report)",
    )
    add_backend_option(parser)
    parser.add_argument(
        "--probe-timeout",
        metavar="SECONDS",
        type=bounded_float(1, 600),
        default=60.0,
        help="seconds each Python environment may take to report its frameworks (default 60)",
    )
    parser.add_argument(
        "--no-kernelspecs",
        action="store_true",
        help="probe only this Python, not every kernelspec's",
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also list passed and skipped checks in full, with their sources",
    )


def read_facts(path: str) -> dict[str, Any]:
    """Load and validate a facts file; :class:`CliError` (one line) when it is bad."""
    from gpu_devbox.cuda.model import FactsError, validate_facts

    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise CliError(f"cannot read facts file {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"facts file {name} is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CliError(f"facts file {name} is not JSON: {exc}") from None
    try:
        validate_facts(document)
    except FactsError as exc:
        raise CliError(f"facts file {name} is invalid: {exc}") from None
    assert isinstance(document, dict)
    return document


def gather(args: argparse.Namespace) -> dict[str, Any]:
    """Gather this machine's facts."""
    import asyncio

    from gpu_devbox.cuda import environments, facts

    nvml = facts.read_nvml(chosen_backend(args))
    container = facts.gather_container()
    specs = None if args.no_kernelspecs else environments.find_kernelspecs()
    envs = asyncio.run(environments.gather_environments(specs, timeout=args.probe_timeout))
    return facts.assemble(nvml, container, envs)


def _write(path: str, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CliError(f"cannot write facts to {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Gather or read the facts, judge them, print the report."""
    from gpu_devbox.cuda.checks import checks_document

    document = read_facts(args.facts) if args.facts else gather(args)
    if args.dump_facts:
        _write(args.dump_facts, document)
    report = checks_document(document)
    if args.dump_facts == "-":
        pass  # stdout carries the facts alone
    elif args.json:
        print_json(report)
    else:
        sys.stdout.write(render(report, verbose=args.verbose))
        sys.stdout.flush()
    return 1 if report["status"] == "fail" else 0


def _wrap(label: str, text: str) -> list[str]:
    return textwrap.wrap(
        text, width=96, initial_indent=f"      {label}", subsequent_indent=" " * (6 + len(label))
    )


def headline(facts: dict[str, Any]) -> str:
    """One line: driver, CUDA, GPUs, image CUDA, environments."""
    nvml = facts["nvml"]
    parts = []
    if nvml.get("available"):
        parts.append(
            f"driver {nvml.get('driver_version')} (CUDA {nvml.get('cuda_driver_version')})"
        )
        gpus = nvml.get("gpus") or []
        names = sorted({g["name"] for g in gpus})
        parts.append(f"{len(gpus)} GPU(s)" + (f": {', '.join(names)}" if names else ""))
        if nvml.get("simulated"):
            parts.append("SIMULATED")
    else:
        parts.append("NVML unavailable")
    cuda = (facts["container"].get("env") or {}).get("CUDA_VERSION")
    if cuda:
        parts.append(f"image CUDA {cuda}")
    parts.append(f"{len(facts['environments'])} Python environment(s)")
    return " | ".join(parts)


def render(report: dict[str, Any], *, verbose: bool = False) -> str:
    """The human-readable report, grouped by status, failures first."""
    lines = [f"gpu-devbox doctor: {headline(report['facts'])}", ""]
    for status in ORDER:
        group = [c for c in report["checks"] if c["status"] == status]
        if not group:
            continue
        lines.append(f"{HEADINGS[status]} ({len(group)})")
        for check in group:
            where = f" [{check['environment']}]" if check.get("environment") else ""
            lines.append(f"  {MARKS[status]} {check['id']}{where}: {check['title']}")
            if status in ("fail", "warn") or verbose:
                lines.extend(_wrap("", check["detail"]))
                if check["remedy"]:
                    lines.extend(_wrap("fix: ", check["remedy"]))
                if verbose and check.get("source"):
                    lines.extend(_wrap("source: ", check["source"]))
        lines.append("")
    counts = report["counts"]
    lines.append(
        f"{counts['fail']} failed, {counts['warn']} warning(s), {counts['pass']} passed, "
        f"{counts['skip']} skipped. Facts gathered {report['gathered_at']}; "
        f"CUDA tables as of {max(report['tables_as_of'].values())}."
    )
    return "\n".join(lines) + "\n"
