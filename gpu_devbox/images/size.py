"""How big a built image is, per group of layers, and whether it keeps to its budget.

Reads an image saved to a directory: an OCI layout (``index.json``; a ``docker save`` archive
unpacked, ``skopeo copy ... oci:DIR``) or the ``dir`` transport's layout (``manifest.json``;
``podman save --format docker-dir --compress``). The manifest gives each layer's compressed
size, the layer blobs give the uncompressed size (gunzipped as a stream, never held in memory),
and the config's history says which Dockerfile step made each layer. Layers are grouped by the
step that made them (:data:`GROUPS`), so the table says what the bytes are for, and the total is
judged against the catalog image's ``size_budget`` (uncompressed, as ``docker images`` shows).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Any

from gpu_devbox.images.plan import ImagesError

#: (group, pattern of the step's ``created_by``) in Dockerfile order; the first match wins.
#: Layers made before images/Dockerfile's first step belong to the base image.
GROUPS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("OS packages", re.compile(r"install\.sh system")),
    ("Python environment (lock: base)", re.compile(r"install\.sh python")),
    ("Frameworks (lock: pytorch, finetune)", re.compile(r"install\.sh flavors")),
    (
        "gpu-devbox and examples",
        # BuildKit records the COPY's sources; buildah only its destination (/tmp/gpu-devbox/).
        re.compile(
            r"gpu_devbox-.*\.whl|install\.sh gpu-devbox|/opt/gpu-devbox|/tmp/gpu-devbox/\s*$"
        ),
    ),
)
#: The first step of images/Dockerfile (COPY of install.sh): the layers before it are the base's.
FIRST_STEP = re.compile(r"/usr/local/lib/gpu-devbox/install\.sh")
BASE_GROUP = "Base image"
OTHER_GROUP = "Scripts and the lock"
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer: the step that made it and its sizes in bytes."""

    created_by: str
    compressed: int
    uncompressed: int
    group: str


@dataclasses.dataclass(frozen=True)
class ImageSize:
    """An image's layers and their totals."""

    layers: tuple[Layer, ...]

    @property
    def compressed(self) -> int:
        """What a pull downloads."""
        return sum(layer.compressed for layer in self.layers)

    @property
    def uncompressed(self) -> int:
        """What the image takes on disk once pulled."""
        return sum(layer.uncompressed for layer in self.layers)

    def groups(self) -> list[tuple[str, int, int, int]]:
        """``(group, layers, compressed, uncompressed)`` in layer order."""
        out: dict[str, list[int]] = {}
        for layer in self.layers:
            row = out.setdefault(layer.group, [0, 0, 0])
            row[0] += 1
            row[1] += layer.compressed
            row[2] += layer.uncompressed
        return [(name, *row) for name, row in out.items()]  # type: ignore[misc]


def group_of(created_by: str, before_first_step: bool) -> str:
    """Which group a layer made by ``created_by`` belongs to."""
    if before_first_step:
        return BASE_GROUP
    for name, pattern in GROUPS:
        if pattern.search(created_by):
            return name
    return OTHER_GROUP


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImagesError(f"cannot read {path}: {exc}") from None


def _blob(root: Path, digest: str) -> Path:
    algorithm, _, value = digest.partition(":")
    if not re.fullmatch(r"[a-z0-9]+", algorithm) or not re.fullmatch(r"[0-9a-f]+", value):
        raise ImagesError(f"{root}: {digest!r} is not a digest")
    if (root / "index.json").is_file():
        return root / "blobs" / algorithm / value
    return root / value  # the dir transport: blobs by their hex digest, side by side


def _uncompressed(path: Path, media_type: str) -> int:
    """Bytes of a layer's tar stream (gunzipped when it is gzip)."""
    size = 0
    try:
        if "zstd" in media_type:
            raise ImagesError(f"{path}: zstd layers are not supported; save with gzip")
        if media_type.endswith("gzip") or _is_gzip(path):
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
            return size
        return path.stat().st_size
    except (OSError, EOFError, zlib.error) as exc:
        raise ImagesError(f"cannot read the layer {path.name}: {exc}") from None


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def measure(layout: str | Path) -> ImageSize:
    """The sizes of the single image in an OCI layout directory.

    Raises:
        ImagesError: the directory is not an OCI layout of one image.
    """
    root = Path(layout)
    if not (root / "index.json").is_file() and (root / "manifest.json").is_file():
        manifest = _json(root / "manifest.json")
    else:
        index = _json(root / "index.json")
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list) or len(manifests) != 1:
            raise ImagesError(f"{root}: expected an OCI layout with one image in index.json")
        manifest = _json(_blob(root, manifests[0]["digest"]))
    if "manifests" in manifest:  # an image index (a docker save of one platform)
        manifest = _json(_blob(root, manifest["manifests"][0]["digest"]))
    config = _json(_blob(root, manifest["config"]["digest"]))
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    layers = manifest.get("layers", [])
    if len(history) != len(layers):
        history = [{"created_by": ""}] * (len(layers) - len(history)) + history
    first = next(
        (i for i, h in enumerate(history) if FIRST_STEP.search(h.get("created_by", ""))),
        len(history),
    )
    out = []
    for i, (layer, step) in enumerate(zip(layers, history, strict=True)):
        created_by = str(step.get("created_by", ""))
        out.append(
            Layer(
                created_by=created_by,
                compressed=int(layer["size"]),
                uncompressed=_uncompressed(_blob(root, layer["digest"]), layer["mediaType"]),
                group=group_of(created_by, i < first),
            )
        )
    return ImageSize(tuple(out))


def human(size: int) -> str:
    """``1234567890`` -> ``1.15 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def table(name: str, size: ImageSize, budget: int | None) -> str:
    """The Markdown size table of one image, with its budget."""
    lines = [
        f"**{name}**",
        "",
        "| Layers | Count | Compressed (pull) | Uncompressed (disk) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {group} | {count} | {human(packed)} | {human(unpacked)} |"
        for group, count, packed, unpacked in size.groups()
    ]
    lines.append(
        f"| **total** | {len(size.layers)} | **{human(size.compressed)}** | "
        f"**{human(size.uncompressed)}** |"
    )
    if budget is not None:
        verdict = "within" if size.uncompressed <= budget else "OVER"
        lines += ["", f"Budget {human(budget)} uncompressed: {verdict} it."]
    return "\n".join(lines) + "\n"
