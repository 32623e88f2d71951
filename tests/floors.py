"""Check that this environment holds every declared dependency at its declared floor.

``./run-tests min`` installs gpu-devbox with ``uv pip install --resolution lowest-direct``:
every dependency named in pyproject.toml at the lowest version its ``>=`` allows, the rest at
their newest. When another package needs more than a floor, the resolver quietly installs a
newer version and the floor goes untested; this names every such floor, so that it is raised
to what is tested. Pinned (``==``) requirements must be installed as pinned.

Usage: ``python -m tests.floors [--extras test,dev,hub,lab]`` (exit 1 and one line per floor
that was not installed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef,import-not-found]

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
EXTRAS = ("test", "dev", "hub", "lab")


def floor_of(requirement: Requirement) -> Version | None:
    """The lowest version a requirement allows by its ``>=``, ``==`` or ``~=``, if any."""
    lows = [
        Version(spec.version)
        for spec in requirement.specifier
        if spec.operator in (">=", "==", "~=") and "*" not in spec.version
    ]
    return max(lows) if lows else None


def declared(
    pyproject: Mapping[str, object], extras: Iterable[str]
) -> dict[str, list[Requirement]]:
    """The requirements of the project and of ``extras`` that apply here, by package name."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    lines = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        lines += optional[extra]
    out: dict[str, list[Requirement]] = {}
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            out.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    return out


def problems(
    requirements: Mapping[str, list[Requirement]], installed: Mapping[str, str | None]
) -> list[str]:
    """One line for each declared floor this environment does not hold exactly."""
    out = []
    for name, found in sorted(requirements.items()):
        floors = {floor_of(r) for r in found}
        if None in floors:
            out.append(f"{name}: no floor declared ({', '.join(map(str, found))}); give it one")
            continue
        if len(floors) > 1:
            listed = ", ".join(map(str, found))
            out.append(f"{name}: declared twice with different floors ({listed})")
            continue
        [floor] = floors
        version = installed.get(name)
        if version is None:
            out.append(f"{name}: not installed (declared {found[0]})")
        elif Version(version) != floor:
            out.append(
                f"{name}: {version} installed, not its floor {floor} ({found[0]}): another "
                "package needs more, so raise the floor to what is tested"
            )
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each package (``None``: not installed)."""
    return {name: _version(name) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.floors", description=__doc__)
    parser.add_argument("--extras", default=",".join(EXTRAS), help="extras installed (a,b,c)")
    args = parser.parse_args(argv)
    requirements = declared(
        tomllib.loads(PYPROJECT.read_text()), [e for e in args.extras.split(",") if e]
    )
    found = problems(requirements, installed_versions(requirements))
    for line in found:
        print(f"floor: {line}", file=sys.stderr)
    if not found:
        print(f"every one of the {len(requirements)} declared floors is what is installed")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
