"""User options and the form: every field checked, the form rendered from offers.

Against the test catalog (tests/fixtures/spawner-catalog.yaml), not the shipped one.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from gpu_devbox.catalog import load_catalog
from gpu_devbox.placement import ClusterState, compute_offers
from gpu_devbox_spawner.form import build_form, capacity_text, make_environment, render_form
from gpu_devbox_spawner.options import Choice, OptionsError, options_from_form, parse_options
from gpu_devbox_spawner.start_request import options_given
from tests import k8s_objects as k
from tests.spawners import CATALOG_PATH, rest_start, spawn_page

CATALOG = load_catalog(CATALOG_PATH)


BAD_OPTIONS = {
    "unknown profile": (
        {"profile": "gpu-9"},
        "profile",
        "there is no profile 'gpu-9'; the profiles are cpu, one, big, slice, shared",
    ),
    "profile not text": ({"profile": 3}, "profile", "must be a profile's slug"),
    "image of another profile": (
        {"profile": "one", "image": "py"},
        "image",
        "'py' is not an image of profile 'one'",
    ),
    "image not text": ({"profile": "one", "image": ["x"]}, "image", "must be an image's name"),
    "count over the range": (
        {"profile": "big", "gpus": 9},
        "gpus",
        "9 GPUs is not allowed for profile 'big' (2 to 8)",
    ),
    "count under the range": ({"profile": "big", "gpus": 1}, "gpus", "(2 to 8)"),
    "count of a one-GPU profile": ({"profile": "one", "gpus": 2}, "gpus", "(exactly 1)"),
    "count not whole": ({"profile": "one", "gpus": "1.5"}, "gpus", "'1.5' is not a whole number"),
    "count a boolean": ({"profile": "one", "gpus": True}, "gpus", "must be a whole number"),
    "count a float": ({"profile": "one", "gpus": 1.0}, "gpus", "must be a whole number"),
    "count without GPUs": (
        {"profile": "cpu", "gpus": 1},
        "gpus",
        "profile 'cpu' has no GPU; it cannot be 1",
    ),
    "count of a share": (
        {"profile": "shared", "gpus": 2},
        "gpus",
        "exactly one GPU slice or share",
    ),
    "unknown option": (
        {"profile": "cpu", "node": "gpu-7"},
        "node",
        "is not an option; the options are profile, image, gpus",
    ),
}


@pytest.mark.parametrize(("options", "field", "words"), BAD_OPTIONS.values(), ids=BAD_OPTIONS)
def test_bad_options_name_the_field(options: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(OptionsError) as caught:
        parse_options(options, CATALOG)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


def test_good_options() -> None:
    assert parse_options({}, CATALOG) == Choice(CATALOG.profile("cpu"), None, 0)
    choice = parse_options({"profile": "big", "image": "torch12", "gpus": "4"}, CATALOG)
    assert (choice.profile.slug, choice.image, choice.count) == ("big", "torch12", 4)
    assert choice.as_options() == {"profile": "big", "image": "torch12", "gpus": 4}
    assert parse_options({"profile": "slice", "gpus": 1}, CATALOG).count == 1
    with pytest.raises(OptionsError, match="must be an object"):
        parse_options(["gpu-1"], CATALOG)  # type: ignore[arg-type]


def test_form_data_takes_the_chosen_profiles_pickers() -> None:
    form = {
        "profile": ["big"],
        "image--big": ["torch12"],
        "gpus--big": ["4"],
        "image--one": ["base12"],  # another profile's picker, posted without JavaScript
        "_xsrf": ["token"],
    }
    assert options_from_form(form, CATALOG) == {"profile": "big", "image": "torch12", "gpus": "4"}
    # a deep link's short names
    assert options_from_form({"profile": ["one"], "image": ["base12"]}, CATALOG) == {
        "profile": "one",
        "image": "base12",
    }
    with pytest.raises(OptionsError, match=r"^profile-option-x: is not a field of this form$"):
        options_from_form({"profile": ["cpu"], "profile-option-x": ["1"]}, CATALOG)
    with pytest.raises(OptionsError, match=r"^profile: must be given once$"):
        options_from_form({"profile": ["cpu", "one"]}, CATALOG)


NODES = [
    k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
    k.gpu_node("h100-1", k.H100),
    k.node("cpu-1"),
]
PODS = [*k.gpu_pods("a100-1", 6), *k.gpu_pods("h100-1", 8)]


def offers() -> Any:
    return compute_offers(CATALOG, ClusterState.from_objects(NODES, PODS).snapshot())


def radio(page: str, slug: str) -> str:
    match = re.search(rf'<input type="radio" name="profile" id="gdb-profile-{slug}"[^>]*>', page)
    assert match, slug
    return match.group(0)


def test_the_form_shows_free_gpus_and_greys_out_what_cannot_start() -> None:
    page = render_form(build_form(offers(), None))
    assert "checked" in radio(page, "cpu")
    assert "disabled" not in radio(page, "one")
    assert "2 of 16 GPUs free · A100-SXM4-80GB, H100-80GB-HBM3" in html.unescape(page)
    # the MIG profile has no node: greyed out, with the reason
    assert "disabled" in radio(page, "slice")
    assert "Not available: No node offers MIG 1g.10gb slices" in page
    # big needs 2 GPUs on one node; the A100 has 2 free
    assert "disabled" not in radio(page, "big")
    # the CUDA 13 image runs only on the full H100 node; a CUDA 12 image is preselected, and
    # the one that cannot start now cannot be chosen (a start would fail at once)
    assert '<option value="torch12" selected>Torch (CUDA 12.4) (2 free)</option>' in page
    assert '<option value="torch13" disabled>Torch (CUDA 13.0) (no room right now)</option>' in (
        page
    )
    without_fail_fast = render_form(build_form(offers(), None, fail_fast=False))
    assert '<option value="torch13">Torch (CUDA 13.0) (no room right now)</option>' in (
        without_fail_fast
    )


def test_count_picker_is_within_limits() -> None:
    view = build_form(offers(), parse_options({"profile": "big", "gpus": 8}, CATALOG))
    multi = next(p for p in view.profiles if p.slug == "big")
    assert multi.selected
    assert [(c.value, c.enabled) for c in multi.counts] == [(n, n <= 2) for n in range(2, 9)]
    assert [c.value for c in multi.counts if c.selected] == [2]  # 8 is not free: the most that is
    # and the form says so, rather than changing the request silently
    assert view.notices == (
        (
            "8 GPUs are not free on one node of 'Big GPUs' right now (at most 2); 2 are selected "
            "instead."
        ),
    )


def test_an_unavailable_choice_is_not_preselected_and_says_why() -> None:
    view = build_form(offers(), parse_options({"profile": "slice"}, CATALOG), ["earlier note"])
    assert [p.slug for p in view.profiles if p.selected] == ["cpu"]
    assert view.notices[0] == "earlier note"
    assert view.notices[1].startswith("'GPU slice' is not available right now: No node offers")


def test_nothing_available() -> None:
    empty = compute_offers(CATALOG, ClusterState.from_objects([], []).snapshot())
    view = build_form(empty, None)
    assert not any(p.selected for p in view.profiles)
    assert view.notices == ("No profile can start right now; the reasons are shown with each.",)
    page = render_form(view)
    assert page.count("Not available: ") == len(CATALOG.profiles)
    assert capacity_text(empty[0]) == "No GPU"


def test_text_is_escaped_and_templates_can_be_replaced(tmp_path: Any) -> None:
    view = build_form(offers(), None, ["<script>alert(1)</script>"])
    assert "<script>alert(1)</script>" not in render_form(view)
    (tmp_path / "form.html").write_text("{{ form.profiles | length }} profiles")
    assert (
        render_form(view, make_environment([str(tmp_path)])) == f"{len(CATALOG.profiles)} profiles"
    )


GIVEN = {
    "a body of options (JupyterHub 5's form)": (rest_start(b'{"profile": "one"}'), True),
    "user_options in the body": (rest_start(b'{"user_options": {"profile": "x"}}'), True),
    "user_options null": (rest_start(b'{"user_options": null}'), False),
    "only a display name": (rest_start(b'{"display_name": "mine"}'), False),
    "no body: the saved options": (rest_start(b""), False),
    "the spawn page's form (checked by options_from_form)": (
        spawn_page("POST", body=b"profile=one"),
        False,
    ),
    "no request at all": (None, False),
}


@pytest.mark.parametrize(("handler", "given"), GIVEN.values(), ids=GIVEN.keys())
def test_which_starts_give_options(handler: Any, given: bool) -> None:
    assert options_given(handler) is given
