"""gpu-devbox: GPU metrics, CUDA checks and a GPU benchmark for Jupyter, and a GPU-aware spawner.

Importing this package is cheap and touches no GPU: NVML is initialised lazily by the server
extension's sampler thread, and jupyter_server is imported only when the extension loads.
"""

from __future__ import annotations

import logging
from typing import Any

from gpu_devbox._version import __version__

__all__ = ["__version__"]

# A library logs only where its host application sends logs (the server passes its own logger).
logging.getLogger("gpu_devbox").addHandler(logging.NullHandler())


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from gpu_devbox.server.app import GPUDevbox

    return [{"module": "gpu_devbox", "app": GPUDevbox}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "gpu-devbox"}]
