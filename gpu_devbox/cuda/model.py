"""The facts document: its JSON Schema, validation, and typed views for the checks.

The facts are plain JSON (what ``gpu-devbox doctor --dump-facts`` writes and ``--facts`` reads;
the schema is ``gpu_devbox/cuda/data/facts.schema.json``). :func:`parse_facts` validates a
document and returns :class:`Facts`; missing optional fields read as ``None``.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
from collections.abc import Mapping
from typing import Any

from gpu_devbox.cuda import tables

#: The facts format version this gpu-devbox writes and reads.
SCHEMA_VERSION = 1


class FactsError(ValueError):
    """A facts document is invalid. The message is one line that names the bad field."""


@functools.cache
def facts_schema() -> dict[str, Any]:
    """The JSON Schema of the facts document."""
    schema: dict[str, Any] = json.loads(tables.data_text("facts.schema.json"))
    return schema


def _where(path: Any) -> str:
    parts = [f"[{part}]" if isinstance(part, int) else f".{part}" for part in path]
    return "".join(parts).lstrip(".") or "(the document)"


@functools.cache
def _validator() -> Any:
    """The facts schema's validator, made once (making one resolves the schema anew)."""
    import jsonschema

    return jsonschema.Draft202012Validator(facts_schema())


def validate_facts(document: Any) -> None:
    """Raise :class:`FactsError` naming the first bad field, if ``document`` is not valid."""
    import jsonschema

    validator = _validator()
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        raise FactsError(f"{_where(error.absolute_path)}: {message}")
    when = document.get("gathered_at")
    if when is not None and _parse_time(when) is None:
        raise FactsError(f"gathered_at: {when!r} is not an ISO 8601 date and time")


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


# ----------------------------------------------------------------------------------------------
# typed views
# ----------------------------------------------------------------------------------------------
def _get(data: Mapping[str, Any] | None, key: str, default: Any = None) -> Any:
    if not data:
        return default
    value = data.get(key, default)
    return default if value is None else value


@dataclasses.dataclass(frozen=True)
class Gpu:
    """One GPU NVML shows this server."""

    name: str
    index: int | None = None
    uuid: str | None = None
    compute_capability: str | None = None
    mig_enabled: bool | None = None

    @property
    def label(self) -> str:
        """``GPU 0 (NVIDIA H100 80GB HBM3, 9.0)``."""
        cc = f", {self.compute_capability}" if self.compute_capability else ""
        where = f"GPU {self.index}" if self.index is not None else "GPU"
        return f"{where} ({self.name}{cc})"


@dataclasses.dataclass(frozen=True)
class Nvml:
    """What NVML says (through the sampler)."""

    available: bool
    reason_code: str | None
    reason: str | None
    nvml_error: int | None
    driver_version: str | None
    cuda_driver_version: str | None
    simulated: bool
    gpu_count: int | None
    gpus: tuple[Gpu, ...]


@dataclasses.dataclass(frozen=True)
class Compat:
    """One ``/usr/local/cuda-X.Y/compat`` directory."""

    path: str
    cuda_version: str | None
    libcuda: str | None
    on_loader_path: bool


@dataclasses.dataclass(frozen=True)
class Container:
    """Facts about the image and the container runtime."""

    env: Mapping[str, str | None]
    base_image: str | None
    requested_gpus: int | None
    cudart: tuple[Mapping[str, Any], ...]
    libcuda: tuple[Mapping[str, Any], ...]
    nvcc: Mapping[str, Any] | None
    compat: tuple[Compat, ...]

    def var(self, name: str) -> str | None:
        """An environment variable (``None`` when unset)."""
        return self.env.get(name)


@dataclasses.dataclass(frozen=True)
class Environment:
    """One probed Python environment (raw framework facts kept as mappings)."""

    name: str
    kind: str
    status: str
    display_name: str | None
    python: str | None
    error: str | None
    torch: Mapping[str, Any] | None
    cupy: Mapping[str, Any] | None
    jax: Mapping[str, Any] | None
    tensorflow: Mapping[str, Any] | None
    cuda_runtime_wheels: tuple[Mapping[str, Any], ...]

    @property
    def label(self) -> str:
        """How reports name it: ``server`` or ``kernel python3 (Python 3 (ipykernel))``."""
        if self.kind == "server":
            return "server"
        shown = f" ({self.display_name})" if self.display_name else ""
        return f"kernel {self.name.removeprefix('kernel:')}{shown}"


@dataclasses.dataclass(frozen=True)
class Facts:
    """A validated facts document."""

    gathered_at: datetime.datetime | None
    nvml: Nvml
    container: Container
    environments: tuple[Environment, ...]
    machine: str | None
    document: Mapping[str, Any]


def parse_facts(document: Any) -> Facts:
    """Validate ``document`` and return its typed view.

    Raises:
        FactsError: the document is invalid; the message names the field.
    """
    validate_facts(document)
    nv = document["nvml"]
    nvml = Nvml(
        available=bool(nv["available"]),
        reason_code=_get(nv, "reason_code"),
        reason=_get(nv, "reason"),
        nvml_error=_get(nv, "nvml_error"),
        driver_version=_get(nv, "driver_version"),
        cuda_driver_version=_get(nv, "cuda_driver_version"),
        simulated=bool(_get(nv, "simulated", False)),
        gpu_count=_get(nv, "gpu_count"),
        gpus=tuple(
            Gpu(
                name=g["name"],
                index=_get(g, "index"),
                uuid=_get(g, "uuid"),
                compute_capability=_get(g, "compute_capability"),
                mig_enabled=_get(g, "mig_enabled"),
            )
            for g in _get(nv, "gpus", [])
        ),
    )
    ct = document["container"]
    container = Container(
        env=dict(_get(ct, "env", {})),
        base_image=_get(ct, "base_image"),
        requested_gpus=_get(ct, "requested_gpus"),
        cudart=tuple(_get(ct, "cudart", [])),
        libcuda=tuple(_get(ct, "libcuda", [])),
        nvcc=_get(ct, "nvcc"),
        compat=tuple(
            Compat(
                path=c["path"],
                cuda_version=_get(c, "cuda_version"),
                libcuda=_get(c, "libcuda"),
                on_loader_path=bool(c["on_loader_path"]),
            )
            for c in _get(ct, "compat", [])
        ),
    )
    environments = tuple(
        Environment(
            name=e["name"],
            kind=e["kind"],
            status=e["status"],
            display_name=_get(e, "display_name"),
            python=_get(e, "python"),
            error=_get(e, "error"),
            torch=_get(e, "torch"),
            cupy=_get(e, "cupy"),
            jax=_get(e, "jax"),
            tensorflow=_get(e, "tensorflow"),
            cuda_runtime_wheels=tuple(_get(e, "cuda_runtime_wheels", [])),
        )
        for e in document["environments"]
    )
    when = document.get("gathered_at")
    return Facts(
        gathered_at=_parse_time(when) if when else None,
        nvml=nvml,
        container=container,
        environments=environments,
        machine=_get(document.get("host"), "machine"),
        document=document,
    )
