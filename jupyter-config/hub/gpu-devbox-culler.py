"""The GPU culler and admin view as a JupyterHub-managed service (see docs/culling.md).

Load it from your jupyterhub_config.py after the spawner's settings:

    load_subconfig("/etc/jupyterhub/gpu-devbox-culler.py")

It adds the ``gpu-devbox`` service (the culler's rounds, its admin view at
/services/gpu-devbox/ and its /metrics), the least scopes it needs, and the role that lets
a group of non-admins open the admin view. Start with ``--dry-run`` for a week and read the
log before you let it stop anything.
"""

import sys

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# Who may see the admin view and stop servers from it: hub admins (admin-ui), and holders of
# this custom scope.
c.JupyterHub.custom_scopes.update(
    {
        "custom:gpu-devbox:view": {
            "description": "See every GPU server's use in gpu-devbox's admin view and stop one",
        },
    }
)

# (append/extend add to what your own configuration sets, before or after this file)
c.JupyterHub.services.append(
    {
        "name": "gpu-devbox",
        # where the admin view and /metrics listen; the proxy routes /services/gpu-devbox/ here
        "url": "http://127.0.0.1:10101",
        "command": [
            sys.executable,
            "-m",
            "gpu_devbox_culler",
            "--dry-run",  # remove once the log shows the decisions you expect
            "--catalog",
            "/etc/jupyterhub/gpu-devbox-catalog.yaml",  # the spawner's catalog_path
            "--exempt-group",
            "gpu-no-cull",
            "--db",
            "/srv/jupyterhub/gpu-devbox-culler.sqlite",  # on a volume that survives restarts
        ],
        "oauth_no_confirm": True,
        # The view's OAuth token may carry these scopes of the user, which decide who gets in.
        "oauth_client_allowed_scopes": ["admin-ui", "custom:gpu-devbox:view"],
    }
)

c.JupyterHub.load_roles.extend(
    [
        {
            # What the culler does with the hub, and nothing more.
            "name": "gpu-devbox-culler",
            "description": "List running servers, read their GPU activity, stop idle ones",
            "scopes": [
                "list:users",  # the users with ready servers (GET /hub/api/users?state=ready)
                "read:users:name",
                "read:users:groups",  # exempt groups
                "read:users:activity",
                "read:servers",  # each server's URL, profile (user_options) and start time
                "admin:server_state",  # the node the spawner placed it on, for the view (optional)
                "access:servers",  # GET /user/<name>/<server>/gpu-devbox/api/status via the proxy
                "delete:servers",  # the stop
            ],
            "services": ["gpu-devbox"],
        },
        {
            # Non-admins who may open the admin view: add users or groups here.
            "name": "gpu-devbox-viewer",
            "description": "Open gpu-devbox's admin view of GPU servers and stop them from it",
            "scopes": ["custom:gpu-devbox:view", "access:services!service=gpu-devbox"],
            "groups": ["gpu-admins"],
        },
    ]
)
