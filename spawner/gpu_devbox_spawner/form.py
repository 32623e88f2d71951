"""The options form: offers and the user's preselection turned into server-rendered HTML.

The form works without JavaScript: every profile is a radio button with its own image and
GPU-count pickers (``image--<slug>``, ``gpus--<slug>``); the few lines of script in the
template only disable the pickers of the profiles not chosen. Unavailable profiles are shown
greyed out with the reason.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jinja2

from gpu_devbox.catalog import GPUKind
from gpu_devbox.placement import ImageChoice, Offer
from gpu_devbox_spawner.options import Choice, gpus_field, image_field


@dataclasses.dataclass(frozen=True)
class ImageOption:
    """One entry of a profile's image picker."""

    name: str
    label: str
    note: str
    enabled: bool
    selected: bool


@dataclasses.dataclass(frozen=True)
class CountOption:
    """One entry of a profile's GPU-count picker."""

    value: int
    enabled: bool
    selected: bool


@dataclasses.dataclass(frozen=True)
class ProfileView:
    """One profile as the form shows it."""

    slug: str
    display_name: str
    description: str
    available: bool
    reason: str
    capacity: str
    selected: bool
    image_field: str
    images: tuple[ImageOption, ...]
    gpus_field: str
    counts: tuple[CountOption, ...]


@dataclasses.dataclass(frozen=True)
class FormView:
    """Everything the template needs."""

    profiles: tuple[ProfileView, ...]
    notices: tuple[str, ...]


def capacity_text(offer: Offer) -> str:
    """``5 of 32 GPUs free · A100-SXM4-80GB, V100-SXM2-32GB`` (empty for CPU profiles)."""
    gpu = offer.profile.gpu
    if gpu.kind is GPUKind.NONE:
        return "No GPU"
    if not offer.nodes:
        return ""
    unit = offer.unit + ("s" if offer.total != 1 else "")
    text = f"{offer.free} of {offer.total} {unit} free"
    if offer.models:
        text += " · " + ", ".join(offer.models)
    return text


def _image_note(offer: Offer, choice: ImageChoice) -> str:
    if not choice.runs:
        return f"not available: {choice.reason}"
    if not offer.profile.gpu.wants_gpu:
        return ""
    if choice.max_free < max(1, offer.profile.gpu.count):
        return "no room right now"
    return f"{choice.free} free"


def build_form(
    offers: Sequence[Offer], selected: Choice | None, notices: Sequence[str] = ()
) -> FormView:
    """The form's view: which profile, image and count are preselected, and what is greyed out.

    ``selected`` (a deep link or the user's saved options) is honoured when its profile is
    available; otherwise the catalog's default profile, else the first available one.
    """
    notes = list(notices)
    chosen_slug = None
    by_slug = {o.slug: o for o in offers}
    if selected is not None:
        wanted = by_slug.get(selected.profile.slug)
        if wanted is not None and wanted.available:
            chosen_slug = wanted.slug
        elif wanted is not None:
            notes.append(
                f"'{wanted.profile.display_name}' is not available right now: {wanted.reason}"
            )
    if chosen_slug is None:
        default = next((o for o in offers if o.profile.default and o.available), None)
        first = next((o for o in offers if o.available), None)
        pick = default or first
        chosen_slug = pick.slug if pick else None

    views = []
    for offer in offers:
        is_selected = offer.slug == chosen_slug
        wanted_image = offer.default_image
        wanted_count = offer.profile.gpu.count
        if is_selected and selected is not None and selected.profile.slug == offer.slug:
            if selected.image is not None and offer.image(selected.image).runs:
                wanted_image = selected.image
            wanted_count = selected.count
        images = tuple(
            ImageOption(
                name=c.image.name,
                label=c.image.label,
                note=_image_note(offer, c),
                enabled=c.runs,
                selected=c.image.name == wanted_image,
            )
            for c in offer.images
        )
        gpu = offer.profile.gpu
        counts: tuple[CountOption, ...] = ()
        if gpu.kind is GPUKind.WHOLE and gpu.max_count > gpu.count:
            wanted_count = min(max(wanted_count, gpu.count), offer.max_count)
            counts = tuple(
                CountOption(value=n, enabled=n <= offer.max_count, selected=n == wanted_count)
                for n in range(gpu.count, gpu.max_count + 1)
            )
        views.append(
            ProfileView(
                slug=offer.slug,
                display_name=offer.profile.display_name,
                description=offer.profile.description,
                available=offer.available,
                reason=offer.reason or "",
                capacity=capacity_text(offer),
                selected=is_selected,
                image_field=image_field(offer.slug),
                images=images,
                gpus_field=gpus_field(offer.slug),
                counts=counts,
            )
        )
    if chosen_slug is None and offers:
        notes.append("No profile can start right now; the reasons are shown with each.")
    return FormView(profiles=tuple(views), notices=tuple(notes))


def make_environment(extra_paths: Sequence[str] = ()) -> jinja2.Environment:
    """Templates from ``extra_paths`` first, then the packaged ``form.html`` (one per paths)."""
    return _environment(tuple(extra_paths))


@functools.lru_cache(maxsize=8)
def _environment(extra_paths: tuple[str, ...]) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(list(extra_paths))]
    loaders.append(jinja2.PackageLoader("gpu_devbox_spawner", "templates"))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True)


def render_form(view: FormView, env: jinja2.Environment | None = None) -> str:
    """The HTML JupyterHub puts inside its spawn form."""
    template = (env or make_environment()).get_template("form.html")
    return template.render(form=view)
