#!/usr/bin/env bash
# The image's default command: JupyterLab on port 8888, or the JupyterHub single-user server
# when a hub started the container (KubeSpawner without `cmd` runs the image's command).
# Extra arguments are passed on: `docker run IMAGE start-notebook --ServerApp.token=abc`.
set -euo pipefail

if [ -n "${JUPYTERHUB_API_TOKEN:-}" ]; then
  exec jupyterhub-singleuser "$@"
fi
exec jupyter lab \
  --ServerApp.ip=0.0.0.0 \
  --ServerApp.port="${JUPYTER_PORT:-8888}" \
  --ServerApp.open_browser=False \
  "$@"
