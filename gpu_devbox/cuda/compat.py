"""Does this NVIDIA driver run that CUDA toolkit? A pure decision over the dated data tables.

The public API (stable: it is extended, never broken; the spawner's placement uses it)::

    driver_runs_cuda(driver_version: str, cuda_version: str, *, datacenter: bool = False,
                     compat_loaded: bool = False, driver_cuda: str | None = None,
                     compat_cuda: str | None = None) -> Verdict
    max_cuda_for_driver(driver_version: str) -> str | None
    min_driver_for_cuda(cuda_version: str) -> str | None
    mvc_floor(cuda_version: str) -> str | None
    compat_branches(cuda_version: str) -> tuple[int, ...] | None
    compat_active(driver_version: str, driver_cuda: str) -> bool

``driver_runs_cuda`` answers with a :class:`Verdict` whose ``mechanism`` is one of:

``native``
    The driver supports this CUDA release itself: its branch's newest CUDA is at least the
    toolkit's ``major.minor`` (from the toolkit table, the branch table, or NVML's own answer
    passed as ``driver_cuda``). Everything works, including PTX JIT.
``forward_compat``
    The driver is older, but a cuda-compat package for this CUDA (or newer) is *loaded*
    (``compat_loaded``), the GPU is a data-center part (``datacenter``), and the driver's branch
    is in that package's support matrix. Everything works except graphics interop.
``minor_version``
    Minor-version compatibility: same CUDA major line and the driver is at or above that
    major's MVC floor (13.x: 580.65.06, 12.x: 525.60.13, 11.x: 450.80.02). Code runs, but PTX
    from the newer toolkit cannot be JIT-compiled: the framework must carry SASS (``sm_XY``)
    for the GPU, and calls needing a newer driver fail with cudaErrorCallRequiresNewerDriver.
``unsupported``
    None of the above: the driver is too old. ``min_driver`` (native) and ``mvc_floor`` say
    which driver would run it.
``unknown``
    The tables cannot decide (an unreadable version, a CUDA release they do not know, a driver
    older than every row). Never a guess.

The checks are tried in that order (native, then forward compatibility when compat libraries
are loaded, then MVC). ``cuda_version`` may be ``"12"`` (only the major known, e.g. a
``jax-cuda12-plugin``): then ``native`` needs a driver of a newer major line.

``driver_cuda`` is NVML's ``nvmlSystemGetCudaDriverVersion_v2`` (e.g. ``"13.0"``). Inside a
container it reflects a loaded cuda-compat libcuda; when it is newer than the tables allow for
this driver (see :func:`compat_active`), compatibility libraries are taken as loaded.

``compat_loaded`` without ``datacenter`` never yields ``forward_compat``: the verdict falls
through to MVC or ``unsupported`` and its detail says the loaded libraries fail on such GPUs
(CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE, 804). Whether loaded compat libraries break a
process (804 on such GPUs, 803 when older than the kernel driver) is the checks' concern.

Sources: CUDA Toolkit Release Notes Tables 2 and 3, NVIDIA's minor-version and forward
compatibility pages and the data-center driver branch page; rows and URLs in
``gpu_devbox/cuda/data/*.json``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from typing import Any

from gpu_devbox.cuda import tables
from gpu_devbox.cuda.versions import Version, fmt, minor_of, parse_cuda, parse_driver

#: Where NVML's answers are documented (cited when NVML's own CUDA version decides).
NVML_API_URL = "https://docs.nvidia.com/deploy/nvml-api/"


class Mechanism(str, enum.Enum):
    """How (or whether) a driver runs a CUDA release."""

    NATIVE = "native"
    MINOR_VERSION = "minor_version"
    FORWARD_COMPAT = "forward_compat"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The answer of :func:`driver_runs_cuda`."""

    mechanism: Mechanism
    #: The CUDA version asked about, as given (stripped).
    cuda: str
    #: The driver version asked about, as given (stripped).
    driver: str
    #: Lowest driver that runs this CUDA minor natively (``None``: the tables do not know).
    min_driver: str | None
    #: Lowest driver that runs it under minor-version compatibility (``None``: no MVC known).
    mvc_floor: str | None
    #: Newest CUDA this driver runs natively, as far as the tables (or NVML) know.
    driver_max_cuda: str | None
    #: One or two sentences saying why.
    detail: str
    #: The table rows this verdict rests on: ``"<title> <url> [quality]"``, ``"; "``-joined.
    source: str

    @property
    def ok(self) -> bool:
        """Whether code built with this CUDA runs at all."""
        return self.mechanism in (
            Mechanism.NATIVE,
            Mechanism.MINOR_VERSION,
            Mechanism.FORWARD_COMPAT,
        )

    @property
    def ptx_jit(self) -> bool:
        """Whether the driver can JIT-compile this toolkit's PTX."""
        return self.mechanism in (Mechanism.NATIVE, Mechanism.FORWARD_COMPAT)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "mechanism": self.mechanism.value,
            "cuda": self.cuda,
            "driver": self.driver,
            "min_driver": self.min_driver,
            "mvc_floor": self.mvc_floor,
            "driver_max_cuda": self.driver_max_cuda,
            "detail": self.detail,
            "source": self.source,
        }


# ----------------------------------------------------------------------------------------------
# table lookups
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _native_minimums() -> dict[Version, tuple[Version, str, dict[str, Any]]]:
    """``(major, minor)`` -> (lowest known Linux driver, its text, its row)."""
    table = tables.load("toolkit_drivers")
    out: dict[Version, tuple[Version, str, dict[str, Any]]] = {}
    for row in table.rows:
        if row.get("prerelease") or row.get("linux") is None:
            continue
        cuda = parse_cuda(row["cuda"])
        driver = parse_driver(row["linux"])
        assert cuda is not None, row
        assert driver is not None, row
        key = minor_of(cuda)
        if key not in out or driver < out[key][0]:
            out[key] = (driver, str(row["linux"]), dict(row))
    return out


@functools.lru_cache(maxsize=1)
def _known_minors() -> frozenset[Version]:
    """Every CUDA ``(major, minor)`` the toolkit table lists, minimum known or not."""
    table = tables.load("toolkit_drivers")
    found = set()
    for row in table.rows:
        cuda = parse_cuda(row["cuda"])
        assert cuda is not None, row
        found.add(minor_of(cuda))
    return frozenset(found)


def _never_released(cuda: Version) -> dict[str, Any] | None:
    if len(cuda) < 2:
        return None
    table = tables.load("toolkit_drivers")
    for row in table.document.get("never_released", []):
        if parse_cuda(row["cuda"]) == minor_of(cuda):
            return dict(row)
    return None


def _branch_row(driver: Version) -> dict[str, Any] | None:
    for row in tables.load("driver_branches").rows:
        if row["branch"] == driver[0]:
            return dict(row)
    return None


def _mvc_row(major: int) -> dict[str, Any] | None:
    for row in tables.load("minor_version").rows:
        if row["major"] == major:
            return dict(row)
    return None


def _fc_row(cuda: Version) -> dict[str, Any] | None:
    for row in tables.load("forward_compat").rows:
        if parse_cuda(row["cuda"]) == minor_of(cuda):
            return dict(row)
    return None


def _own_max(driver: Version) -> tuple[Version | None, list[str]]:
    """Newest CUDA minor this driver runs natively per the tables, and the rows used."""
    best: Version | None = None
    cites: list[str] = []
    for minor, (minimum, _text, row) in _native_minimums().items():
        if driver >= minimum and (best is None or minor > best):
            best = minor
            cites = [tables.load("toolkit_drivers").cite(row)]
    branch = _branch_row(driver)
    if branch is not None and branch.get("max_cuda"):
        branch_max = parse_cuda(branch["max_cuda"])
        if branch_max is not None and (best is None or branch_max > best):
            best = branch_max
            cites = [tables.load("driver_branches").cite(branch)]
    return best, cites


# ----------------------------------------------------------------------------------------------
# public helpers
# ----------------------------------------------------------------------------------------------
def max_cuda_for_driver(driver_version: str) -> str | None:
    """Newest CUDA ``major.minor`` the tables know this driver runs natively.

    The driver may run newer releases whose minimum the tables lack; ``None`` when the driver is
    unreadable or older than every row (11.0).
    """
    driver = parse_driver(driver_version)
    if driver is None:
        return None
    best, _ = _own_max(driver)
    return fmt(best) if best is not None else None


def min_driver_for_cuda(cuda_version: str) -> str | None:
    """Lowest Linux driver that runs this CUDA minor natively; ``None`` when unknown."""
    cuda = parse_cuda(cuda_version)
    if cuda is None or len(cuda) < 2:
        return None
    found = _native_minimums().get(minor_of(cuda))
    return found[1] if found else None


def mvc_floor(cuda_version: str) -> str | None:
    """Lowest driver running this CUDA's major line under minor-version compatibility."""
    cuda = parse_cuda(cuda_version)
    if cuda is None:
        return None
    row = _mvc_row(cuda[0])
    return str(row["floor"]) if row else None


def compat_branches(cuda_version: str) -> tuple[int, ...] | None:
    """Driver branches the cuda-compat package of this CUDA minor supports (``None``: unknown)."""
    cuda = parse_cuda(cuda_version)
    if cuda is None or len(cuda) < 2:
        return None
    row = _fc_row(cuda)
    return tuple(int(b) for b in row["branches"]) if row else None


def compat_active(driver_version: str, driver_cuda: str) -> bool:
    """Whether NVML's CUDA version proves a cuda-compat libcuda is loaded.

    True only when the tables know ``driver_cuda``'s native minimum and this driver is below it
    (an R580 driver reporting CUDA 13.2, say). A driver of a branch the tables skip (R565
    reports 12.7, which was never released) is not taken as evidence.
    """
    driver = parse_driver(driver_version)
    cuda = parse_cuda(driver_cuda)
    if driver is None or cuda is None or len(cuda) < 2:
        return False
    found = _native_minimums().get(minor_of(cuda))
    if found is None:
        return False
    branch = _branch_row(driver)
    branch_max = parse_cuda(branch["max_cuda"]) if branch and branch.get("max_cuda") else None
    if branch_max is not None and branch_max >= minor_of(cuda):
        return False
    return driver < found[0]


# ----------------------------------------------------------------------------------------------
# the decision
# ----------------------------------------------------------------------------------------------
def driver_runs_cuda(
    driver_version: str,
    cuda_version: str,
    *,
    datacenter: bool = False,
    compat_loaded: bool = False,
    driver_cuda: str | None = None,
    compat_cuda: str | None = None,
) -> Verdict:
    """Decide whether ``driver_version`` runs code built with CUDA ``cuda_version``.

    Args:
        driver_version: the NVIDIA driver, e.g. ``"580.159.04"``.
        cuda_version: the toolkit, e.g. ``"12.8"``, ``"13.0.2"`` or only a major, ``"12"``.
        datacenter: the GPU is a data-center part (forward compatibility works only there).
        compat_loaded: a cuda-compat libcuda is on the loader path of the process.
        driver_cuda: NVML's CUDA version for this driver (``"13.0"``), when known.
        compat_cuda: the version of the loaded cuda-compat package; defaults to ``cuda_version``
            (nvidia/cuda images ship the package of their own version).

    Returns:
        A :class:`Verdict`; never raises for bad input (that is ``unknown``).
    """
    driver_text, cuda_text = _as_text(driver_version), _as_text(cuda_version)
    driver, cuda = parse_driver(driver_text), parse_cuda(cuda_text)
    if driver is None:
        return _bare(
            Mechanism.UNKNOWN,
            driver_text,
            cuda_text,
            f"{driver_text!r} is not an NVIDIA driver version.",
        )
    if cuda is None:
        return _bare(
            Mechanism.UNKNOWN, driver_text, cuda_text, f"{cuda_text!r} is not a CUDA version."
        )
    never = _never_released(cuda)
    if never is not None:
        return _never_released_verdict(driver_text, cuda_text, cuda, never)
    case = _Case.gather(driver_text, cuda_text, driver, cuda, driver_cuda, compat_loaded)
    if not case.in_tables:
        as_of = tables.load("toolkit_drivers").as_of
        return case.verdict(
            Mechanism.UNKNOWN,
            f"CUDA {cuda_text} is not in the tables (as of {as_of}).",
            bounds=False,
        )
    native = _native(case)
    if native is not None:
        return native
    forward, note = _forward_compat(case, datacenter=datacenter, compat_cuda=compat_cuda)
    if forward is not None:
        return forward
    return _minor_version(case, note) or _too_old(case, note)


def _as_text(version: object) -> str:
    """The version as given, stripped (callers without types may pass None or a number)."""
    return "" if version is None else str(version).strip()


def _bare(mechanism: Mechanism, driver: str, cuda: str, detail: str, *cites: str) -> Verdict:
    """A verdict that rests on no driver bound (the input or the CUDA release is not usable)."""
    return Verdict(mechanism, cuda, driver, None, None, None, detail, "; ".join(cites))


def _never_released_verdict(
    driver_text: str, cuda_text: str, cuda: Version, never: dict[str, Any]
) -> Verdict:
    cite = tables.load("toolkit_drivers").document["sources"][never["source"]]
    return _bare(
        Mechanism.UNKNOWN,
        driver_text,
        cuda_text,
        f"CUDA {fmt(minor_of(cuda))} was never released.",
        f"{cite['title']} <{cite['url']}> [{never['quality']}]",
    )


@dataclasses.dataclass
class _Case:
    """What the tables (and NVML) say about one driver and one CUDA release.

    ``cites`` grows as the steps consult more tables: a verdict cites every row it rests on.
    """

    driver_text: str
    cuda_text: str
    driver: Version
    cuda: Version
    #: The CUDA minor's lowest native driver: (version, its text, its row).
    native_min: tuple[Version, str, dict[str, Any]] | None
    #: The major line's minor-version-compatibility row.
    mvc: dict[str, Any] | None
    #: Newest CUDA minor the driver runs natively (tables or NVML).
    own: Version | None
    #: cuda-compat libraries are loaded (said so, or proven by NVML's CUDA version).
    loaded: bool
    cites: list[str]

    @classmethod
    def gather(
        cls,
        driver_text: str,
        cuda_text: str,
        driver: Version,
        cuda: Version,
        driver_cuda: str | None,
        compat_loaded: bool,
    ) -> _Case:
        native_min = _native_minimums().get(minor_of(cuda)) if len(cuda) >= 2 else None
        own, cites, compat_seen = _driver_max(driver, driver_text, driver_cuda)
        if native_min is not None:
            cites.append(tables.load("toolkit_drivers").cite(native_min[2]))
        return cls(
            driver_text,
            cuda_text,
            driver,
            cuda,
            native_min,
            _mvc_row(cuda[0]),
            own,
            compat_loaded or compat_seen,
            cites,
        )

    @property
    def major(self) -> int:
        return self.cuda[0]

    @property
    def minor(self) -> Version:
        return minor_of(self.cuda)

    @property
    def has_minor(self) -> bool:
        """Whether the CUDA version names its minor (``"12"`` alone does not)."""
        return len(self.cuda) >= 2

    @property
    def own_text(self) -> str | None:
        return fmt(self.own) if self.own is not None else None

    @property
    def min_text(self) -> str | None:
        return self.native_min[1] if self.native_min else None

    @property
    def floor_text(self) -> str | None:
        return str(self.mvc["floor"]) if self.mvc else None

    @property
    def in_tables(self) -> bool:
        """Whether the tables can judge this CUDA release for this driver at all."""
        known = (self.has_minor and self.minor in _known_minors()) or self.mvc is not None
        covered = self.own is not None and self.has_minor and self.own >= self.minor
        return known or covered

    def verdict(self, mechanism: Mechanism, detail: str, *, bounds: bool = True) -> Verdict:
        """A verdict citing every row consulted; ``bounds``: with the lowest drivers known."""
        return Verdict(
            mechanism=mechanism,
            cuda=self.cuda_text,
            driver=self.driver_text,
            min_driver=self.min_text if bounds else None,
            mvc_floor=self.floor_text if bounds else None,
            driver_max_cuda=self.own_text,
            detail=detail,
            source="; ".join(dict.fromkeys(self.cites)),
        )


def _driver_max(
    driver: Version, driver_text: str, driver_cuda: str | None
) -> tuple[Version | None, list[str], bool]:
    """Newest CUDA the driver runs natively, the rows that say so, and whether cuda-compat
    libraries show through NVML's CUDA version (which then says nothing of the driver)."""
    own, cites = _own_max(driver)
    reported = parse_cuda(driver_cuda) if driver_cuda else None
    compat_seen = bool(reported and compat_active(driver_text, fmt(reported)))
    if reported is not None and not compat_seen and (own is None or reported > own):
        own = minor_of(reported)
        cites = [f"NVML nvmlSystemGetCudaDriverVersion_v2 of this driver <{NVML_API_URL}> [P]"]
    return own, cites, compat_seen


def _native(case: _Case) -> Verdict | None:
    """1. The driver's own CUDA covers the release."""
    if case.has_minor:
        native_min = case.native_min
        covered = (native_min is not None and case.driver >= native_min[0]) or (
            case.own is not None and case.own >= case.minor
        )
    else:  # only the major is known: a newer major line covers every minor of it
        covered = case.own is not None and case.own[0] > case.major
    if not covered:
        return None
    return case.verdict(
        Mechanism.NATIVE,
        f"Driver {case.driver_text} runs CUDA {case.own_text} natively, which covers CUDA "
        f"{case.cuda_text}.",
    )


def _forward_compat(
    case: _Case, *, datacenter: bool, compat_cuda: str | None
) -> tuple[Verdict | None, str]:
    """2. Loaded cuda-compat libraries on a data-center GPU, for a supported branch.

    Returns the verdict, or the sentence that the later verdicts append: why loaded
    libraries do not help (empty when none are loaded).
    """
    package = parse_cuda(compat_cuda) if compat_cuda else case.cuda
    if not case.loaded or package is None or not case.has_minor:
        return None, ""
    if not datacenter:
        return None, (
            " cuda-compat libraries are loaded, but forward compatibility works only on "
            "data-center GPUs (CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE, 804)."
        )
    if minor_of(package) < case.minor:
        return None, f" The loaded cuda-compat {fmt(package)} is older than CUDA {case.cuda_text}."
    row = _fc_row(package) if len(package) >= 2 else None
    if row is None:
        return None, f" The tables do not list cuda-compat-{case.major}-{package[1]}'s branches."
    case.cites.append(tables.load("forward_compat").cite(row))
    branch = case.driver[0]
    if branch not in row["branches"]:
        branches = ", ".join(f"R{b}" for b in row["branches"])
        return None, f" {row['package']} supports driver branches {branches}, not R{branch}."
    return case.verdict(
        Mechanism.FORWARD_COMPAT,
        f"Driver {case.driver_text} (R{branch}) runs CUDA {case.cuda_text} through the loaded "
        f"{row['package']} forward-compatibility libraries on this data-center GPU.",
    ), ""


def _minor_version(case: _Case, note: str) -> Verdict | None:
    """3. Minor-version compatibility: the same major line, a driver at or above its floor."""
    if case.mvc is None:
        return None
    case.cites.append(tables.load("minor_version").cite(case.mvc))
    floor = parse_driver(case.floor_text)
    assert floor is not None
    if case.driver < floor:
        return None
    major, floor_text = case.major, case.floor_text
    if not case.has_minor:
        why = (
            f"Driver {case.driver_text} runs CUDA {major}.x up to {case.own_text} natively; "
            f"which {major}.x minor this build needs is not known, so only minor-version "
            f"compatibility (CUDA {major}.x from driver {floor_text}) is certain"
        )
    else:
        why = (
            f"Driver {case.driver_text} runs CUDA {case.own_text or 'unknown'} natively and CUDA "
            f"{case.cuda_text} only through minor-version compatibility (CUDA {major}.x from "
            f"driver {floor_text})"
        )
        if case.native_min is None:
            why += f"; the tables do not know CUDA {fmt(case.minor)}'s own minimum driver"
    return case.verdict(
        Mechanism.MINOR_VERSION,
        why + ": no PTX JIT, so code must carry SASS for the GPU." + note,
    )


def _too_old(case: _Case, note: str) -> Verdict:
    """4. Nothing runs it: say which driver would, or that the tables cannot tell."""
    if case.native_min is None and case.mvc is None:
        return case.verdict(
            Mechanism.UNKNOWN,
            f"The tables do not know the minimum driver of CUDA {case.cuda_text}." + note,
        )
    min_text, floor_text = case.min_text, case.floor_text
    if min_text and floor_text and min_text != floor_text:
        needs = f"{min_text} natively or {floor_text} with minor-version compatibility"
    else:
        needs = f"driver {min_text or floor_text} or newer"
    return case.verdict(
        Mechanism.UNSUPPORTED,
        f"Driver {case.driver_text} is too old for CUDA {case.cuda_text}: it needs {needs}." + note,
    )
