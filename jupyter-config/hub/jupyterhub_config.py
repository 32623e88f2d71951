"""An example JupyterHub configuration for the gpu-devbox spawner (a hub run without Helm).

The hub needs ``pip install 'gpu-devbox[hub]'``, a kubeconfig or in-cluster service account
whose RBAC includes KubeSpawner's Role and ``rbac.yaml`` from this folder, and a catalog.
With Zero-to-JupyterHub use ``z2jh-values.yaml`` instead.
"""

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# The spawner, and the catalog of images and profiles it offers (see docs/catalog.md).
c.JupyterHub.spawner_class = "gpu-devbox"
c.GPUDevboxSpawner.catalog_path = "/etc/jupyterhub/gpu-devbox-catalog.yaml"

# Stop a start at once when no node has a free GPU for it ("No A100 GPU is free (0 of 8);
# try ..."). Turn off with a cluster autoscaler that adds GPU nodes for pending pods.
c.GPUDevboxSpawner.fail_fast = True

# What /hub/spawn?profile=gpu-1&image=cuda12-pytorch does: "preselect" shows the form with
# those choices, "start" starts at once.
c.GPUDevboxSpawner.deep_links = "preselect"

# Everything KubeSpawner knows still applies. The spawner sets the image, GPU limits, node
# affinity, GPU tolerations, /dev/shm and the catalog's volumes on every start, on top of
# these values; configure the rest here as usual.
c.KubeSpawner.namespace = "jupyterhub"
c.KubeSpawner.start_timeout = 600  # large CUDA images take a while to pull the first time
c.KubeSpawner.storage_pvc_ensure = True  # a claim per user, mounted by a catalog volume
c.KubeSpawner.pvc_name_template = "claim-{user_server}"
# Taints of your GPU nodes other than nvidia.com/gpu (which GPU profiles always tolerate):
# c.KubeSpawner.tolerations = [
#     {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
# ]
