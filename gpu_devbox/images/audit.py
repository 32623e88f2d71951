"""Are the images' nvidia/cuda bases still supported? The audit CI runs before NVIDIA deletes one.

Each CUDA line's base (``nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04``) is judged on a date
under NVIDIA's published container support policy by the doctor's own reading of its dated,
cited ``cuda_containers`` table (:func:`gpu_devbox.cuda.lifecycle.status_on`): an image reaches
end of life (EOL) when the driver it shipped with does; only the latest point release of a minor
is supported; EOL tags are deleted six months later. The detail, remedy and sources come from
the doctor's own judgement (:func:`gpu_devbox.cuda.lifecycle.assess`), so the audit and
``gpu-devbox doctor`` say the same.

The states are :class:`gpu_devbox.cuda.lifecycle.ReleaseStatus`'s; ``deleted`` and ``eol`` fail
the audit.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from typing import Any

from gpu_devbox.catalog import Catalog
from gpu_devbox.cuda import lifecycle, tables
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


def audit(catalog: Catalog, today: datetime.date, warn_days: int = WARN_DAYS) -> list[BaseStatus]:
    """The status of every CUDA base the catalog builds on (the CPU base has none to judge)."""
    by_base: dict[str, list[ImageBuild]] = {}
    for build in plan(catalog):
        if build.cuda is not None:
            by_base.setdefault(build.base.image, []).append(build)
    out = []
    for base, builds in by_base.items():
        release = builds[0].base.release or ""
        status = lifecycle.status_on(release, today, warn_days)
        said = lifecycle.assess(release, f"base image {base}", None, today)
        out.append(
            BaseStatus(
                base=base,
                release=release,
                images=tuple(b.name for b in builds),
                state=status.state,
                eol=status.eol,
                deletion=status.deletion,
                latest=status.latest,
                projected=status.projected,
                detail=said.detail,
                remedy=said.remedy if status.state not in ("supported", "expiring") else "",
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
