"""Reference pages generated from the code are committed up to date, and say what they should.

docs/configuration.md comes from the options' help texts (each with its units and a runnable
example), docs/metric-fields.md from the GPU field table; ``python docs/generate.py`` writes
both. A test here fails, naming that command, when someone changes the source and not the page.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from traitlets import Float, Int
from traitlets.config import Config, Configurable

from gpu_devbox.cli import config
from gpu_devbox.cli.metrics import fields_markdown
from gpu_devbox.gpus import fields
from gpu_devbox.server.app import GPUDevbox
from gpu_devbox_spawner.spawner import GPUDevboxSpawner

DOCS = Path(__file__).resolve().parents[1] / "docs"
CLASSES = [GPUDevbox, GPUDevboxSpawner]
OPTIONS = [
    (cls, name, trait)
    for cls in CLASSES
    for name, trait in sorted(cls.class_own_traits(config=True).items())
]


def load_generate() -> ModuleType:
    """docs/generate.py, imported from its path (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gpu_devbox(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("gpu-devbox")
    assert exe, "the gpu-devbox command is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_metric_fields_md_is_what_the_command_prints() -> None:
    result = gpu_devbox("metrics", "--fields", "--markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout == fields_markdown()
    committed = (DOCS / "metric-fields.md").read_text(encoding="utf-8")
    assert committed == result.stdout, "docs/metric-fields.md is stale: run python docs/generate.py"


def test_metric_fields_md_names_every_field_and_prometheus_metric() -> None:
    page = (DOCS / "metric-fields.md").read_text(encoding="utf-8")
    for f in fields.FIELDS:
        assert f"| `{f.path}` | {f.unit} |" in page
        if f.prometheus is not None:
            assert f"`gpu_devbox_{f.prometheus.name}" in page
        if f.dcgm is not None:
            assert f"`{f.dcgm.name}`" in page


def test_a_changed_field_makes_the_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    before = fields_markdown()
    changed = (dataclasses.replace(fields.FIELDS[0], unit="permille"), *fields.FIELDS[1:])
    monkeypatch.setattr(fields, "FIELDS", changed)
    assert fields_markdown() != before


def test_fields_as_json_and_as_a_table() -> None:
    result = gpu_devbox("metrics", "--fields", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [f["field"] for f in listed] == [f.path for f in fields.FIELDS]
    energy = next(f for f in listed if f["field"] == "energy.total")
    assert energy["unit"] == "J"
    assert energy["cadence"] == "slow"
    assert energy["prometheus"] == "energy_joules"
    assert energy["prometheus_type"] == "counter"
    table = gpu_devbox("metrics", "--fields")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["FIELD", "UNIT", "CADENCE", "CHARTED"]
    assert len(table.stdout.splitlines()) == len(fields.FIELDS) + 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--markdown"], "--markdown lists the fields: use it with --fields"),
        (
            ["--fields", "--watch", "1"],
            "--fields takes either --json or --markdown, and no --watch",
        ),
        (
            ["--fields", "--json", "--markdown"],
            "--fields takes either --json or --markdown, and no --watch",
        ),
    ],
)
def test_misused_options_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    result = gpu_devbox("metrics", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"gpu-devbox metrics: error: {words}"]


# --------------------------------------------------------------------------- configuration.md


def test_every_generated_page_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(DOCS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_configuration_md_has_a_row_per_option_of_both_classes() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert page == load_generate().configuration(), "stale: run python docs/generate.py"
    for cls, name, trait in OPTIONS:
        code = config.example(trait)
        assert f"| `{name}` | {config.kind(trait)} |" in page, (cls.__name__, name)
        assert f"| `{code}` |" in page, (cls.__name__, name)
    assert page.count("\n| `") == len(OPTIONS)


def test_gpu_devbox_config_markdown_prints_the_server_section() -> None:
    result = gpu_devbox("config", "--markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("## The server extension: `c.GPUDevbox`\n")
    assert result.stdout in (DOCS / "configuration.md").read_text(encoding="utf-8")


def test_a_stale_page_fails_the_check_and_the_rewrite_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate = load_generate()
    for name in generate.PAGES:
        shutil.copy(DOCS / name, tmp_path / name)
    page = tmp_path / "configuration.md"
    page.write_text(page.read_text().replace("Seconds between two GPU samples", "Seconds"))
    generate.DOCS = tmp_path
    assert generate.main(["--check"]) == 1
    assert "docs/configuration.md: stale" in capsys.readouterr().err
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0
    assert page.read_text() == (DOCS / "configuration.md").read_text()


@pytest.mark.parametrize(
    ("cls", "name", "trait"), OPTIONS, ids=[f"{c.__name__}.{n}" for c, n, _ in OPTIONS]
)
def test_each_options_example_runs_and_sets_it(cls: type, name: str, trait: Any) -> None:
    code = config.example(trait)
    assert code is not None, f"{cls.__name__}.{name}: its help has no Example: ``...``"
    assert code.startswith(f"c.{cls.__name__}.{name} = ")
    c = Config()
    exec(code, {"c": c})  # noqa: S102 - the example is the help text's, run as a config file runs
    expected = eval(code.split(" = ", 1)[1])  # noqa: S307 - the same literal
    assert expected != trait.default_value, "an example should change the option"
    if cls is GPUDevbox:
        configured: Any = GPUDevbox(config=c)  # the real class: its validators run too
    else:
        # A KubeSpawner needs a hub and a cluster to exist; its traits load config like any
        # Configurable's, so check the value against the same trait on a bare class.
        probe = type(cls.__name__, (Configurable,), {name: copy.deepcopy(trait)})
        configured = probe(config=c)
    got = getattr(configured, name)
    if callable(expected):  # a lambda: the same code, not the same object
        assert got.__code__.co_code == expected.__code__.co_code
    else:
        assert got == expected


#: Words that give a number its unit in the help texts.
UNITS = re.compile(r"\b(seconds?|GPUs?|fraction|bytes?|MiB|GiB|MHz|percent)\b|\d s\b", re.I)


@pytest.mark.parametrize(
    ("cls", "name", "trait"), OPTIONS, ids=[f"{c.__name__}.{n}" for c, n, _ in OPTIONS]
)
def test_each_numeric_option_says_its_unit(cls: type, name: str, trait: Any) -> None:
    inner = getattr(trait, "_value_trait", None) or getattr(trait, "_trait", None)
    numeric = isinstance(trait, Float | Int) or (
        isinstance(inner, Float | Int) and "indices" not in trait.help
    )
    if numeric:
        assert UNITS.search(trait.help), f"{cls.__name__}.{name}: no unit in its help"


def test_an_option_without_an_example_is_refused() -> None:
    class Bare(Configurable):
        timeout = Float(1.0, help="Seconds to wait.").tag(config=True)

    with pytest.raises(ValueError, match=r"Bare.timeout: the help text must end with Example"):
        config.markdown(Bare, "t", "i")
