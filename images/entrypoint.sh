#!/usr/bin/env bash
# The image's entrypoint, run by tini (PID 1): gives an arbitrary UID a passwd entry (OpenShift
# and `docker run --user 12345:0` start the container with a UID the image does not know), then
# hands over to NVIDIA's entrypoint when the base has one (its driver check and the DEPRECATION
# NOTICE of end-of-life nvidia/cuda images go to the log), which runs the command.
set -euo pipefail

if ! whoami >/dev/null 2>&1 && [ -w /etc/passwd ]; then
  printf '%s:x:%s:%s:%s:%s:/bin/bash\n' \
    "${NB_USER:-jovyan}" "$(id -u)" "$(id -g)" "gpu-devbox user" "${HOME:-/home/jovyan}" >>/etc/passwd
fi

if [ $# -eq 0 ]; then
  set -- start-notebook
fi

if [ -x /opt/nvidia/nvidia_entrypoint.sh ]; then
  exec /opt/nvidia/nvidia_entrypoint.sh "$@"
fi
exec "$@"
