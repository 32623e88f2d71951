"""What Kubernetes says about a starting server, in words its user understands. Pure functions.

KubeSpawner relays raw events (``0/8 nodes are available: 1 Insufficient nvidia.com/gpu``);
these functions turn a pod's events and status into sentences about scheduling, the image
download and the start, recognise a pod that cannot be scheduled for lack of GPUs
(:class:`GPUWait`, fed the time by its caller) and say what to try instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from gpu_devbox.placement import Offer, Plan, alternatives, shortage

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
    where = f"node {plan.nodes[0]}" if len(plan.nodes) == 1 else f"one of {len(plan.nodes)} nodes"
    models = plan.offer.model_text
    return (
        f"Starting '{profile.display_name}' with {image}: {count} {models} {unit} "
        f"on {where} whose driver runs it."
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


class GPUWait:
    """How long a pod has been unschedulable for lack of GPUs, from observations of it.

    The caller passes the pod as the reflector holds it and the time (seconds on any clock
    that only goes forward); :meth:`observe` returns the scheduler's message once the pod
    has waited ``grace`` seconds without a break, else ``None``. A pod that gets scheduled,
    or is blocked for another reason, starts the count again.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._since: float | None = None

    def observe(self, pod: Mapping[str, Any] | None, now: float) -> str | None:
        """The scheduler's message once the pod waited ``grace`` seconds for GPUs."""
        message = unschedulable_for_gpus(pod)
        if message is None:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        return message if now - self._since >= self.grace else None


def no_room_message(
    offers: Sequence[Offer],
    chosen: Plan,
    *,
    image_chosen: bool,
    scheduler_says: str | None = None,
) -> str:
    """Why a start fails for lack of free GPUs, and what to try instead.

    ``image_chosen``: the user picked the image (the message is about it, and another image
    of the same profile with room is suggested), rather than leaving it to the profile.
    ``scheduler_says``: the scheduler's message, when it refused a pod the inventory thought
    had room.
    """
    offer = next(o for o in offers if o.slug == chosen.offer.slug)
    image = chosen.image.name if image_chosen else None
    text = shortage(offer, chosen.count, image=image)
    room = offer.image(image).max_free if image else offer.max_free
    if scheduler_says and room >= chosen.count:
        # the inventory has not seen what the scheduler saw yet
        text = f"No {offer.model_text} {offer.unit} is free for this server ({scheduler_says})"
    others = [
        c for c in offer.images if image and c.image.name != image and c.max_free >= chosen.count
    ]
    if others:  # the profile has room, with another of its images
        hint = "try " + " or ".join(
            f"the image {c.image.label} ({c.free} free)" for c in others[:2]
        )
    else:
        hint = alternatives(offers, exclude=offer.slug)
    return f"{text}; {hint}"
