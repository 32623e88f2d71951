"""tests/floors.py: the check that ``./run-tests min`` installed every dependency at its floor."""

from __future__ import annotations

from packaging.version import Version

from tests import floors
from tests.floors import tomllib

PYPROJECT = """
[project]
dependencies = ["jupyter_server>=2.13,<3", "numpy>=1.24", "old; python_version < '3'"]
[project.optional-dependencies]
hub = ["jupyterhub>=5.3", "kubernetes_asyncio>=29"]
test = ["pytest-jupyter[server]>=0.10.1", "numpy>=1.26"]
dev = ["ruff==0.17.6", "types-PyYAML"]
"""


def test_floors_are_read_from_the_project_and_its_extras() -> None:
    declared = floors.declared(tomllib.loads(PYPROJECT), ["hub"])
    assert sorted(declared) == ["jupyter-server", "jupyterhub", "kubernetes-asyncio", "numpy"]
    assert floors.floor_of(declared["jupyter-server"][0]) == Version("2.13")
    assert "old" not in declared  # its marker does not apply here


def test_a_floor_that_is_not_what_is_installed_is_named() -> None:
    declared = floors.declared(tomllib.loads(PYPROJECT), ["hub", "dev"])
    found = floors.problems(
        declared,
        {
            "jupyter-server": "2.13.0",  # 2.13 is 2.13.0: fine
            "jupyterhub": "5.4.0",  # something needed more than the floor
            "kubernetes-asyncio": None,
            "numpy": "1.24.0",
            "ruff": "0.17.6",
            "types-pyyaml": "6.0.12",
        },
    )
    assert found == [
        (
            "jupyterhub: 5.4.0 installed, not its floor 5.3 (jupyterhub>=5.3): another package "
            "needs more, so raise the floor to what is tested"
        ),
        "kubernetes-asyncio: not installed (declared kubernetes_asyncio>=29)",
        "types-pyyaml: no floor declared (types-PyYAML); give it one",
    ]


def test_a_package_declared_twice_with_two_floors_is_named() -> None:
    declared = floors.declared(tomllib.loads(PYPROJECT), ["test"])
    found = floors.problems(declared, {"numpy": "1.26.0", "jupyter-server": "2.13.0"})
    assert "numpy: declared twice with different floors (numpy>=1.24, numpy>=1.26)" in found


def test_this_environment_holds_every_floor_or_newer() -> None:
    declared = floors.declared(tomllib.loads(floors.PYPROJECT.read_text()), floors.EXTRAS)
    installed = floors.installed_versions(declared)
    for name, requirements in declared.items():
        version = installed[name]
        assert version is not None, f"{name} is not installed"
        assert all(r.specifier.contains(version, prereleases=True) for r in requirements), name
    at_floors = {name: str(floors.floor_of(found[0])) for name, found in declared.items()}
    assert floors.problems(declared, at_floors) == []
