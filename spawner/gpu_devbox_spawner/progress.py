"""What Kubernetes says about a starting server, in words its user understands. Pure functions.

KubeSpawner relays raw events (``0/8 nodes are available: 1 Insufficient nvidia.com/gpu``);
these functions turn a pod's events and status into sentences about scheduling, the image
download and the start, and recognise a pod that cannot be scheduled for lack of GPUs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gpu_devbox.placement import Plan

_QUOTED_IMAGE = re.compile(r'image "([^"]+)"')
_PULL_TIME = re.compile(r"\bin ([0-9.]+m?[0-9.]*s)\b")
_ASSIGNED = re.compile(r"to (\S+)$")


def describe_plan(plan: Plan) -> str:
    """The first progress line: what is being started and where it may go."""
    profile = plan.offer.profile
    image = plan.image.label
    if plan.resource is None:
        return f"Starting '{profile.display_name}' with {image}."
    count = plan.count
    unit = plan.offer.unit + ("s" if count != 1 else "")
    nodes = len(plan.nodes)
    where = f"{nodes} node" + ("s" if nodes != 1 else "")
    models = plan.offer.model_text
    return (
        f"Starting '{profile.display_name}' with {image}: {count} {models} {unit} "
        f"on one of {where} whose driver runs it."
    )


def _image_name(message: str) -> str:
    match = _QUOTED_IMAGE.search(message)
    return match.group(1) if match else "the image"


def describe_event(event: Mapping[str, Any]) -> str:
    """One Kubernetes event about the server's pod, as a sentence."""
    reason = str(event.get("reason") or "")
    message = str(event.get("message") or "").strip()
    if reason == "Scheduled":
        match = _ASSIGNED.search(message)
        node = match.group(1) if match else "a node"
        return f"Scheduling: the server was placed on node {node}."
    if reason == "FailedScheduling":
        return f"Scheduling: waiting for a node with room for the server ({message})."
    if reason == "Pulling":
        return (
            f"Downloading the image {_image_name(message)}; the first start on a node can "
            "take several minutes."
        )
    if reason == "Pulled":
        if "already present" in message:
            return "Image: already on the node, no download needed."
        took = _PULL_TIME.search(message)
        return "Image: downloaded" + (f" in {took.group(1)}." if took else ".")
    if reason in ("Failed", "ErrImagePull", "ImagePullBackOff", "InspectFailed"):
        return f"Problem: Kubernetes could not prepare the server ({message})."
    if reason == "BackOff":
        return f"Problem: the server keeps stopping while it starts ({message})."
    if reason == "Created":
        return "Starting: the server's container was created."
    if reason == "Started":
        return "Starting: the server is running and loading; waiting for it to answer."
    if reason == "Killing":
        return "Stopping the server."
    return f"{reason}: {message}" if reason else message


def unschedulable_for_gpus(pod: Mapping[str, Any] | None) -> str | None:
    """The scheduler's message when a pod cannot be placed for lack of GPU resources.

    ``None`` while it is scheduled, still being considered, or blocked for another reason
    (a missing volume, say), which the start timeout handles.
    """
    if not pod:
        return None
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending"):
        return None
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            message = str(condition.get("message") or "")
            if "Insufficient nvidia.com/" in message:
                return message
    return None
