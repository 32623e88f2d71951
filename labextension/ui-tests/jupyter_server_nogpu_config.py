"""Jupyter server for the no-GPU UI tests: the real NVML backend on a machine without a GPU, so
the panel must show NVML's real reason (``library_not_found``) and its remedy.

!! Never use this configuration in production (see jupyter_server_test_config.py).
"""

import os
import tempfile

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 (c is the config object jupyter passes in)

c.ServerApp.allow_root = True  # noqa: F821 (CI runs as root)
c.ServerApp.port = int(os.environ.get("GPU_DEVBOX_NOGPU_PORT", "8891"))  # noqa: F821
c.GPUDevbox.backend = "nvml"  # noqa: F821
# Benchmark runs go to a scratch history, not the user's Jupyter data directory.
c.GPUDevbox.benchmark_history_file = os.path.join(  # noqa: F821
    tempfile.mkdtemp(prefix="gpu-devbox-ui-"), "benchmarks.jsonl"
)
