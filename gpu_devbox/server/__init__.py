"""The jupyter-server extension: a thin layer of handlers over the gpu-devbox core."""
