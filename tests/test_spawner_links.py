"""Launch links and deep links: ``?image=NAME`` alone, and a link the cluster cannot honour.

Against the test catalog (tests/fixtures/spawner-catalog.yaml) and the cluster of
tests/test_spawner_options.py (the H100 node, the only one running the CUDA 13 image, is full).
"""

from __future__ import annotations

import pytest

from gpu_devbox.placement import ClusterState, compute_offers
from gpu_devbox_spawner.form import build_form
from gpu_devbox_spawner.options import OptionsError, parse_options, profile_for_image
from tests import k8s_objects as k
from tests.test_spawner_options import CATALOG, offers


@pytest.mark.parametrize(
    ("image", "profile"),
    [
        ("torch12", "one"),  # the first profile, in catalog order, offering it
        ("torch13", "cpu"),  # the GPU profiles have no room for it; the CPU one starts it now
        ("py", "cpu"),
    ],
)
def test_an_image_alone_picks_the_first_profile_that_can_start_it(image: str, profile: str) -> None:
    offer, note = profile_for_image(image, CATALOG, offers())
    assert (offer.slug, note) == (profile, None)


def test_when_none_can_start_it_the_first_offering_it_is_picked_with_why() -> None:
    empty = compute_offers(CATALOG, ClusterState.from_objects([], []).snapshot())
    offer, note = profile_for_image("base12", CATALOG, empty)
    assert offer.slug == "one"
    assert note == (
        "No profile can start CUDA 12.2 right now; 'One GPU' offers it, but no node offers "
        "whole GPUs (nvidia.com/gpu)."
    )


def test_unknown_images_and_images_of_other_users_profiles_list_what_exists() -> None:
    with pytest.raises(OptionsError) as unknown:
        profile_for_image("nope", CATALOG, offers())
    assert str(unknown.value) == (
        "image: there is no image 'nope'; the images are py, torch13, torch12, base12"
    )
    mine = [o for o in offers() if o.slug != "one"]
    with pytest.raises(OptionsError) as not_mine:
        profile_for_image("base12", CATALOG, mine)
    assert str(not_mine.value) == (
        "image: no profile you may start offers the image 'base12'; the images are py, "
        "torch13, torch12"
    )


def test_a_linked_image_without_room_is_replaced_and_the_form_says_so() -> None:
    view = build_form(offers(), parse_options({"profile": "one", "image": "torch13"}, CATALOG))
    one = next(p for p in view.profiles if p.slug == "one")
    assert [i.name for i in one.images if i.selected] == ["torch12"]
    (notice,) = view.notices
    assert notice == (
        "Torch (CUDA 13.0) has no room on the nodes of 'One GPU' that run it right now; "
        "Torch (CUDA 12.4) is selected instead."
    )


def test_a_linked_image_that_runs_on_no_node_is_replaced_and_the_form_says_why() -> None:
    # only an R550 node: CUDA 13 runs nowhere
    nodes = [k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4")]
    cluster = compute_offers(CATALOG, ClusterState.from_objects(nodes, []).snapshot())
    view = build_form(cluster, parse_options({"profile": "one", "image": "torch13"}, CATALOG))
    (notice,) = view.notices
    assert notice.startswith("Torch (CUDA 13.0) runs on no node of 'One GPU' now (")
    assert "too old for CUDA 13.0" in notice
    assert notice.endswith("; Torch (CUDA 12.4) is selected instead.")
