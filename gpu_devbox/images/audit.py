"""Are the images' nvidia/cuda bases still supported? The audit CI runs before NVIDIA deletes one.

Each CUDA line's base (``nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04``) is judged on a date
under NVIDIA's published container support policy, using the dated, cited ``cuda_containers``
table the doctor uses (``gpu_devbox/cuda/data/cuda_containers.json``, read through
:func:`gpu_devbox.cuda.tables.load`): an image reaches end of life (EOL) when the driver it
shipped with does; only the latest point release of a minor is supported; EOL tags are deleted
six months later. The detail, remedy and sources come from the doctor's own judgement
(:func:`gpu_devbox.cuda.lifecycle.assess`), so the audit and ``gpu-devbox doctor`` say the same.

States, worst first: ``deleted`` (past the deletion date: the tag may be gone), ``eol``,
``not-latest`` (a newer point release of the minor exists), ``expiring`` (EOL within
``warn_days``), ``supported``, ``unknown`` (the tables do not know the release). ``deleted`` and
``eol`` fail the audit.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from collections.abc import Mapping
from typing import Any

from gpu_devbox.catalog import Catalog
from gpu_devbox.cuda import lifecycle, tables
from gpu_devbox.cuda.versions import Version, add_months, minor_of, parse_cuda, parse_date
from gpu_devbox.images.plan import ImageBuild, ImagesError, plan

TABLE = "cuda_containers"
FAILING = ("deleted", "eol")
#: How early a coming end of life is reported (``expiring``).
WARN_DAYS = 90


@dataclasses.dataclass(frozen=True)
class BaseStatus:
    """The lifecycle of one base image on one day."""

    base: str
    #: The nvidia/cuda release (``"13.0.2"``).
    release: str
    images: tuple[str, ...]
    state: str
    eol: datetime.date | None
    deletion: datetime.date | None
    #: The latest point release of the minor, when the tables know it.
    latest: str | None
    #: Whether the dates are a projection from NVIDIA's policy rather than a published date.
    projected: bool
    detail: str
    remedy: str
    source: str

    @property
    def failed(self) -> bool:
        """Whether this base fails the audit (past end of life)."""
        return self.state in FAILING

    def as_dict(self) -> dict[str, Any]:
        """JSON form (dates as ``YYYY-MM-DD``)."""
        out = dataclasses.asdict(self)
        out["images"] = list(self.images)
        for key in ("eol", "deletion"):
            out[key] = out[key].isoformat() if out[key] else None
        out["failed"] = self.failed
        return out


def _row(key: Version) -> Mapping[str, Any] | None:
    return next((r for r in tables.load(TABLE).rows if parse_cuda(r["cuda"]) == key), None)


def _dates(row: Mapping[str, Any]) -> tuple[datetime.date | None, datetime.date | None]:
    eol = parse_date(row.get("eol"))
    deletion = parse_date(row.get("deleted"))
    if deletion is None and eol is not None:
        months = int(tables.load(TABLE).document["policy"]["deletion_after_months"])
        deletion = add_months(eol, months)
    return eol, deletion


def _is_eol(row: Mapping[str, Any], eol: datetime.date | None, today: datetime.date) -> bool:
    return eol <= today if eol is not None else row.get("status") == "eol"


def judge(
    release: str, today: datetime.date, warn_days: int = WARN_DAYS
) -> tuple[str, datetime.date | None, datetime.date | None, str | None, bool]:
    """``(state, eol, deletion, latest, projected)`` of an nvidia/cuda release on ``today``.

    The rows are read as the doctor reads them: an exact release row wins over its minor's row,
    which wins over its major's.
    """
    version = parse_cuda(release)
    if version is None or len(version) < 3:
        return "unknown", None, None, None, False
    minor = minor_of(version)
    latest_entry = next(
        (e for e in tables.load(TABLE).document["latest"] if parse_cuda(e["minor"]) == minor),
        None,
    )
    latest = str(latest_entry["release"]) if latest_entry else None
    exact = _row(version)
    if exact is not None:
        eol, deletion = _dates(exact)
        if _is_eol(exact, eol, today):
            gone = deletion is not None and deletion <= today
            return ("deleted" if gone else "eol"), eol, deletion, latest, False
    row = _row(minor) or _row(minor[:1])
    eol, deletion = _dates(row) if row is not None else (None, None)
    projected = row is not None and row.get("quality") == "Proj"
    if row is not None and _is_eol(row, eol, today):
        gone = deletion is not None and deletion <= today
        return ("deleted" if gone else "eol"), eol, deletion, latest, projected
    newest = parse_cuda(latest) if latest else None
    if newest is not None and version < newest:
        return "not-latest", eol, deletion, latest, projected
    if row is None and latest is None:
        return "unknown", None, None, None, False
    if eol is not None and (eol - today).days <= warn_days:
        return "expiring", eol, deletion, latest, projected
    return "supported", eol, deletion, latest, projected


def audit(catalog: Catalog, today: datetime.date, warn_days: int = WARN_DAYS) -> list[BaseStatus]:
    """The status of every CUDA base the catalog builds on (the CPU base has none to judge)."""
    by_base: dict[str, list[ImageBuild]] = {}
    for build in plan(catalog):
        if build.cuda is not None:
            by_base.setdefault(build.base.image, []).append(build)
    out = []
    for base, builds in by_base.items():
        release = builds[0].base.release or ""
        state, eol, deletion, latest, projected = judge(release, today, warn_days)
        said = lifecycle.assess(release, f"base image {base}", None, today)
        out.append(
            BaseStatus(
                base=base,
                release=release,
                images=tuple(b.name for b in builds),
                state=state,
                eol=eol,
                deletion=deletion,
                latest=latest,
                projected=projected,
                detail=said.detail,
                remedy=said.remedy if state not in ("supported", "expiring") else "",
                source=said.source,
            )
        )
    return out


def parse_today(text: str | None) -> datetime.date:
    """``--today``: a ``YYYY-MM-DD`` date; today (UTC) when not given."""
    if text is None:
        return datetime.datetime.now(datetime.timezone.utc).date()
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise ImagesError(f"--today {text!r} is not a date like 2026-11-22") from None


HEADLINES = {
    "deleted": "PAST DELETION",
    "eol": "END OF LIFE",
    "not-latest": "not the latest point release",
    "expiring": "supported, end of life soon",
    "supported": "supported",
    "unknown": "unknown to the tables",
}


def _headline(status: BaseStatus, today: datetime.date) -> str:
    parts = [HEADLINES[status.state]]
    if status.eol is not None and status.state != "not-latest":
        verb = "since" if status.eol <= today else "until"
        parts[0] += f" {verb} {status.eol.isoformat()}"
    if status.deletion is not None and status.state in ("eol", "deleted", "expiring"):
        verb = "was due" if status.deletion <= today else "due"
        parts.append(f"deletion {verb} {status.deletion.isoformat()}")
    if status.state == "not-latest" and status.latest:
        parts.append(f"latest is {status.latest}")
    if status.projected:
        parts.append("projected from NVIDIA's policy")
    return "; ".join(parts)


def main(catalog: Catalog, *, today: str | None, warn_days: int, as_json: bool) -> int:
    """``gpu-devbox images audit``: print the findings; 1 when a base is past end of life."""
    day = parse_today(today)
    statuses = audit(catalog, day, warn_days)
    failed = [s for s in statuses if s.failed]
    as_of = tables.load(TABLE).as_of
    if as_json:
        document = {
            "today": day.isoformat(),
            "tables_as_of": as_of,
            "ok": not failed,
            "bases": [s.as_dict() for s in statuses],
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return 1 if failed else 0
    lines = [f"nvidia/cuda bases of {catalog.source} on {day.isoformat()} (tables as of {as_of}):"]
    for status in statuses:
        mark = "x" if status.failed else ("!" if status.state != "supported" else "+")
        lines.append(f"{mark} {status.base} ({', '.join(status.images)}): {_headline(status, day)}")
        lines.append(f"    {status.detail}")
        if status.remedy:
            lines.append(f"    fix: {status.remedy}")
        if status.source:
            lines.append(f"    source: {status.source}")
    if not statuses:
        lines.append("  (the catalog builds no CUDA images)")
    verdict = (
        f"FAILED: {len(failed)} base(s) past end of life"
        if failed
        else "passed: none past end of life"
    )
    lines.append(f"audit {verdict}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 1 if failed else 0
