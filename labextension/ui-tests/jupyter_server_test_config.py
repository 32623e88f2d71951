"""Jupyter server for the UI tests: two simulated GPUs, served under a JupyterHub-like prefix.

!! Never use this configuration in production: galata's helper turns off authentication and
exposes JupyterLab's JavaScript objects in the browser.
"""

import os
import tempfile

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 (c is the config object jupyter passes in)

c.ServerApp.allow_root = True  # noqa: F821 (CI runs as root)
# The panel must build every URL from base_url, as it does behind JupyterHub (/user/<name>/).
c.ServerApp.base_url = os.environ.get("GPU_DEVBOX_UI_BASE_URL", "/user/galata/")  # noqa: F821
c.GPUDevbox.backend = "simulated"  # noqa: F821
c.GPUDevbox.simulated_gpus = int(os.environ.get("GPU_DEVBOX_SIMULATED_GPUS", "2"))  # noqa: F821
c.GPUDevbox.interval = 0.5  # noqa: F821 (values change quickly enough for the tests)
# An idle policy of seconds, as the spawner would set it, for culling.spec.ts: warned after 25 s
# of GPU idleness. The built-in simulated load leaves both GPUs idle for at most ~20 s at a
# time, so the other tests never see the warning; culling.spec.ts pins the load at 0 %.
os.environ.setdefault("GPU_DEVBOX_CULL_GPU_IDLE_AFTER", "30")
os.environ.setdefault("GPU_DEVBOX_CULL_WARN_BEFORE", "5")
os.environ.setdefault("GPU_DEVBOX_CULL_KEEP_RUNNING", "1")
# Benchmark runs go to a scratch history, not the user's Jupyter data directory.
c.GPUDevbox.benchmark_history_file = os.path.join(  # noqa: F821
    tempfile.mkdtemp(prefix="gpu-devbox-ui-"), "benchmarks.jsonl"
)
# Process attribution (kernels.spec.ts): a kernel writes this file to run itself on a simulated
# GPU; while the file does not exist the simulated GPUs run their invented work.
PROCESSES_FILE = os.path.join(tempfile.gettempdir(), "gpu-devbox-ui-processes.json")
if "GPU_DEVBOX_SIMULATED_PROCESSES" not in os.environ:
    # the server's first reading of this file (not a later one, nor a child process's, which
    # inherit the variable): a file left by an interrupted run would stop the invented work
    if os.path.exists(PROCESSES_FILE):
        os.remove(PROCESSES_FILE)
    os.environ["GPU_DEVBOX_SIMULATED_PROCESSES"] = PROCESSES_FILE  # kernels inherit it
c.GPUDevbox.simulated_processes_file = PROCESSES_FILE  # noqa: F821
