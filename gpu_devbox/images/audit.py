"""Are the images' nvidia/cuda bases still supported? The audit CI runs before NVIDIA deletes one.

Each CUDA line's base (``nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04``) is judged on a date
under NVIDIA's published container support policy by the doctor's own reading of its dated,
cited ``cuda_containers`` table (:func:`gpu_devbox.cuda.lifecycle.status_on`): an image reaches
end of life (EOL) when the driver it shipped with does; only the latest point release of a minor
is supported; EOL tags are deleted six months later. The detail, remedy and sources come from
the doctor's own judgement (:func:`gpu_devbox.cuda.lifecycle.assess`), so the audit and
``gpu-devbox doctor`` say the same.

The states are :class:`gpu_devbox.cuda.lifecycle.ReleaseStatus`'s; ``deleted`` and ``eol`` fail
the audit. With ``--pull`` each base is also asked itself (:mod:`gpu_devbox.images.pulled`): an
image that prints NVIDIA's deprecation notice fails whatever the table says. The audit warns
when its table is older than :data:`STALE_DAYS` on the day it judges: NVIDIA may have moved a
date since.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from typing import Any

from gpu_devbox.catalog import Catalog
from gpu_devbox.cuda import lifecycle, tables
from gpu_devbox.images import pulled
from gpu_devbox.images.plan import ImageBuild, ImagesError, plan

TABLE = "cuda_containers"
FAILING = ("deleted", "eol")
#: How early a coming end of life is reported (``expiring``).
WARN_DAYS = 90
#: How old the table may be before the audit warns that it may be out of date.
STALE_DAYS = 90


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


def stale_warning(as_of: str, today: datetime.date, days: int = STALE_DAYS) -> str | None:
    """One line when the table is older than ``days`` on ``today``, else ``None``."""
    age = (today - datetime.date.fromisoformat(as_of)).days
    if age <= days:
        return None
    return (
        f"warning: the audit's table is from {as_of}, {age} days before {today.isoformat()} "
        f"(more than {days}): NVIDIA may have changed its dates since; update gpu-devbox, and "
        "run the audit with --pull to ask the images themselves"
    )


def main(
    catalog: Catalog,
    *,
    today: str | None,
    warn_days: int,
    as_json: bool,
    runtime: list[str] | None = None,
    run_args: list[str] | None = None,
) -> int:
    """``gpu-devbox images audit``: print the findings; 1 when a base is past end of life or
    (with ``runtime``: ``--pull``) prints NVIDIA's deprecation notice."""
    day = parse_today(today)
    statuses = audit(catalog, day, warn_days)
    inspections: dict[str, pulled.Inspection] = {}
    if runtime is not None:
        for status in statuses:
            inspections[status.base] = pulled.inspect(runtime, status.base, run_args)
    failed = [s for s in statuses if s.failed or inspections.get(s.base, _CLEAN).deprecated]
    broken = [i for i in inspections.values() if i.error]
    as_of = tables.load(TABLE).as_of
    warning = stale_warning(as_of, day)
    if warning:
        print(warning, file=sys.stderr)
    code = 1 if failed else (2 if broken else 0)
    if as_json:
        document = {
            "today": day.isoformat(),
            "tables_as_of": as_of,
            "tables_stale": warning is not None,
            "ok": not failed and not broken,
            "bases": [
                {**s.as_dict(), "pulled": inspections[s.base].as_dict()}
                if s.base in inspections
                else s.as_dict()
                for s in statuses
            ],
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return code
    lines = [f"nvidia/cuda bases of {catalog.source} on {day.isoformat()} (tables as of {as_of}):"]
    for status in statuses:
        seen = inspections.get(status.base)
        bad = status.failed or (seen is not None and seen.deprecated)
        mark = "x" if bad else ("!" if status.state != "supported" else "+")
        lines.append(f"{mark} {status.base} ({', '.join(status.images)}): {_headline(status, day)}")
        lines.append(f"    {status.detail}")
        if seen is not None:
            lines.append(f"    {_pulled_line(seen)}")
        if status.remedy:
            lines.append(f"    fix: {status.remedy}")
        if status.source:
            lines.append(f"    source: {status.source}")
    if not statuses:
        lines.append("  (the catalog builds no CUDA images)")
    if failed:
        verdict = f"FAILED: {len(failed)} base(s) past end of life or deprecated"
    elif broken:
        verdict = f"FAILED: {len(broken)} base(s) could not be inspected"
    else:
        verdict = "passed: none past end of life" + (
            ", none showing a deprecation notice" if inspections else ""
        )
    lines.append(f"audit {verdict}")
    sys.stdout.write("\n".join(lines) + "\n")
    return code


_CLEAN = pulled.Inspection("", False, None, ())


def _pulled_line(seen: pulled.Inspection) -> str:
    how = "pulled" if seen.pulled else "present"
    if seen.error:
        return f"the image ({how}): {seen.error}"
    if seen.notice:
        return f"the image ({how}) prints NVIDIA's notice: {' / '.join(seen.notice)}"
    if seen.eol_variable is not None:
        return f"the image ({how}) sets {pulled.EOL_VARIABLE}={seen.eol_variable}"
    return f"the image ({how}) prints no deprecation notice"
