"""The GPU-aware KubeSpawner for JupyterHub (installed with ``pip install gpu-devbox[hub]``)."""
