"""``gpu-devbox config``: every option of the server extension with its help, as the README says.

``jupyter server --help-all`` cannot show an extension's options (extensions load after the
command line is parsed); the README's command must be one that does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from gpu_devbox.server.app import GPUDevbox

README = Path(__file__).resolve().parents[1] / "README.md"
OPTIONS: dict[str, Any] = GPUDevbox.class_traits(config=True)
OWN = set(GPUDevbox.class_own_traits(config=True))


def readme_command() -> str:
    """The command the README's Configuration section gives for listing the options."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"\(`([^`]+)` lists them\s+all", section)
    assert found, "the README's Configuration section names no command listing the options"
    return found.group(1)


def run_shell(command: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("gpu-devbox"), "the gpu-devbox command is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def first_words(help_text: str) -> str:
    """The start of an option's help, as it is printed (wrapped, so only a few words)."""
    return " ".join(help_text.split()[:4])


def test_the_readmes_command_prints_every_option_with_its_help() -> None:
    result = run_shell(readme_command())
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    for name, trait in OPTIONS.items():
        assert f"--GPUDevbox.{name}=" in out, name
        assert first_words(trait.help) in out, name
    assert len(OWN) >= 17
    # each option's block: the option, its help, its default
    block = result.stdout.split("--GPUDevbox.interval=<Float>", 1)[1].split("--GPUDevbox.", 1)[0]
    assert "Seconds between two GPU samples" in block
    assert "Default: 1.0" in block


def test_defaults_are_values_not_placeholders() -> None:
    result = run_shell("gpu-devbox config")
    assert "Undefined" not in result.stdout
    backend = result.stdout.split("--GPUDevbox.backend=", 1)[1].split("--GPUDevbox.", 1)[0]
    assert "Default: 'nvml'" in backend
    gpus = result.stdout.split("--GPUDevbox.simulated_gpus=", 1)[1].split("--GPUDevbox.", 1)[0]
    assert "Default: 2" in gpus


def test_json_lists_every_option_once_the_extensions_own_first() -> None:
    result = run_shell("gpu-devbox config --json")
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)
    names = [o["name"] for o in options]
    assert sorted(names) == sorted(OPTIONS)
    assert {o["name"] for o in options if not o["inherited"]} == OWN
    assert [o["inherited"] for o in options] == sorted(o["inherited"] for o in options)
    interval = next(o for o in options if o["name"] == "interval")
    assert interval["option"] == "c.GPUDevbox.interval"
    assert (interval["type"], interval["default"]) == ("Float", 1.0)
    assert interval["help"].startswith("Seconds between two GPU samples")


def test_jupyter_servers_own_help_cannot_list_them_as_the_readme_says() -> None:
    assert "`jupyter server --help-all` cannot" in README.read_text().replace("\n", " ")
    result = run_shell("jupyter server --help-all")
    assert result.returncode == 0, result.stderr
    assert "--ServerApp.port=" in result.stdout
    assert "GPUDevbox" not in result.stdout
