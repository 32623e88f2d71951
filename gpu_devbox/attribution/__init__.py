"""Which kernel, terminal or process of this server holds each GPU process.

Plain Python, no jupyter_server: the server extension describes its kernels and terminals as a
:class:`Workspace`; :class:`ProcReader` reads ``/proc``; :func:`attribute` decides (pure); the
:class:`Attributor` ties them to the sampler. How it works, and what is exact where:
docs/metrics.md, "Who uses the GPU".
"""

from __future__ import annotations

from gpu_devbox.attribution.attribute import (
    Attribution,
    Decision,
    GpuEntry,
    GpuView,
    attribute,
    owner_of,
)
from gpu_devbox.attribution.model import (
    OTHER,
    Kernel,
    LocalProcess,
    OwnerKey,
    ProcessTable,
    Terminal,
    Workspace,
    render_owner,
)
from gpu_devbox.attribution.procfs import ProcReader
from gpu_devbox.attribution.service import NAMESPACES, Attributor, State, view_of
from gpu_devbox.attribution.summary import kernels_document

__all__ = [
    "NAMESPACES",
    "OTHER",
    "Attribution",
    "Attributor",
    "Decision",
    "GpuEntry",
    "GpuView",
    "Kernel",
    "LocalProcess",
    "OwnerKey",
    "ProcReader",
    "ProcessTable",
    "State",
    "Terminal",
    "Workspace",
    "attribute",
    "kernels_document",
    "owner_of",
    "render_owner",
    "view_of",
]
