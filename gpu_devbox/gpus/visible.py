"""Which GPUs this server may show: ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES``.

NVML itself ignores both variables, so a notebook server that reports every GPU on a shared
node would show its user other people's GPUs. The rules implemented here:

``NVIDIA_VISIBLE_DEVICES`` (the NVIDIA container runtime's variable)
    Unset or ``all``: no restriction. ``none``, ``void`` or empty: no GPU is visible. A list of
    ``GPU-``/``MIG-`` UUIDs restricts to those. A list of indices names the *host's* indices;
    inside a container the runtime has already mounted only those GPUs and NVML renumbers them
    from 0, so when NVML sees exactly as many GPUs as the list names the list is treated as
    already applied; otherwise the indices filter NVML's indices.

``CUDA_VISIBLE_DEVICES`` (the CUDA runtime's variable), applied after the above
    Unset: no restriction. Empty: no GPU. Otherwise a comma-separated list of NVML indices,
    ``GPU-`` UUIDs (a unique prefix is enough, as in CUDA) or ``MIG-`` UUIDs. As in CUDA, the
    list stops at the first entry that names no device. Indices are NVML's (PCI bus order),
    which equal CUDA's when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.

A ``MIG-`` entry makes its parent GPU visible with only that MIG instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class DeviceIdentity:
    """What the filter needs to know about one physical GPU."""

    index: int
    uuid: str
    mig_uuids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Selection:
    """One visible GPU; ``mig_uuids`` is ``None`` when all its MIG instances are visible."""

    index: int
    mig_uuids: frozenset[str] | None = None


@dataclasses.dataclass(frozen=True)
class VisibleDevices:
    """The parsed visibility rules. ``None`` for a variable means "no restriction"."""

    nvidia: tuple[str, ...] | None = None
    cuda: tuple[str, ...] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], override: str | None = None) -> VisibleDevices:
        """Read the rules from ``env``; a non-empty ``override`` replaces both variables."""
        if override:
            return cls(nvidia=None, cuda=_split(override))
        nvidia_raw = env.get("NVIDIA_VISIBLE_DEVICES")
        nvidia: tuple[str, ...] | None
        if nvidia_raw is None or nvidia_raw.strip().lower() == "all":
            nvidia = None
        elif nvidia_raw.strip().lower() in ("", "none", "void"):
            nvidia = ()
        else:
            nvidia = _split(nvidia_raw)
        cuda_raw = env.get("CUDA_VISIBLE_DEVICES")
        cuda = None if cuda_raw is None else _split(cuda_raw)
        return cls(nvidia=nvidia, cuda=cuda)

    def describe(self) -> str:
        """A short human description, for logs and the status route."""
        parts = []
        if self.nvidia is not None:
            parts.append("NVIDIA_VISIBLE_DEVICES=" + (",".join(self.nvidia) or "none"))
        if self.cuda is not None:
            parts.append("CUDA_VISIBLE_DEVICES=" + ",".join(self.cuda))
        return "; ".join(parts) or "all GPUs"

    def select(self, devices: Sequence[DeviceIdentity]) -> list[Selection]:
        """Return the visible GPUs among ``devices``, in NVML index order."""
        pool = list(devices)
        mig_filter: dict[int, set[str]] = {}
        if self.nvidia is not None:
            pool, mig_filter = _apply_nvidia(self.nvidia, pool)
        if self.cuda is not None:
            pool, mig_filter = _apply_cuda(self.cuda, pool, mig_filter)
        return [
            Selection(
                index=d.index,
                mig_uuids=frozenset(mig_filter[d.index]) if d.index in mig_filter else None,
            )
            for d in sorted(pool, key=lambda d: d.index)
        ]


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _find(entry: str, pool: Sequence[DeviceIdentity]) -> tuple[DeviceIdentity, str | None] | None:
    """Resolve one entry to a device (and a MIG UUID if it named one), or ``None``."""
    if entry.upper().startswith("MIG-"):
        for d in pool:
            for mig in d.mig_uuids:
                if mig.lower() == entry.lower():
                    return d, mig
        return None
    if entry.upper().startswith("GPU-"):
        matches = [d for d in pool if d.uuid.lower().startswith(entry.lower())]
        return (matches[0], None) if len(matches) == 1 else None
    try:
        index = int(entry)
    except ValueError:
        return None
    for d in pool:
        if d.index == index:
            return d, None
    return None


def _apply_nvidia(
    entries: tuple[str, ...], pool: list[DeviceIdentity]
) -> tuple[list[DeviceIdentity], dict[int, set[str]]]:
    if not entries:
        return [], {}
    all_indices = all(e.lstrip("-").isdigit() for e in entries)
    if all_indices and len(entries) == len(pool):
        # The container runtime already mounted exactly these GPUs and NVML renumbered them.
        return pool, {}
    chosen: dict[int, DeviceIdentity] = {}
    migs: dict[int, set[str]] = {}
    for entry in entries:
        found = _find(entry, pool)
        if found is None:
            continue
        device, mig = found
        chosen[device.index] = device
        if mig is not None:
            migs.setdefault(device.index, set()).add(mig)
    return list(chosen.values()), migs


def _apply_cuda(
    entries: tuple[str, ...], pool: list[DeviceIdentity], migs_in: dict[int, set[str]]
) -> tuple[list[DeviceIdentity], dict[int, set[str]]]:
    chosen: dict[int, DeviceIdentity] = {}
    migs: dict[int, set[str]] = {}
    for entry in entries:
        found = _find(entry, pool)
        if found is None:
            break  # CUDA stops enumerating at the first entry that names no device
        device, mig = found
        if mig is not None and device.index in migs_in and mig not in migs_in[device.index]:
            break
        chosen.setdefault(device.index, device)
        if mig is not None:
            migs.setdefault(device.index, set()).add(mig)
    # Devices the first filter restricted to some MIG instances keep that restriction.
    for index in chosen:
        if index in migs_in and index not in migs:
            migs[index] = set(migs_in[index])
    return list(chosen.values()), migs
