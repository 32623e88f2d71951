"""The per-environment checks: ``framework-cuda``, ``gpu-arch`` and ``cuda-available``.

Each probed environment may hold torch, cupy, jax and tensorflow. Each framework becomes a
:class:`Build` (a CUDA build, a CPU-only build, a ROCm build, or broken), and each build is
judged against the driver, the GPUs' compute capabilities and what NVML sees.
"""

from __future__ import annotations

import dataclasses
import re

from gpu_devbox.cuda import tables
from gpu_devbox.cuda.arch import TORCH_INDEX, coverage, sm_name, torch_variant_hint
from gpu_devbox.cuda.checks.base import (
    Check,
    Context,
    gpu_labels,
    image_cuda,
    toolkit_gpu_lines,
    verdict_check,
)
from gpu_devbox.cuda.checks.builds import Build, environment_builds
from gpu_devbox.cuda.compat import Mechanism, Verdict
from gpu_devbox.cuda.model import Environment
from gpu_devbox.cuda.versions import parse_cuda

NO_KERNEL_IMAGE = "no kernel image is available for execution on the device"
_CUDA_WORDS = re.compile(r"cuda|nvidia|driver|gpu|device", re.IGNORECASE)


def _cpu_remedy(build: Build, ctx: Context) -> str:
    if build.framework == "torch":
        variant = best_torch_variant(ctx)
        if variant:
            index = TORCH_INDEX.format(variant=variant)
            return f"Install a CUDA build: pip install torch --index-url {index}"
        return "Install a CUDA build of torch."
    if build.framework == "jax":
        driver_cuda = parse_cuda(ctx.driver_cuda) or (12,)
        return f"Install a CUDA build: pip install 'jax[cuda{13 if driver_cuda[0] >= 13 else 12}]'"
    if build.framework == "tensorflow":
        return "Install a CUDA build: pip install 'tensorflow[and-cuda]'"
    return "Install a CUDA build."


def best_torch_variant(ctx: Context) -> str | None:
    """The newest PyTorch wheel variant this driver runs and that covers every visible GPU."""
    table = tables.load("pytorch_wheels")
    exact = [r for r in table.rows if r.get("arch_list")]
    newest = [r for r in exact if r["torch"] == exact[0]["torch"]] if exact else []
    ccs = [cc for _, cc in gpu_labels(ctx) if cc is not None]
    ranked: list[tuple[int, tuple[int, ...], str]] = []
    for row in newest:
        if any(coverage(row["arch_list"], cc).kind in ("none",) for cc in ccs):
            continue
        verdict = ctx.verdict(row["cuda"])
        score = {Mechanism.NATIVE: 2, Mechanism.FORWARD_COMPAT: 2, Mechanism.MINOR_VERSION: 1}
        rank = score.get(verdict.mechanism, 0) if verdict is not None else 1
        if rank:
            ranked.append((rank, parse_cuda(row["cuda"]) or (), str(row["variant"])))
    return max(ranked)[2] if ranked else None


def _sass_for_all(build: Build, ctx: Context) -> bool:
    ccs = [cc for _, cc in gpu_labels(ctx)]
    if not build.arch_list or not ccs or any(cc is None for cc in ccs):
        return False
    return all(
        coverage(build.arch_list, cc).kind in ("sass", "sass_compatible")
        for cc in ccs
        if cc is not None
    )


def framework_cuda(build: Build, ctx: Context) -> Check:
    """``framework-cuda`` for one build."""
    env = build.environment
    if build.kind == "broken":
        return Check(
            "framework-cuda",
            "fail",
            f"{build.framework} does not work in this environment",
            f"{build.label}: {build.error}",
            f"Reinstall {build.framework} there; when the error names a missing lib*.so, the CUDA "
            "libraries it was built against are missing.",
            env,
        )
    if build.kind == "rocm":
        return Check(
            "framework-cuda", "skip", f"{build.label} is a ROCm build", "Not a CUDA build.", "", env
        )
    if build.kind == "cpu":
        if ctx.gpus:
            return Check(
                "framework-cuda",
                "warn",
                f"{build.label} is a CPU-only build",
                f"It cannot use the {len(ctx.gpus)} visible GPU(s).",
                _cpu_remedy(build, ctx),
                env,
            )
        return Check(
            "framework-cuda",
            "pass",
            f"{build.label} is a CPU-only build",
            "No GPU is visible here.",
            "",
            env,
        )
    assert build.cuda is not None
    verdict = ctx.verdict(build.cuda)
    what = f"{build.label} (built for CUDA {build.cuda})"
    if verdict is None:
        return Check(
            "framework-cuda",
            "skip",
            "The driver is unknown",
            f"{what}; NVML is unavailable (see nvml), so its driver cannot be checked.",
            "",
            env,
        )
    check = verdict_check(
        "framework-cuda", verdict, what, environment=env, sass_for_all=_sass_for_all(build, ctx)
    )
    if check.status == "fail" and build.framework == "torch":
        variant = best_torch_variant(ctx)
        if variant:
            index = TORCH_INDEX.format(variant=variant)
            check = dataclasses.replace(
                check,
                remedy=f"{check.remedy} Or install the {variant} wheels this driver runs: "
                f"pip install torch --index-url {index}",
            )
    return check


def _arch_lines(build: Build, verdict: Verdict | None, ctx: Context) -> list[tuple[str, str]]:
    lines = []
    assert build.arch_list is not None
    for gpu, cc in gpu_labels(ctx):
        if cc is None:
            lines.append(("skip", f"{gpu.label}: compute capability unknown."))
            continue
        cov = coverage(build.arch_list, cc)
        if cov.kind == "sass":
            lines.append(("pass", f"{gpu.label}: {cov.entry}."))
        elif cov.kind == "sass_compatible":
            lines.append(
                ("pass", f"{gpu.label}: runs the {cov.entry} code (same major, older minor).")
            )
        elif cov.kind == "ptx" and verdict is not None and verdict.ptx_jit:
            lines.append(
                (
                    "pass",
                    (
                        f"{gpu.label}: no {sm_name(cc)} code; the driver JIT-compiles the "
                        f"{cov.entry} PTX (slow first start)."
                    ),
                )
            )
        elif cov.kind == "ptx":
            why = (
                "under minor-version compatibility the driver cannot JIT-compile it"
                if verdict and verdict.mechanism is Mechanism.MINOR_VERSION
                else "the driver cannot JIT-compile it"
            )
            lines.append(
                ("fail", f"{gpu.label}: only {cov.entry} PTX, and {why}: '{NO_KERNEL_IMAGE}'.")
            )
        else:
            lines.append(
                (
                    "fail",
                    (
                        f"{gpu.label}: no code for {sm_name(cc)} in "
                        f"{', '.join(build.arch_list)}: '{NO_KERNEL_IMAGE}'."
                    ),
                )
            )
    return lines


def gpu_arch(build: Build, ctx: Context) -> Check | None:
    """``gpu-arch`` for one CUDA build (``None`` when it has no architecture list to judge)."""
    if build.kind != "cuda" or build.framework not in ("torch", "tensorflow"):
        return None
    env = build.environment
    if not build.arch_list:
        return Check(
            "gpu-arch",
            "warn",
            f"The compiled architectures of {build.label} are unknown",
            "The probe could not read them.",
            "",
            env,
        )
    verdict = ctx.verdict(build.cuda) if build.cuda else None
    lines = _arch_lines(build, verdict, ctx)
    failed = [text for status, text in lines if status == "fail"]
    detail = " ".join(text for _, text in lines)
    cite = tables.load("architectures").sources["binary-compat"]
    source = f"{cite['title']} <{cite['url']}> [{cite['quality']}]"
    if failed:
        remedy = "Use a build with code for these GPUs."
        variant = best_torch_variant(ctx) if build.framework == "torch" else None
        if variant is not None:
            index = TORCH_INDEX.format(variant=variant)
            remedy = (
                f"Install the {variant} wheels, which carry code for these GPUs and run on this "
                f"driver: pip install torch --index-url {index}"
            )
        elif build.framework == "torch":
            hints = dict.fromkeys(
                torch_variant_hint(cc) for _, cc in gpu_labels(ctx) if cc is not None
            )
            remedy = " ".join(hints)
        return Check(
            "gpu-arch",
            "fail",
            f"{build.label} has no kernels for a visible GPU",
            detail,
            remedy,
            env,
            source,
        )
    return Check(
        "gpu-arch",
        "pass",
        f"{build.label} has kernels for every visible GPU",
        detail,
        "",
        env,
        source,
    )


def image_arch(ctx: Context) -> Check | None:
    """``gpu-arch`` for the image's own toolkit."""
    found = image_cuda(ctx)
    if found is None:
        return None
    cuda, origin = found
    rows = toolkit_gpu_lines(cuda, ctx)
    detail = " ".join(sentence for _, sentence, _ in rows)
    source = "; ".join(dict.fromkeys(cite for _, _, cite in rows if cite))
    if any(ok is False for ok, _, _ in rows):
        return Check(
            "gpu-arch",
            "fail",
            f"The image's CUDA {cuda} does not support a visible GPU",
            f"{detail} (Image CUDA from {origin}.)",
            "Use an image whose CUDA supports these GPUs (Maxwell to Volta need CUDA 12.x; "
            "Blackwell needs 12.8+).",
            None,
            source,
        )
    if all(ok is None for ok, _, _ in rows):
        return Check(
            "gpu-arch",
            "skip",
            "The visible GPUs' architectures are unknown",
            detail,
            "",
            None,
            source,
        )
    return Check(
        "gpu-arch",
        "pass",
        f"The image's CUDA {cuda} supports every visible GPU",
        detail,
        "",
        None,
        source,
    )


def cuda_available(build: Build, ctx: Context) -> Check | None:
    """``cuda-available`` for one build: does it see the GPUs NVML sees?"""
    if build.kind in ("broken", "rocm") or build.sees is None:
        return None
    env = build.environment
    nvml_sees = len(ctx.gpus)
    mig = any(g.mig_enabled for g in ctx.gpus)
    if build.sees and nvml_sees:
        if build.sees != nvml_sees and not mig:
            return Check(
                "cuda-available",
                "warn",
                f"{build.framework} and NVML see different GPU counts",
                f"{build.label} sees {build.sees} GPU(s), NVML shows {nvml_sees}.",
                "Check CUDA_VISIBLE_DEVICES in this environment.",
                env,
            )
        return Check(
            "cuda-available",
            "pass",
            f"{build.framework} sees the GPU(s)",
            f"{build.label} sees {build.sees} GPU(s); NVML shows {nvml_sees}.",
            "",
            env,
        )
    if build.sees and not nvml_sees:
        nvml = ctx.facts.nvml
        return Check(
            "cuda-available",
            "warn",
            f"{build.framework} sees GPUs that NVML does not",
            f"{build.label} sees {build.sees} GPU(s), but NVML shows none "
            f"({nvml.reason or 'no reason given'}).",
            "GPU metrics need NVML: include 'utility' in NVIDIA_DRIVER_CAPABILITIES (see nvml).",
            env,
        )
    if not nvml_sees:
        return Check(
            "cuda-available",
            "pass",
            "No GPU, and the framework agrees",
            f"{build.label} runs on the CPU; NVML shows no GPU either.",
            "",
            env,
        )
    why, remedy = _why_no_gpu(build, ctx)
    return Check(
        "cuda-available",
        "fail",
        f"{build.framework} cannot use the GPU(s) NVML shows",
        f"NVML shows {nvml_sees} GPU(s) but {build.label} sees none: {why}.",
        remedy,
        env,
    )


def _why_no_gpu(build: Build, ctx: Context) -> tuple[str, str]:
    """Why a build sees none of the GPUs NVML shows, from the facts, and what to do."""
    reasons = []
    remedy = (
        "Fix the cause named by framework-cuda / gpu-arch for this environment, then restart "
        "its kernels."
    )
    if build.kind == "cpu":
        reasons.append("it is a CPU-only build")
        remedy = _cpu_remedy(build, ctx)
    elif build.cuda and (verdict := ctx.verdict(build.cuda)) is not None and not verdict.ok:
        reasons.append(verdict.detail)
    cvd = ctx.facts.container.var("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip() in ("", "-1", "none", "NoDevFiles"):
        reasons.append(f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU")
        remedy = "Unset CUDA_VISIBLE_DEVICES (or list the GPUs) in this environment."
    # The framework's own words about CUDA (e.g. "The NVIDIA driver on your system is too old").
    reasons.extend([w for w in build.warnings if _CUDA_WORDS.search(w)][:2])
    if build.error:
        reasons.append(build.error)
    why = "; ".join(r.rstrip(". ") for r in reasons) or "the cause is not in the facts"
    return why, remedy


def _environment_status(env: Environment) -> Check | None:
    if env.status == "ok":
        return None
    if env.status in ("not_python", "skipped"):
        return Check(
            "framework-cuda",
            "skip",
            f"{env.label}: not probed",
            env.error or env.status,
            "",
            env.label,
        )
    return Check(
        "framework-cuda",
        "warn",
        f"{env.label} could not be probed",
        env.error or env.status,
        "Check that the interpreter starts; raise c.GPUDevbox.checks_probe_timeout if it is slow.",
        env.label,
    )


def framework_checks(ctx: Context) -> list[Check]:
    """All per-environment checks, grouped by check id."""
    builds: list[Build] = []
    status_rows: list[Check] = []
    for env in ctx.facts.environments:
        row = _environment_status(env)
        if row is not None:
            status_rows.append(row)
        builds.extend(environment_builds(env))
    framework_rows = status_rows + [framework_cuda(b, ctx) for b in builds]
    if not builds:
        framework_rows.append(
            Check(
                "framework-cuda",
                "skip",
                "No GPU framework found",
                "No Python environment has torch, cupy, jax or tensorflow.",
            )
        )
    arch_rows: list[Check] = []
    if ctx.gpus:
        image_row = image_arch(ctx)
        if image_row is not None:
            arch_rows.append(image_row)
        arch_rows.extend(c for b in builds if (c := gpu_arch(b, ctx)) is not None)
    if not arch_rows:
        arch_rows.append(
            Check(
                "gpu-arch",
                "skip",
                "Nothing to compare",
                "No visible GPU, or no toolkit or framework with compiled architectures.",
            )
        )
    available_rows = [c for b in builds if (c := cuda_available(b, ctx)) is not None]
    if not available_rows:
        available_rows.append(
            Check(
                "cuda-available",
                "skip",
                "No framework to ask",
                "No Python environment has a working GPU framework.",
            )
        )
    return framework_rows + arch_rows + available_rows
