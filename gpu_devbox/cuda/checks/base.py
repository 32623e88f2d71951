"""What every CUDA check shares: the check record, the derived context, verdict wording."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from gpu_devbox.cuda import lifecycle
from gpu_devbox.cuda.arch import gpu_class, parse_cc, toolkit_supports
from gpu_devbox.cuda.compat import (
    Mechanism,
    Verdict,
    compat_active,
    driver_runs_cuda,
    max_cuda_for_driver,
)
from gpu_devbox.cuda.model import Facts
from gpu_devbox.cuda.versions import parse_cuda

STATUSES = ("fail", "warn", "pass", "skip")
CHECK_IDS = (
    "nvml",
    "driver-capabilities",
    "driver-vs-image-cuda",
    "base-image-lifecycle",
    "framework-cuda",
    "gpu-arch",
    "cuda-available",
)


@dataclasses.dataclass(frozen=True)
class Check:
    """One check's outcome."""

    id: str
    status: str
    title: str
    detail: str
    remedy: str = ""
    environment: str | None = None
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``environment`` and ``source`` only when set)."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
            "remedy": self.remedy,
        }
        if self.environment is not None:
            out["environment"] = self.environment
        if self.source:
            out["source"] = self.source
        return out


@dataclasses.dataclass(frozen=True)
class Context:
    """What several checks derive from the facts."""

    facts: Facts
    driver: str | None
    driver_cuda: str | None
    datacenter: bool
    compat_loaded: bool
    compat_cuda: str | None
    today: datetime.date

    @classmethod
    def build(cls, facts: Facts) -> Context:
        """Derive the context."""
        nvml = facts.nvml
        driver = nvml.driver_version if nvml.available else None
        driver_cuda = nvml.cuda_driver_version if nvml.available else None
        gpus = nvml.gpus
        datacenter = bool(gpus) and all(gpu_class(g.name) == "datacenter" for g in gpus)
        on_path = [c for c in facts.container.compat if c.on_loader_path and c.cuda_version]
        compat_cuda = None
        if on_path:
            compat_cuda = max(on_path, key=lambda c: parse_cuda(c.cuda_version) or ()).cuda_version
        loaded = bool(on_path)
        if driver and driver_cuda and compat_active(driver, driver_cuda):
            loaded, compat_cuda = True, compat_cuda or driver_cuda
        when = facts.gathered_at or datetime.datetime.now(datetime.timezone.utc)
        return cls(facts, driver, driver_cuda, datacenter, loaded, compat_cuda, when.date())

    @property
    def gpus(self) -> tuple[Any, ...]:
        """The visible GPUs (empty when NVML is unavailable)."""
        return self.facts.nvml.gpus if self.facts.nvml.available else ()

    @property
    def driver_max(self) -> str | None:
        """The newest CUDA the driver runs natively (NVML's answer unless compat is loaded)."""
        if not self.driver:
            return None
        if self.driver_cuda and not compat_active(self.driver, self.driver_cuda):
            return self.driver_cuda
        return max_cuda_for_driver(self.driver)

    def verdict(self, cuda: str) -> Verdict | None:
        """Whether the driver runs ``cuda``; ``None`` when the driver is unknown."""
        if not self.driver:
            return None
        return driver_runs_cuda(
            self.driver,
            cuda,
            datacenter=self.datacenter,
            compat_loaded=self.compat_loaded,
            driver_cuda=self.driver_cuda,
            compat_cuda=self.compat_cuda,
        )


def driver_remedy(verdict: Verdict, what: str) -> str:
    """How to get a driver that runs ``what`` (or not need one)."""
    parts = []
    if verdict.min_driver:
        parts.append(f"driver {verdict.min_driver} or newer runs it natively")
    if verdict.mvc_floor and verdict.mvc_floor != verdict.min_driver:
        parts.append(f"{verdict.mvc_floor} or newer under minor-version compatibility")
    need = "; ".join(parts) or "a newer driver"
    return f"Use a node whose driver is new enough for {what}: {need}."


def verdict_check(
    check_id: str,
    verdict: Verdict,
    what: str,
    *,
    environment: str | None = None,
    sass_for_all: bool = False,
) -> Check:
    """Turn a compatibility verdict about ``what`` into a check."""
    mech = verdict.mechanism
    detail, remedy = verdict.detail, ""
    if mech is Mechanism.NATIVE:
        status, title = "pass", f"The driver runs {what}"
    elif mech is Mechanism.FORWARD_COMPAT:
        status, title = "pass", f"{what} runs through forward compatibility"
    elif mech is Mechanism.MINOR_VERSION and sass_for_all:
        status, title = "pass", f"{what} runs through minor-version compatibility"
        detail += " It carries SASS for every visible GPU."
    elif mech is Mechanism.MINOR_VERSION:
        status, title = "warn", f"{what} runs only through minor-version compatibility"
        remedy = driver_remedy(verdict, what)
    elif mech is Mechanism.UNSUPPORTED:
        status, title = "fail", f"The driver is too old for {what}"
        remedy = driver_remedy(verdict, what)
    else:
        status, title = "warn", f"Cannot tell whether the driver runs {what}"
        remedy = "Check NVIDIA's release notes for this CUDA release's minimum driver."
    return Check(check_id, status, title, detail, remedy, environment, verdict.source)


def image_cuda(ctx: Context) -> tuple[str, str] | None:
    """The image's own CUDA toolkit and where it was read."""
    container = ctx.facts.container
    env = container.var("CUDA_VERSION")
    if env and parse_cuda(env):
        return env.strip(), "CUDA_VERSION"
    found = lifecycle.image_release(container.base_image, None)
    if found is not None:
        return found
    for lib in container.cudart:
        if lib.get("version"):
            return str(lib["version"]), f"libcudart at {lib['path']}"
    nvcc = container.nvcc or {}
    if nvcc.get("version"):
        return str(nvcc["version"]), f"nvcc at {nvcc['path']}"
    return None


def gpu_labels(ctx: Context) -> list[tuple[Any, tuple[int, int] | None]]:
    """Each visible GPU with its parsed compute capability."""
    return [(g, parse_cc(g.compute_capability)) for g in ctx.gpus]


def toolkit_gpu_lines(cuda: str, ctx: Context) -> list[tuple[bool | None, str, str]]:
    """The image toolkit against each GPU (used by the gpu-arch check)."""
    rows: list[tuple[bool | None, str, str]] = []
    for gpu, cc in gpu_labels(ctx):
        if cc is None:
            rows.append((None, f"{gpu.label}: compute capability unknown.", ""))
            continue
        ok, sentence, cite = toolkit_supports(cuda, cc)
        rows.append((ok, f"{gpu.label}: {sentence}", cite))
    return rows
