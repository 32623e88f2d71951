#!/usr/bin/env bash
# The image's default command: JupyterLab on port 8888, the JupyterHub single-user server when
# a hub started the container (KubeSpawner without `cmd` runs the image's command), or a
# headless server chosen by GPU_DEVBOX_JUPYTER_CMD:
#   lab            JupyterLab (the default)
#   server         jupyter server without Lab's UI (the gpu-devbox API and kernels)
#   kernelgateway  Jupyter Kernel Gateway: kernels over HTTP and websockets for remote clients
#                  (nb2kg, Elyra, `jupyter lab --gateway-url`); set KG_AUTH_TOKEN to require one
# Extra arguments are passed on: `docker run IMAGE start-notebook --ServerApp.token=abc`.
set -euo pipefail

if [ -n "${JUPYTERHUB_API_TOKEN:-}" ]; then
  exec jupyterhub-singleuser "$@"
fi
port="${JUPYTER_PORT:-8888}"
case "${GPU_DEVBOX_JUPYTER_CMD:-lab}" in
  lab | server)
    exec jupyter "${GPU_DEVBOX_JUPYTER_CMD:-lab}" \
      --ServerApp.ip=0.0.0.0 \
      --ServerApp.port="$port" \
      --ServerApp.open_browser=False \
      "$@"
    ;;
  kernelgateway)
    exec jupyter kernelgateway \
      --KernelGatewayApp.ip=0.0.0.0 \
      --KernelGatewayApp.port="$port" \
      "$@"
    ;;
  *)
    echo "start-notebook: GPU_DEVBOX_JUPYTER_CMD='${GPU_DEVBOX_JUPYTER_CMD}' is not lab, server or kernelgateway" >&2
    exit 2
    ;;
esac
