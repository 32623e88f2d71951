"""The gpu-devbox catalog: notebook images and the server profiles users can start.

>>> from gpu_devbox.catalog import default_catalog
>>> [p.slug for p in default_catalog().profiles][:2]
['cpu', 'gpu-1']
"""

from __future__ import annotations

from importlib import resources

from gpu_devbox.catalog.fields import CatalogError
from gpu_devbox.catalog.loader import (
    CATALOG_VERSION,
    GPU_FAMILIES,
    load_catalog,
    parse_catalog,
    parse_catalog_text,
)
from gpu_devbox.catalog.model import (
    Architecture,
    Catalog,
    Framework,
    GPUKind,
    GPUQuota,
    GPURequest,
    Image,
    Profile,
    Quantity,
    Toleration,
    Volume,
    cuda_key,
    matches_model,
)
from gpu_devbox.catalog.validation import schema

__all__ = [
    "CATALOG_VERSION",
    "GPU_FAMILIES",
    "Architecture",
    "Catalog",
    "CatalogError",
    "Framework",
    "GPUKind",
    "GPUQuota",
    "GPURequest",
    "Image",
    "Profile",
    "Quantity",
    "Toleration",
    "Volume",
    "cuda_key",
    "default_catalog",
    "default_catalog_text",
    "load_catalog",
    "matches_model",
    "parse_catalog",
    "parse_catalog_text",
    "schema",
]

_DEFAULT = "default-catalog.yaml"


def default_catalog_text() -> str:
    """The YAML of the catalog gpu-devbox ships."""
    return resources.files(__name__).joinpath(_DEFAULT).read_text(encoding="utf-8")


def default_catalog() -> Catalog:
    """The catalog gpu-devbox ships (images for CPU, CUDA 12 and 13; five profiles)."""
    return parse_catalog_text(default_catalog_text(), source=f"gpu_devbox/catalog/{_DEFAULT}")
