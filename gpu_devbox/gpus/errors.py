"""Why NVML cannot be used, in words a notebook user can act on.

Every NVML failure the adapter sees is mapped to one :class:`Reason`. The codes are the
``nvmlReturn_t`` values from ``nvml.h``; the texts and remedies follow the failure table in
the project's CUDA reference notes (NVIDIA container-toolkit docs, the NVML API reference and
the driver issue threads cited there).
"""

from __future__ import annotations

import dataclasses
import enum

# nvmlReturn_t values (nvml.h). Kept here so that code outside the adapter never needs pynvml.
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_DEPRECATED = 26
NVML_ERROR_UNKNOWN = 999

#: Codes that mean "this device or driver cannot answer this one question". The field is
#: reported as ``null``; the GPU and the sampler carry on.
FIELD_UNAVAILABLE_CODES = frozenset(
    {
        NVML_ERROR_NOT_SUPPORTED,
        NVML_ERROR_FUNCTION_NOT_FOUND,  # an older driver lacks this entry point
        NVML_ERROR_NOT_FOUND,
        NVML_ERROR_INVALID_ARGUMENT,
        NVML_ERROR_DEPRECATED,
    }
)


class ReasonCode(str, enum.Enum):
    """The stated reasons NVML can be unusable. Part of the public REST contract."""

    LIBRARY_NOT_FOUND = "library_not_found"
    DRIVER_NOT_LOADED = "driver_not_loaded"
    DRIVER_LIBRARY_MISMATCH = "driver_library_mismatch"
    NO_PERMISSION = "no_permission"
    GPU_LOST = "gpu_lost"
    NO_VISIBLE_GPU = "no_visible_gpu"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class Reason:
    """A failure reason: a stable code, a one-line message and what to do about it."""

    code: ReasonCode
    message: str
    remedy: str
    nvml_error: int | None = None

    def as_dict(self) -> dict[str, object]:
        """Return the JSON form used by the REST API and the CLI."""
        return {
            "code": self.code.value,
            "message": self.message,
            "remedy": self.remedy,
            "nvml_error": self.nvml_error,
        }


_REASONS: dict[ReasonCode, tuple[str, str]] = {
    ReasonCode.LIBRARY_NOT_FOUND: (
        "NVML library not found: libnvidia-ml.so.1 is not on this machine or in this container.",
        (
            "Start the container with GPU access (docker --gpus all, a Kubernetes GPU request, or "
            "CDI) and include 'utility' in NVIDIA_DRIVER_CAPABILITIES; on a machine without an "
            "NVIDIA GPU there is nothing to monitor."
        ),
    ),
    ReasonCode.DRIVER_NOT_LOADED: (
        "NVIDIA driver not loaded: the kernel module is missing or /dev/nvidia* is not available.",
        (
            "Load the nvidia kernel module on the host (or finish the driver install) and pass the "
            "GPU devices to this container, then restart this server."
        ),
    ),
    ReasonCode.DRIVER_LIBRARY_MISMATCH: (
        (
            "Driver/library version mismatch: the host driver was upgraded without a reboot, so "
            "libnvidia-ml no longer matches the loaded kernel module."
        ),
        "Reboot the node or reload the nvidia kernel modules, then restart this server.",
    ),
    ReasonCode.NO_PERMISSION: (
        "No permission to query the GPU through NVML.",
        (
            "Give this user access to /dev/nvidia* (the 'video' group or the container runtime's "
            "device rules) and restart this server."
        ),
    ),
    ReasonCode.GPU_LOST: (
        "A GPU fell off the bus or stopped responding (NVML reports it as lost).",
        (
            "The node needs attention: drain it, then reset the GPU or reboot the node. Check the "
            "kernel log for Xid errors (e.g. Xid 79)."
        ),
    ),
    ReasonCode.NO_VISIBLE_GPU: (
        "No GPU is visible to this server.",
        "Check CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES and the GPU request of this server.",
    ),
    ReasonCode.UNKNOWN: (
        "NVML failed with an unexpected error.",
        (
            "If this appeared in a running container after a host 'systemctl daemon-reload', "
            "restart the container; otherwise check the driver with nvidia-smi on the host."
        ),
    ),
}

_CODE_TO_REASON: dict[int, ReasonCode] = {
    NVML_ERROR_LIBRARY_NOT_FOUND: ReasonCode.LIBRARY_NOT_FOUND,
    NVML_ERROR_DRIVER_NOT_LOADED: ReasonCode.DRIVER_NOT_LOADED,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: ReasonCode.DRIVER_LIBRARY_MISMATCH,
    NVML_ERROR_NO_PERMISSION: ReasonCode.NO_PERMISSION,
    NVML_ERROR_GPU_IS_LOST: ReasonCode.GPU_LOST,
}


def reason_for(code: ReasonCode, *, nvml_error: int | None = None, detail: str = "") -> Reason:
    """Build the :class:`Reason` for ``code``, optionally appending a detail to the message."""
    message, remedy = _REASONS[code]
    if detail:
        message = f"{message} ({detail})"
    return Reason(code=code, message=message, remedy=remedy, nvml_error=nvml_error)


def reason_for_nvml_error(nvml_error: int, text: str = "") -> Reason:
    """Map an ``nvmlReturn_t`` value to its stated reason (``unknown`` when none fits)."""
    code = _CODE_TO_REASON.get(nvml_error, ReasonCode.UNKNOWN)
    detail = f"NVML error {nvml_error}: {text}" if text else f"NVML error {nvml_error}"
    return reason_for(code, nvml_error=nvml_error, detail=detail)


class NvmlUnavailable(Exception):
    """NVML cannot be used right now; ``reason`` says why and what to do."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.message)
        self.reason = reason
