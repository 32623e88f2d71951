"""The ``gpu-devbox`` command line.

Each subcommand lives in its own module with two functions, ``add_arguments(parser)`` and
``run(args) -> int``. Bad input exits with status 2 and a single line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from gpu_devbox._version import __version__

#: Subcommand name -> (module, one-line help). Modules are imported when the parser is built
#: and must keep their heavy imports inside ``run``.
COMMANDS: dict[str, tuple[str, str]] = {
    "metrics": ("gpu_devbox.cli.metrics", "print live GPU metrics (NVML)"),
    "bench": ("gpu_devbox.cli.bench", "benchmark a GPU against its datasheet peaks"),
    "doctor": ("gpu_devbox.cli.doctor", "check driver, CUDA, frameworks and GPUs fit together"),
    "images": (
        "gpu_devbox.cli.images",
        "build matrix, tags, bake file, locks, sizes and audit of the images",
    ),
    "profiles": (
        "gpu_devbox.cli.profiles",
        "show the profiles a cluster can serve (spawner dry run)",
    ),
    "config": (
        "gpu_devbox.cli.config",
        "list every c.GPUDevbox option of the server extension, with its help",
    ),
}


class CliError(Exception):
    """Bad input: printed as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> OneLineParser:
    """The full parser with every subcommand."""
    parser = OneLineParser(
        prog="gpu-devbox",
        description="GPU metrics, CUDA checks and GPU benchmarks for Jupyter.",
    )
    parser.add_argument("--version", action="version", version=f"gpu-devbox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args._module.run(args)
    except CliError as exc:
        print(f"gpu-devbox {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`gpu-devbox config | head`): stop quietly, as a program that
        # SIGPIPE ended would, and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
