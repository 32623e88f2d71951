"""Is the image's nvidia/cuda base still supported, or end-of-life and due for deletion?

Judged with the ``cuda_containers`` table at the facts' ``gathered_at`` date, under NVIDIA's
published container support policy: an image is EOL when the driver it shipped with is; only
the latest point release of each minor is supported; EOL tags are deleted six months later.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from typing import Any

from gpu_devbox.cuda import tables
from gpu_devbox.cuda.versions import Version, add_months, fmt, minor_of, parse_cuda, parse_date

_NVIDIA_CUDA = re.compile(
    r"^(?:(?:docker\.io|nvcr\.io|registry\.hub\.docker\.com)/)?nvidia/cuda:(\d+\.\d+(?:\.\d+)?)(?:-|$)"
)


@dataclasses.dataclass(frozen=True)
class Assessment:
    """The outcome for one image release."""

    status: str
    title: str
    detail: str
    remedy: str
    source: str


def image_release(base_image: str | None, cuda_version_env: str | None) -> tuple[str, str] | None:
    """The image's nvidia/cuda release and its origin: the base image's tag, else CUDA_VERSION."""
    if base_image:
        match = _NVIDIA_CUDA.match(base_image.strip())
        if match is not None:
            return match.group(1), f"base image {base_image}"
    if cuda_version_env and parse_cuda(cuda_version_env) is not None:
        return cuda_version_env.strip(), f"CUDA_VERSION={cuda_version_env.strip()}"
    return None


def _row_for(key: Version) -> Mapping[str, Any] | None:
    for row in tables.load("cuda_containers").rows:
        if parse_cuda(row["cuda"]) == key:
            return row
    return None


def _latest(minor: Version) -> Mapping[str, Any] | None:
    for row in tables.load("cuda_containers").document["latest"]:
        if parse_cuda(row["minor"]) == minor:
            return dict(row)
    return None


def _cite(row: Mapping[str, Any]) -> str:
    table = tables.load("cuda_containers")
    source = table.sources[row["source"]]
    return f"{source['title']} <{source['url']}> [{row.get('quality', source['quality'])}]"


def _eol_dates(row: Mapping[str, Any]) -> tuple[datetime.date | None, datetime.date | None]:
    eol = parse_date(row.get("eol"))
    deleted = parse_date(row.get("deleted"))
    if deleted is None and eol is not None:
        months = int(tables.load("cuda_containers").document["policy"]["deletion_after_months"])
        deleted = add_months(eol, months)
    return eol, deleted


def _is_eol(row: Mapping[str, Any], today: datetime.date) -> bool:
    """End of life at ``today``: by the row's date when it has one, else by its status."""
    eol, _ = _eol_dates(row)
    return eol <= today if eol is not None else row.get("status") == "eol"


def _supported(row: Mapping[str, Any] | None, today: datetime.date) -> bool:
    return row is not None and not _is_eol(row, today)


@dataclasses.dataclass(frozen=True)
class ReleaseStatus:
    """Where one nvidia/cuda release stands on one day.

    ``state``, worst first: ``deleted`` (past the deletion date: the tag may be gone),
    ``eol``, ``not-latest`` (a newer point release of its minor exists), ``expiring`` (end of
    life within ``warn_days``), ``supported``, ``unknown`` (the tables do not know it).
    """

    state: str
    eol: datetime.date | None
    deletion: datetime.date | None
    #: The latest point release of the minor, when the tables know it.
    latest: str | None
    #: Whether the dates are a projection from NVIDIA's policy rather than published.
    projected: bool


def status_on(release: str, today: datetime.date, warn_days: int = 90) -> ReleaseStatus:
    """The state of an nvidia/cuda release on ``today``, read as :func:`assess` reads the table.

    An exact release row wins over its minor's row, which wins over its major's.
    """
    version = parse_cuda(release)
    if version is None or len(version) < 3:
        return ReleaseStatus("unknown", None, None, None, False)
    minor = minor_of(version)
    latest_row = _latest(minor)
    latest = str(latest_row["release"]) if latest_row else None
    exact = _row_for(version)
    if exact is not None and _is_eol(exact, today):
        eol, deletion = _eol_dates(exact)
        gone = deletion is not None and deletion <= today
        return ReleaseStatus("deleted" if gone else "eol", eol, deletion, latest, False)
    row = _row_for(minor) or _row_for(minor[:1])
    eol, deletion = _eol_dates(row) if row is not None else (None, None)
    projected = row is not None and row.get("quality") == "Proj"
    if row is not None and _is_eol(row, today):
        gone = deletion is not None and deletion <= today
        return ReleaseStatus("deleted" if gone else "eol", eol, deletion, latest, projected)
    newest = parse_cuda(latest) if latest else None
    if newest is not None and version < newest:
        return ReleaseStatus("not-latest", eol, deletion, latest, projected)
    if row is None and latest is None:
        return ReleaseStatus("unknown", None, None, None, False)
    if eol is not None and (eol - today).days <= warn_days:
        return ReleaseStatus("expiring", eol, deletion, latest, projected)
    return ReleaseStatus("supported", eol, deletion, latest, projected)


def suggest_release(
    major: int, today: datetime.date, driver_max: str | None = None
) -> tuple[str, bool] | None:
    """A supported release to rebuild on, and whether the driver runs it natively.

    Prefers releases the driver runs natively (``driver_max``: its newest CUDA), then ones of
    the driver's own CUDA major (minor-version compatibility); within those, the image's own
    major, then the newest.
    """
    latest = tables.load("cuda_containers").document["latest"]
    ceiling = parse_cuda(driver_max) if driver_max else None
    candidates = []
    for entry in latest:
        minor = parse_cuda(entry["minor"])
        if minor is None or not _supported(_row_for(minor), today):
            continue
        native = ceiling is None or minor <= minor_of(ceiling)
        if native or (ceiling is not None and minor[0] == ceiling[0]):
            candidates.append((native, minor[0] == major, minor, str(entry["release"])))
    if not candidates:
        return None
    best = max(candidates)
    return best[3], best[0]


def assess(
    release: str,
    origin: str,
    eol_env: str | None,
    today: datetime.date,
    driver_max: str | None = None,
) -> Assessment:
    """Judge one nvidia/cuda release (``origin`` says where it was read).

    ``driver_max`` (the newest CUDA the driver runs) keeps the suggested rebuild target runnable.
    """
    version = parse_cuda(release)
    rebuild = _rebuild_remedy(version[0] if version else 0, today, driver_max)
    if eol_env:
        policy = tables.load("cuda_containers").document["policy"]
        return Assessment(
            "fail",
            "The base image is deprecated and scheduled for deletion",
            f"NVIDIA_CUDA_END_OF_LIFE={eol_env} is set ({origin}): NVIDIA marked this nvidia/cuda "
            "image end-of-life and deletes EOL tags from Docker Hub and NGC six months later.",
            rebuild,
            _cite(policy),
        )
    if version is None or len(version) < 2:
        return Assessment(
            "skip", "The image's CUDA release is unreadable", f"{origin} is not a version.", "", ""
        )
    found = _Findings()
    _judge_point_release(found, release, version, today)
    _judge_latest(found, release, version)
    _judge_line(found, minor_of(version), today)
    return _conclude(found, release, origin, rebuild)


def _rebuild_remedy(major: int, today: datetime.date, driver_max: str | None) -> str:
    """What to rebuild on: a supported tag of the line, runnable by this driver if known."""
    suggestion = suggest_release(major, today, driver_max)
    if suggestion is None:
        return "Rebuild the image on a supported nvidia/cuda tag."
    how = "." if suggestion[1] else " (this driver runs it by minor-version compatibility)."
    example = f"nvidia/cuda:{suggestion[0]}-<flavor>-<os>"
    return f"Rebuild the image on a supported nvidia/cuda tag, e.g. {example}{how}"


@dataclasses.dataclass
class _Findings:
    """What the container table says of one release: problems, notes and the rows cited."""

    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    cites: list[str] = dataclasses.field(default_factory=list)
    #: Whether the table knows the release's line or its latest point release at all.
    known: bool = False


def _judge_point_release(
    found: _Findings, release: str, version: Version, today: datetime.date
) -> None:
    """This exact point release (``13.0.1``) may have its own end of life."""
    exact = _row_for(version) if len(version) >= 3 else None
    if exact is None or not _is_eol(exact, today):
        return
    found.cites.append(_cite(exact))
    eol, deleted = _eol_dates(exact)
    when = f" on {eol.isoformat()}" if eol else ""
    gone = f"; its tags were due for deletion on {deleted.isoformat()}" if deleted else ""
    found.problems.append(f"nvidia/cuda {release} reached end of life{when}{gone}.")


def _judge_latest(found: _Findings, release: str, version: Version) -> None:
    """NVIDIA supports only the latest point release of a minor."""
    minor = minor_of(version)
    latest = _latest(minor)
    if latest is None:
        return
    found.known = True
    newest = parse_cuda(latest["release"])
    if len(version) >= 3 and newest is not None and version < newest:
        found.cites.append(_cite(latest))
        found.problems.append(
            f"{release} is not the latest point release of CUDA {fmt(minor)} "
            f"({latest['release']}, [{latest['quality']}]); NVIDIA supports only the latest."
        )


def _judge_line(found: _Findings, minor: Version, today: datetime.date) -> None:
    """The CUDA minor (or major) line: end of life reached, expected, or supported."""
    row = _row_for(minor) or _row_for(minor[:1])
    if row is None:
        return
    found.known = True
    found.cites.append(_cite(row))
    eol, deleted = _eol_dates(row)
    projected = " (projected from NVIDIA's policy)" if row.get("quality") == "Proj" else ""
    basis = f" Basis: {row['basis']}." if row.get("basis") else ""
    if _is_eol(row, today):
        when = f" in {eol.strftime('%B %Y')}" if eol else ""
        due = ""
        if deleted is not None:
            verb = "were due" if deleted <= today else "are due"
            due = f"; its tags {verb} for deletion around {deleted.strftime('%B %Y')}"
        found.problems.append(
            f"CUDA {fmt(minor)} images reached end of life{when}{due}{projected}.{basis}"
        )
    elif eol is not None:
        found.notes.append(f"Expected end of life: {eol.strftime('%B %Y')}{projected}.{basis}")
    else:
        found.notes.append(f"Supported{projected}.{basis}")


def _conclude(found: _Findings, release: str, origin: str, rebuild: str) -> Assessment:
    source = "; ".join(dict.fromkeys(found.cites))
    if found.problems:
        return Assessment(
            "warn",
            f"The image's nvidia/cuda {release} base is end-of-life or outdated",
            f"From {origin}: " + " ".join(found.problems),
            rebuild,
            source,
        )
    if not found.known:
        as_of = tables.load("cuda_containers").as_of
        return Assessment(
            "skip",
            f"The container status of CUDA {release} is unknown",
            f"The tables (as of {as_of}) do not know nvidia/cuda {release} ({origin}).",
            "",
            source,
        )
    return Assessment(
        "pass",
        f"The image's nvidia/cuda {release} base is supported",
        f"From {origin}. " + " ".join(found.notes),
        "",
        source,
    )
