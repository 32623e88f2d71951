"""One lock per image: every Python package of the image at an exact version, with hashes.

The catalog pins what each flavor adds (``numpy==2.5.*``); ``gpu-devbox images lock`` resolves
those pins, with gpu-devbox's own requirements, into ``images/locks/<image>.txt`` and the image
build installs exactly that (``pip install --require-hashes``), so two builds of one commit get
the same packages. The resolution is universal (uv's ``--universal``): one lock serves every
platform and every Python from the catalog's on.

A lock has one section per flavor the image stacks up, resolved in order with the sections
before it as constraints, so the Dockerfile installs them as separate layers and a pytorch image
shares its base section's versions with the base image::

    # gpu-devbox lock of cuda13-pytorch (`gpu-devbox images lock`; do not edit)
    # inputs: sha256:...
    # [section base]
    numpy==2.5.5 ; ... \\
        --hash=sha256:...
    # [section pytorch] index: https://download.pytorch.org/whl/cu130
    torch==2.14.0+cu130 ...

The ``inputs`` digest covers everything the resolution starts from (the pins, gpu-devbox's
requirements, the Python version, the wheel index), so a lock whose inputs changed is found
stale without a network (``--check``; the tests run it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from gpu_devbox.images.plan import ImageBuild, ImagesError

HEADER = "# gpu-devbox lock of {name} (`gpu-devbox images lock`; do not edit)"
SECTION = re.compile(r"^# \[section (?P<name>[a-z]+)\](?: index: (?P<index>\S+))?$")
_INPUTS = re.compile(r"^# inputs: sha256:(?P<digest>[0-9a-f]{64})$")
_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>\S+)")


@dataclasses.dataclass(frozen=True)
class Section:
    """What one flavor's layer of the lock starts from."""

    name: str
    requirements: tuple[str, ...]
    #: PyTorch's wheel index for this section (pytorch and finetune), else ``None``.
    index: str | None = None


def image_requirements() -> tuple[str, ...]:
    """gpu-devbox's requirements as the images install them: the runtime ones, the ``lab``
    extra and JupyterHub (for ``jupyterhub-singleuser``); the spawner's packages stay out.

    The same rule as ``images/install.sh wheel``, read from the installed distribution.
    """
    out: list[str] = []
    for requirement in metadata.requires("gpu-devbox") or []:
        spec, _, marker = requirement.partition(";")
        extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", marker)
        if extra is None:
            out.append(requirement.strip())
        elif extra.group(1) == "lab" or (
            extra.group(1) == "hub" and re.match(r"jupyterhub\b(?!-)", spec.strip())
        ):
            out.append(spec.strip())
    return tuple(sorted(out, key=str.lower))


def sections(build: ImageBuild) -> tuple[Section, ...]:
    """The sections of one image's lock, foundation first."""
    out = []
    for flavor, packages in build.packages:
        if flavor == "base":
            out.append(Section("base", (*image_requirements(), *packages)))
        elif flavor == "pytorch":
            out.append(Section("pytorch", (*build.torch_packages, *packages), build.torch_index))
        else:
            out.append(Section(flavor, packages, build.torch_index))
    return tuple(out)


def inputs_digest(build: ImageBuild) -> str:
    """The digest of everything the lock is resolved from."""
    document = {
        "python": build.python,
        "sections": [dataclasses.asdict(s) for s in sections(build)],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def read_digest(text: str) -> str | None:
    """The ``inputs`` digest a lock file records, if it has one."""
    for line in text.splitlines()[:5]:
        match = _INPUTS.match(line)
        if match:
            return match.group("digest")
    return None


def split_sections(text: str) -> dict[str, str]:
    """A lock's sections by flavor: the requirement lines of each (what pip installs)."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = SECTION.match(line)
        if match:
            current = out.setdefault(match.group("name"), [])
        elif current is not None and line.strip() and not line.startswith("#"):
            current.append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in out.items()}


def pinned(text: str) -> dict[str, str]:
    """``{normalised name: version}`` of a lock (or one of its sections)."""
    out = {}
    for line in text.splitlines():
        match = _ENTRY.match(line)
        if match:
            out[normalise(match.group("name"))] = match.group("version")
    return out


def normalise(name: str) -> str:
    """PEP 503: ``Jupyter_Server`` -> ``jupyter-server``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def status(build: ImageBuild, root: Path) -> str:
    """``current``, ``stale`` (its inputs changed) or ``missing``."""
    path = root / build.lock
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError) as exc:
        raise ImagesError(f"cannot read {build.lock}: {exc}") from None
    if read_digest(text) != inputs_digest(build):
        return "stale"
    wanted = [s.name for s in sections(build)]
    if list(split_sections(text)) != wanted:
        return "stale"
    return "current"


def find_uv() -> str:
    """The ``uv`` program (the dev extra installs it next to this Python)."""
    here = Path(sys.executable).parent / "uv"
    found = shutil.which("uv") or (str(here) if here.is_file() else None)
    if found is None:
        raise ImagesError("uv is not installed (pip install uv): gpu-devbox images lock needs it")
    return found


def _compile(
    uv: str, build: ImageBuild, inputs: Iterable[str], constraints: str, index: str | None
) -> str:
    with tempfile.TemporaryDirectory(prefix="gpu-devbox-lock-") as tmp:
        source = Path(tmp, "requirements.in")
        source.write_text("".join(f"{line}\n" for line in inputs))
        argv = [
            uv, "pip", "compile", str(source), "--universal",
            "--python-version", build.python, "--generate-hashes",
            "--no-header", "--no-annotate", "--quiet",
        ]  # fmt: skip
        if constraints:
            limits = Path(tmp, "constraints.txt")
            limits.write_text(constraints)
            argv += ["--constraint", str(limits)]
        if index is not None:
            # torch==2.14.0+cu130 exists only there; the best match over both indexes picks it.
            argv += ["--extra-index-url", index, "--index-strategy", "unsafe-best-match"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=900, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise ImagesError(f"{build.name}: uv pip compile took over 15 minutes") from None
    if result.returncode != 0:
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        why = " ".join(lines[-3:]) if lines else f"exit {result.returncode}"
        raise ImagesError(f"{build.name}: cannot resolve its packages: {why}")
    return result.stdout


def _as_constraints(text: str) -> str:
    """A lock's entries without hashes (uv takes them as constraints)."""
    entries = [line.rstrip(" \\") for line in text.splitlines() if _ENTRY.match(line)]
    return "".join(f"{line}\n" for line in entries)


def resolve(build: ImageBuild) -> str:
    """The text of one image's lock, resolved now (uv; needs the package indexes)."""
    uv = find_uv()
    parts = [
        HEADER.format(name=build.name),
        f"# inputs: sha256:{inputs_digest(build)}",
        f"# python: {build.python} and newer; platforms: every one (a universal resolution)",
    ]
    inputs: list[str] = []
    done = ""
    for section in sections(build):
        inputs += section.requirements
        resolved = _compile(uv, build, inputs, _as_constraints(done), section.index)
        before = pinned(done)
        mine = _only_new(resolved, before)
        head = f"# [section {section.name}]"
        if section.index:
            head += f" index: {section.index}"
        parts.append(head)
        parts.append(mine.rstrip("\n"))
        done += mine
    return "\n".join(parts) + "\n"


def _only_new(resolved: str, before: dict[str, str]) -> str:
    """The entries of ``resolved`` (with their hash lines) not pinned by earlier sections."""
    out: list[str] = []
    keep = False
    for line in resolved.splitlines():
        match = _ENTRY.match(line)
        if match:
            keep = normalise(match.group("name")) not in before
        if keep and line.strip():
            out.append(line)
    return "".join(f"{line}\n" for line in out)


def write(builds: Iterable[ImageBuild], root: Path) -> list[str]:
    """Resolve and write the locks of ``builds``; one line per image written."""
    out = []
    for build in builds:
        text = resolve(build)
        path = root / build.lock
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        count = len(pinned(text))
        out.append(f"wrote {build.lock}: {count} packages")
    return out
