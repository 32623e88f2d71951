"""gpu-devbox-culler: a JupyterHub service that stops servers whose GPUs sit idle, and an admin
view of who holds GPUs and uses them (``/services/gpu-devbox/``). See docs/culling.md."""
