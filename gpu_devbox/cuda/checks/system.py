"""The system-wide checks.

``nvml``, ``driver-capabilities``, ``driver-vs-image-cuda`` and ``base-image-lifecycle``.
"""

from __future__ import annotations

import dataclasses

from gpu_devbox.cuda import lifecycle, tables
from gpu_devbox.cuda.arch import gpu_class
from gpu_devbox.cuda.checks.base import Check, Context, image_cuda, verdict_check
from gpu_devbox.cuda.compat import Mechanism, compat_branches
from gpu_devbox.cuda.versions import parse_date, parse_driver
from gpu_devbox.gpus.errors import ReasonCode, reason_for


def check_nvml(ctx: Context) -> Check:
    """``nvml``: NVML usable; the reason and the fix when not."""
    nvml = ctx.facts.nvml
    requested = ctx.facts.container.requested_gpus
    if nvml.available and nvml.reason_code is None:
        gpus = ", ".join(g.label for g in nvml.gpus)
        detail = (
            f"Driver {nvml.driver_version} (CUDA {nvml.cuda_driver_version or 'unknown'}); "
            f"{len(nvml.gpus)} GPU(s) visible: {gpus}."
        )
        detail += _branch_note(nvml.driver_version, ctx)
        if nvml.simulated:
            return Check(
                "nvml",
                "warn",
                "NVML facts come from the simulated backend",
                detail + " These GPUs are invented (c.GPUDevbox.backend = 'simulated').",
                "Use the nvml backend to check real GPUs.",
            )
        return Check("nvml", "pass", "NVML works", detail)
    code = nvml.reason_code or ReasonCode.UNKNOWN.value
    try:
        reason = reason_for(ReasonCode(code))
    except ValueError:
        reason = reason_for(ReasonCode.UNKNOWN)
    detail = nvml.reason or reason.message
    if requested == 0:
        return Check(
            "nvml",
            "skip" if not nvml.available else "pass",
            "No GPU was requested for this server",
            f"{detail} This server's profile requested no GPU (GPU_DEVBOX_REQUESTED_GPUS=0).",
        )
    hidden = (ctx.facts.container.var("NVIDIA_VISIBLE_DEVICES") or "").strip().lower()
    if hidden in ("void", "none"):
        # A CPU image or profile hides the GPUs on purpose; NVML is then rightly absent.
        return Check(
            "nvml",
            "skip",
            "This server was started without GPUs",
            f"{detail} NVIDIA_VISIBLE_DEVICES={hidden} asks the container runtime for no GPU.",
        )
    status = "warn" if nvml.available else "fail"
    title = reason.message.split(":")[0].rstrip(".")
    return Check("nvml", status, title, detail, reason.remedy)


def _branch_note(driver: str | None, ctx: Context) -> str:
    """A sentence saying the driver's branch reached end of life (empty when it has not)."""
    parsed = parse_driver(driver)
    if parsed is None:
        return ""
    table = tables.load("driver_branches")
    for row in table.rows:
        eol = parse_date(row.get("eol"))
        if row["branch"] == parsed[0] and eol is not None and eol <= ctx.today:
            kind = {"LTSB": "long-term support", "PB": "production", "NFB": "new feature"}
            what = kind.get(str(row.get("type")), "data-center")
            return (
                f" Driver branch R{row['branch']} ({what} branch) reached end of life in "
                f"{eol.strftime('%B %Y')}."
            )
    return ""


def _caps(value: str | None) -> set[str] | None:
    if value is None:
        return None
    caps = {c.strip().lower() for c in value.split(",") if c.strip()}
    return (
        {"compute", "utility", "graphics", "video", "display", "compat32"}
        if "all" in caps
        else caps
    )


def check_driver_capabilities(ctx: Context) -> Check:
    """``driver-capabilities``: compute and utility present; GPUs visible though not requested."""
    container = ctx.facts.container
    caps_raw = container.var("NVIDIA_DRIVER_CAPABILITIES")
    visible = container.var("NVIDIA_VISIBLE_DEVICES")
    caps = _caps(caps_raw)
    gpus = len(ctx.gpus)
    unjudged = _capabilities_not_judged(ctx, caps, visible, gpus)
    if unjudged is not None:
        return unjudged
    problems = [
        *_capability_problems(caps, caps_raw, gpus, libcuda=bool(container.libcuda)),
        *_request_problems(ctx, container.requested_gpus, gpus, visible),
    ]
    if problems:
        status = "fail" if any(p[0] == "fail" for p in problems) else "warn"
        return Check(
            "driver-capabilities",
            status,
            "The container runtime's GPU settings need attention",
            " ".join(p[1] for p in problems),
            " ".join(dict.fromkeys(p[2] for p in problems)),
        )
    shown = caps_raw if caps_raw is not None else "unset (libcuda found)"
    return Check(
        "driver-capabilities",
        "pass",
        "The container runtime provides compute and utility",
        f"NVIDIA_DRIVER_CAPABILITIES={shown}; NVIDIA_VISIBLE_DEVICES={visible or 'unset'}.",
    )


#: One thing wrong with the runtime's GPU settings: (status, sentence, remedy).
_Problem = tuple[str, str, str]
_WANT_CAPS = "NVIDIA_DRIVER_CAPABILITIES=compute,utility"


def _capabilities_not_judged(
    ctx: Context, caps: set[str] | None, visible: str | None, gpus: int
) -> Check | None:
    """The answer when there is nothing to judge: simulated GPUs, no NVIDIA runtime, GPUs hidden."""
    if ctx.facts.nvml.simulated:
        return Check(
            "driver-capabilities",
            "skip",
            "The GPUs are simulated",
            "The container runtime's GPU settings cannot be judged against invented GPUs.",
        )
    if caps is None and visible is None and not gpus:
        return Check(
            "driver-capabilities",
            "skip",
            "Not started by the NVIDIA container runtime",
            "NVIDIA_VISIBLE_DEVICES and NVIDIA_DRIVER_CAPABILITIES are unset; no GPU is visible.",
        )
    if visible is not None and visible.strip().lower() in ("none", "void", ""):
        hidden = (
            f"NVIDIA_VISIBLE_DEVICES={visible!r}: GPUs are deliberately hidden from this server."
        )
        status = "pass" if not gpus else "warn"
        return Check("driver-capabilities", status, "GPUs are hidden from this server", hidden)
    return None


def _capability_problems(
    caps: set[str] | None, caps_raw: str | None, gpus: int, *, libcuda: bool
) -> list[_Problem]:
    """Missing ``compute`` (no libcuda mounted) or ``utility`` (no NVML)."""
    problems: list[_Problem] = []
    if caps is not None and "compute" not in caps:
        problems.append(
            (
                "fail",
                (
                    f"NVIDIA_DRIVER_CAPABILITIES={caps_raw!r} lacks 'compute': the runtime "
                    "does not mount libcuda, so CUDA cannot be used."
                ),
                f"Set {_WANT_CAPS} in the image or the profile's environment.",
            )
        )
    elif caps is None and gpus and not libcuda:
        problems.append(
            (
                "fail",
                (
                    "NVIDIA_DRIVER_CAPABILITIES is unset (the runtime's default is 'utility' only) "
                    "and no libcuda.so.1 is on the loader path, so CUDA cannot be used."
                ),
                f"Set {_WANT_CAPS} in the image or the profile's environment.",
            )
        )
    if caps is not None and "utility" not in caps:
        problems.append(
            (
                "warn",
                (
                    f"NVIDIA_DRIVER_CAPABILITIES={caps_raw!r} lacks 'utility': NVML and nvidia-smi "
                    "are not mounted, so GPU metrics are unavailable."
                ),
                f"Set {_WANT_CAPS}.",
            )
        )
    return problems


def _request_problems(
    ctx: Context, requested: int | None, gpus: int, visible: str | None
) -> list[_Problem]:
    """GPUs visible to a profile that asked for none, or fewer than it asked for."""
    if requested == 0 and gpus:
        return [
            (
                "warn",
                (
                    f"This server's profile requested no GPU, yet it sees {gpus} GPU(s) "
                    f"(NVIDIA_VISIBLE_DEVICES={visible!r}): it can use GPUs given to others."
                ),
                "Set NVIDIA_VISIBLE_DEVICES=void in the environment of CPU-only profiles.",
            )
        ]
    if requested and gpus < requested and ctx.facts.nvml.available:
        return [
            (
                "warn",
                f"This server's profile requested {requested} GPU(s) but {gpus} are visible.",
                "Check the GPU request and NVIDIA_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES.",
            )
        ]
    return []


def _compat_hazard(ctx: Context) -> Check | None:
    """Loaded compat libraries that break CUDA: on a non-data-center GPU (error 804), or older
    than the kernel driver (error 803)."""
    host = parse_driver(ctx.driver)
    if host is None:
        return None
    for compat in ctx.facts.container.compat:
        if not compat.on_loader_path:
            continue
        classes = {gpu_class(g.name) for g in ctx.gpus}
        if classes - {"datacenter"}:
            known_bad = bool(classes & {"consumer", "workstation"})
            return Check(
                "driver-vs-image-cuda",
                "fail" if known_bad else "warn",
                "Forward-compatibility libraries are loaded on a GPU that does not support them",
                f"{compat.path} is on the loader path, but forward compatibility works only on "
                "data-center GPUs (and selected NGC-Server-Ready RTX SKUs): CUDA fails with "
                "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE (804) on "
                + ", ".join(g.label for g in ctx.gpus)
                + ".",
                f"Remove {compat.path} from LD_LIBRARY_PATH (and /etc/ld.so.conf.d) and use an "
                "image whose CUDA this driver runs.",
                source=_fc_cite(),
            )
        if not compat.libcuda:
            continue
        built_for = parse_driver(compat.libcuda.partition(".so.")[2])
        if built_for is not None and built_for < host:
            return Check(
                "driver-vs-image-cuda",
                "fail",
                "Forward-compatibility libraries older than the driver are loaded",
                f"{compat.path} ({compat.libcuda}) is on the loader path, but the driver is "
                f"{ctx.driver}: CUDA fails with CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803).",
                f"Remove {compat.path} from LD_LIBRARY_PATH (and /etc/ld.so.conf.d): this "
                "driver does not need it.",
                source=_fc_cite(),
            )
    return None


def _fc_cite() -> str:
    table = tables.load("forward_compat")
    return table.cite(table.rows[0])


def check_driver_vs_image(ctx: Context) -> Check:
    """``driver-vs-image-cuda``."""
    found = image_cuda(ctx)
    if found is None:
        return Check(
            "driver-vs-image-cuda",
            "skip",
            "The image has no CUDA toolkit of its own",
            "No CUDA_VERSION, libcudart or nvcc was found; frameworks bring their own CUDA "
            "(see framework-cuda).",
        )
    cuda, origin = found
    mismatch = _compat_hazard(ctx)
    if mismatch is not None:
        return mismatch
    verdict = ctx.verdict(cuda)
    if verdict is None:
        return Check(
            "driver-vs-image-cuda",
            "skip",
            "The driver is unknown",
            f"The image has CUDA {cuda} ({origin}), but NVML is unavailable (see nvml).",
        )
    check = verdict_check("driver-vs-image-cuda", verdict, f"the image's CUDA {cuda}")
    remedy = check.remedy
    if verdict.mechanism is Mechanism.UNSUPPORTED and ctx.datacenter and not ctx.compat_loaded:
        branches = compat_branches(cuda) or ()
        branch = ctx.driver.split(".")[0] if ctx.driver else ""
        minor = ".".join(cuda.split(".")[:2])
        if branch.isdigit() and int(branch) in branches:
            remedy += (
                f" Or, on this data-center GPU, put /usr/local/cuda-{minor}/compat on "
                "LD_LIBRARY_PATH (forward compatibility)."
            )
    return dataclasses.replace(
        check, detail=f"{check.detail} (Image CUDA from {origin}.)", remedy=remedy
    )


def check_base_image(ctx: Context) -> Check:
    """``base-image-lifecycle``."""
    container = ctx.facts.container
    eol = container.var("NVIDIA_CUDA_END_OF_LIFE")
    found = lifecycle.image_release(container.base_image, container.var("CUDA_VERSION"))
    if found is None:
        if eol:
            found = ("unknown", "NVIDIA_CUDA_END_OF_LIFE")
        else:
            return Check(
                "base-image-lifecycle",
                "skip",
                "Not built on an nvidia/cuda image",
                "No CUDA_VERSION and no recorded nvidia/cuda base image: NVIDIA's container "
                "support policy does not apply.",
            )
    result = lifecycle.assess(found[0], found[1], eol, ctx.today, ctx.driver_max)
    return Check(
        "base-image-lifecycle",
        result.status,
        result.title,
        result.detail,
        result.remedy,
        source=result.source,
    )
