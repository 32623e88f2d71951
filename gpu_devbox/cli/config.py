"""Print every option of the server extension (``c.GPUDevbox.*``) with its help and default.

``jupyter server --help-all`` lists only the server's own classes: an extension's options are
loaded later, so they are not in it. This prints them in the same form, the extension's own
options first, then those it inherits from jupyter-server's ExtensionApp. Set them in
``jupyter_server_config.py`` (``c.GPUDevbox.interval = 2.0``) or on the command line
(``jupyter lab --GPUDevbox.interval=2``). ``--markdown`` prints the extension's own options as
the table of the configuration reference (docs/configuration.md), from the same help texts.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

#: The runnable example every option's help ends with: ``Example: ``c.Class.name = value``.``
EXAMPLE = re.compile(r"\s*Example: ``(?P<code>c\.(?P<cls>\w+)\.(?P<name>\w+) = [^`]+)``\.?\s*$")

#: How the reference names the type of a trait.
_KINDS = {
    "Bool": "boolean",
    "Float": "number",
    "Int": "integer",
    "Integer": "integer",
    "Unicode": "string",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``gpu-devbox config`` takes ``--json`` or ``--markdown``."""
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument(
        "--json",
        action="store_true",
        help="print the options as a JSON list (name, option, type, default, help, inherited)",
    )
    formats.add_argument(
        "--markdown",
        action="store_true",
        help="print the extension's own options as the Markdown table of the configuration "
        "reference",
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
    if args.markdown:
        print(markdown(GPUDevbox, SERVER_TITLE, SERVER_INTRO), end="")
        return 0
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


# ---------------------------------------------------------------------------------------------
# the configuration reference (docs/configuration.md), generated from the help texts
# ---------------------------------------------------------------------------------------------
SERVER_TITLE = "The server extension: `c.GPUDevbox`"
SERVER_INTRO = (
    "Set these in `jupyter_server_config.py` (or `jupyter_gpu_devbox_config.py`), or on the "
    "command line as `--GPUDevbox.NAME=VALUE`. The extension also takes the options every "
    "jupyter-server extension inherits from `ExtensionApp`; `gpu-devbox config` lists them all."
)


def example(trait: Any) -> str | None:
    """The runnable example at the end of a trait's help (``None`` when it has none)."""
    found = EXAMPLE.search(trait.help or "")
    return found.group("code") if found else None


def kind(trait: Any) -> str:
    """The type of a trait as the reference names it: ``number``, ``list of integers``, ..."""
    name = type(trait).__name__
    if name == "Enum":
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in trait.values)
    if name == "List":
        item = getattr(trait, "_trait", None)
        return f"list of {kind(item)}s" if item is not None else "list"
    if name == "Dict":
        value = getattr(trait, "_value_trait", None)
        return f"dict of {kind(value)}s" if value is not None else "dict"
    return _KINDS.get(name, name)


def _default_text(trait: Any) -> str:
    value = trait.default_value
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool | int | float):
        return repr(value)
    return str(trait.default_value_repr())


def _markdown_text(text: str) -> str:
    """A help text as one line of a Markdown table: reST literals as code spans, ``|`` escaped,
    and ``<`` and ``>`` outside code spans as entities (``<model>`` is not an HTML tag)."""
    parts = " ".join(text.split()).replace("``", "`").split("`")
    for i in range(0, len(parts), 2):  # the text between code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def markdown(cls: Any, title: str, intro: str) -> str:
    """A section of the configuration reference: ``cls``'s own options, as a Markdown table.

    Raises:
        ValueError: an option's help has no runnable example for that option.
    """
    rows = [
        f"## {title}",
        "",
        intro,
        "",
        "| option | type | default | meaning | example |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, trait in sorted(cls.class_own_traits(config=True).items()):
        code = example(trait)
        found = EXAMPLE.search(trait.help or "")
        if code is None or found is None or found.group("name") != name:
            raise ValueError(
                f"{cls.__name__}.{name}: the help text must end with "
                f"Example: ``c.{cls.__name__}.{name} = ...``."
            )
        meaning = _markdown_text(trait.help[: found.start()])
        rows.append(
            f"| `{name}` | {kind(trait)} | `{_default_text(trait)}` | {meaning} | `{code}` |"
        )
    return "\n".join(rows) + "\n"
