"""Print every option of the server extension (``c.GPUDevbox.*``) with its help and default.

``jupyter server --help-all`` lists only the server's own classes: an extension's options are
loaded later, so they are not in it. This prints them in the same form, the extension's own
options first, then those it inherits from jupyter-server's ExtensionApp. Set them in
``jupyter_server_config.py`` (``c.GPUDevbox.interval = 2.0``) or on the command line
(``jupyter lab --GPUDevbox.interval=2``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``gpu-devbox config`` takes only ``--json``."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the options as a JSON list (name, option, type, default, help, inherited)",
    )


def _default(trait: Any) -> Any:
    """The default as JSON when it is plain data, else as Python shows it."""
    value = trait.default_value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return trait.default_value_repr()
    return value


def run(args: argparse.Namespace) -> int:
    """Print the options; exit status 0."""
    from gpu_devbox.server.app import GPUDevbox  # jupyter_server: only for this command

    own = GPUDevbox.class_own_traits(config=True)
    every = GPUDevbox.class_traits(config=True)
    names = sorted(own) + sorted(set(every) - set(own))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": name,
                        "option": f"c.GPUDevbox.{name}",
                        "type": type(every[name]).__name__,
                        "default": _default(every[name]),
                        "help": " ".join((every[name].help or "").split()),
                        "inherited": name not in own,
                    }
                    for name in names
                ],
                indent=2,
            )
        )
        return 0
    print("GPUDevbox options (c.GPUDevbox.NAME in jupyter_server_config.py, or --GPUDevbox.NAME=)")
    print()
    for name in sorted(own):
        print(GPUDevbox.class_get_trait_help(every[name]))
    print()
    print("Inherited from jupyter-server's ExtensionApp (rarely needed here):")
    print()
    for name in sorted(set(every) - set(own)):
        print(GPUDevbox.class_get_trait_help(every[name]))
    return 0
