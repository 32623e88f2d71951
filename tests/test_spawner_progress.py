"""What a starting server's user reads: progress in plain words, and the fail-fast decision.

``GPUWait`` is fed the time by its caller, so the grace period is tested on a fake clock: a
list of (seconds, pod) observations, no sleeping.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpu_devbox.catalog import load_catalog
from gpu_devbox.placement import ClusterState, compute_offers, plan
from gpu_devbox_spawner.progress import GPUWait, describe_event, no_room_message
from gpu_devbox_spawner.progress import unschedulable_for_gpus as unschedulable
from tests import k8s_objects as k
from tests.spawners import CATALOG_PATH

CATALOG = load_catalog(CATALOG_PATH)

EVENTS = {
    "scheduled": (
        {"reason": "Scheduled", "message": "Successfully assigned jh/jupyter-a to gpu-3"},
        "Scheduling: the server was placed on node gpu-3.",
    ),
    "waiting for room": (
        {"reason": "FailedScheduling", "message": "0/3 nodes are available"},
        "Scheduling: waiting for a node with room for the server (0/3 nodes are available).",
    ),
    "pulling": (
        {"reason": "Pulling", "message": 'Pulling image "example.org/nb:py"'},
        (
            "Downloading the image example.org/nb:py; the first start on a node can take several "
            "minutes."
        ),
    ),
    "image present": (
        {"reason": "Pulled", "message": 'Container image "x" already present on machine'},
        "Image: already on the node, no download needed.",
    ),
    "image pulled": (
        {"reason": "Pulled", "message": 'Successfully pulled image "x" in 1m2.5s'},
        "Image: downloaded in 1m2.5s.",
    ),
    "pull failed": (
        {"reason": "ErrImagePull", "message": "not found"},
        "Problem: Kubernetes could not prepare the server (not found).",
    ),
    "crash loop": (
        {"reason": "BackOff", "message": "Back-off restarting"},
        "Problem: the server keeps stopping while it starts (Back-off restarting).",
    ),
    "started": (
        {"reason": "Started", "message": ""},
        "Starting: the server is running and loading; waiting for it to answer.",
    ),
    "anything else": ({"reason": "Odd", "message": "thing"}, "Odd: thing"),
}


@pytest.mark.parametrize(("event", "sentence"), EVENTS.values(), ids=EVENTS)
def test_progress_speaks_plainly(event: dict[str, str], sentence: str) -> None:
    assert describe_event(event) == sentence


def pending(message: str, reason: str = "Unschedulable") -> dict[str, Any]:
    """A pod the scheduler could not place, with its words."""
    condition = {"type": "PodScheduled", "status": "False", "reason": reason, "message": message}
    return {"status": {"phase": "Pending", "conditions": [condition]}}


NO_GPU = "0/3 nodes are available: 2 Insufficient nvidia.com/gpu."
NO_SLICE = "0/3 nodes are available: 3 Insufficient nvidia.com/mig-1g.10gb."
NO_CLAIM = "0/3 nodes are available: persistentvolumeclaim not found."

POD_STATES = {
    "no GPU": (pending(NO_GPU), NO_GPU),
    "no MIG slice": (pending(NO_SLICE), NO_SLICE),
    "blocked by a volume (left to the start timeout)": (pending(NO_CLAIM), None),
    "still being considered": (pending(NO_GPU, reason="SchedulerError"), None),
    "running": ({"status": {"phase": "Running"}}, None),
    "not seen yet": (None, None),
}


@pytest.mark.parametrize(("pod", "message"), POD_STATES.values(), ids=POD_STATES)
def test_a_pod_unschedulable_for_gpus_is_recognised(
    pod: dict[str, Any] | None, message: str | None
) -> None:
    assert unschedulable(pod) == message


WAITING = pending(NO_GPU)
PLACED = {"status": {"phase": "Pending"}}
TIMELINES = {
    "gives up after the grace period": (
        [(0.0, WAITING), (1.0, WAITING), (1.99, WAITING), (2.0, WAITING)],
        [None, None, None, NO_GPU],
    ),
    "a GPU released meanwhile starts the count again": (
        [(0.0, WAITING), (1.5, PLACED), (2.0, WAITING), (3.5, WAITING), (4.0, WAITING)],
        [None, None, None, None, NO_GPU],
    ),
    "never while the pod is not seen": ([(0.0, None), (10.0, None)], [None, None]),
    "at once with no grace": ([(5.0, WAITING)], [NO_GPU]),
}


@pytest.mark.parametrize(("observations", "said"), TIMELINES.values(), ids=TIMELINES)
def test_fail_fast_waits_the_grace_period_on_a_fake_clock(
    observations: list[tuple[float, dict[str, Any] | None]], said: list[str | None]
) -> None:
    grace = 0.0 if len(observations) == 1 else 2.0
    waiting = GPUWait(grace)
    assert [waiting.observe(pod, now) for now, pod in observations] == said


NODES = [
    k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
    k.gpu_node("h100-1", k.H100),
    k.node("cpu-1"),
]
NO_ROOM = {
    "the cluster is full": (
        [*k.gpu_pods("h100-1", 8), *k.gpu_pods("a100-1", 8)],
        ("one", "torch12", False, None),
        "No A100-SXM4-80GB or H100-80GB-HBM3 GPU is free (0 of 16); try 'No GPU'",
    ),
    "the chosen image's nodes are full, others of the profile are not": (
        k.gpu_pods("h100-1", 8),
        ("one", "torch13", True, None),
        (
            "No H100-80GB-HBM3 GPU is free (0 of 8); try the image Torch (CUDA 12.4) (8 free) "
            "or the image CUDA 12.2 (8 free)"
        ),
    ),
    "the scheduler saw what the inventory has not yet": (
        k.gpu_pods("h100-1", 8),
        ("one", "torch12", False, NO_GPU),
        (
            f"No A100-SXM4-80GB or H100-80GB-HBM3 GPU is free for this server ({NO_GPU}); "
            "try 'No GPU' or 'Big GPUs' (8 free)"
        ),
    ),
}


@pytest.mark.parametrize(("pods", "start", "message"), NO_ROOM.values(), ids=NO_ROOM)
def test_no_room_says_what_to_try_instead(
    pods: list[dict[str, Any]], start: tuple[str, str, bool, str | None], message: str
) -> None:
    slug, image, image_chosen, scheduler_says = start
    offers = compute_offers(CATALOG, ClusterState.from_objects(NODES, pods).snapshot())
    offer = next(o for o in offers if o.slug == slug)
    chosen = plan(offer, image, offer.profile.gpu.count)
    text = no_room_message(offers, chosen, image_chosen=image_chosen, scheduler_says=scheduler_says)
    assert text == message
