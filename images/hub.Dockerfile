# The JupyterHub image for Zero to JupyterHub with the gpu-devbox spawner: the chart's own hub
# image plus gpu-devbox[hub], installed under a constraint holding the chart's JupyterHub at the
# version the chart ships (the hub's database and the chart's jupyterhub_config.py expect it).
#
#   docker build -f images/hub.Dockerfile --build-arg Z2JH_VERSION=4.4.0 \
#       --build-arg GPU_DEVBOX_VERSION=0.1.0 -t REGISTRY/hub-gpu-devbox:4.4.0 .
#
# Use the chart's version as Z2JH_VERSION, and the image in your values (hub.image, see
# jupyter-config/hub/z2jh-values.yaml). The suite resolves gpu-devbox[hub] against the two
# latest Z2JH releases (tests/test_hub_image.py): 4.4.0 ships JupyterHub 5.5.0, 4.3.5 ships
# JupyterHub 5.4.6; both keep their JupyterHub, and KubeSpawner goes from the chart's 7.0.0 to
# 7.1 or newer (the spawner's minimum).
ARG Z2JH_VERSION=4.4.0
FROM quay.io/jupyterhub/k8s-hub:${Z2JH_VERSION}

ARG GPU_DEVBOX_VERSION=0.1.0
USER 0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python3 -m pip list --format=freeze | grep -i '^jupyterhub==' > /tmp/chart-jupyterhub.txt \
 && test -s /tmp/chart-jupyterhub.txt \
 && python3 -m pip install --no-cache-dir --constraint /tmp/chart-jupyterhub.txt \
        "gpu-devbox[hub]==${GPU_DEVBOX_VERSION}" \
 && python3 -m pip check \
 && rm /tmp/chart-jupyterhub.txt
# the chart's hub user (jovyan)
USER 1000
