"""The options form: offers and the user's preselection turned into server-rendered HTML.

The form works without JavaScript: every profile is a radio button with its own image and
GPU-count pickers (``image--<slug>``, ``gpus--<slug>``). The script in the template disables
the pickers of the profiles not chosen, shows the chosen image's details and keeps a link to
the choice (and, with ``deep_links = "preselect"``, the address bar) in step with it.
Unavailable profiles are shown with the reason; whatever the form had to change about a
link's or the saved choice (a count no node has free, an image that cannot start now) is said
in a notice, never changed silently.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import jinja2

from gpu_devbox.catalog import Catalog, GPUKind
from gpu_devbox.catalog.units import format_size
from gpu_devbox.placement import ImageChoice, Offer
from gpu_devbox.placement.quota import QuotaCheck
from gpu_devbox_spawner.options import Choice, can_start, gpus_field, image_field


@dataclasses.dataclass(frozen=True)
class ImageOption:
    """One entry of a profile's image picker, and what the form says about the image."""

    name: str
    label: str
    note: str
    enabled: bool
    selected: bool
    description: str = ""
    packages: tuple[str, ...] = ()
    #: Said when the profile gives less memory than the image recommends.
    memory_warning: str = ""


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
    #: The reason is the error JupyterHub shows above the form (a start just refused).
    reason_above: bool = False


@dataclasses.dataclass(frozen=True)
class FormView:
    """Everything the template needs."""

    profiles: tuple[ProfileView, ...]
    notices: tuple[str, ...]
    #: ``You hold 1 of your 2 GPUs.``, one line per kind of GPU with a limit.
    quotas: tuple[str, ...] = ()
    #: The spawn page's path: the link to the choice is this with ``?profile=...``.
    link_base: str = ""
    #: The link to the preselected choice (the script keeps it in step).
    link: str = ""
    #: Keep the address bar in step with the choice (``deep_links = "preselect"``).
    follow_url: bool = False


def is_multi(offer: Offer) -> bool:
    """Whether a server of this profile may take several GPUs (all from one node)."""
    gpu = offer.profile.gpu
    return gpu.kind is GPUKind.WHOLE and gpu.max_count > 1


def capacity_text(offer: Offer) -> str:
    """``5 of 32 GPUs free · A100-SXM4-80GB, V100-SXM2-32GB`` (empty for CPU profiles).

    A profile that may take several GPUs says how many one node has free: they must all come
    from one node.
    """
    gpu = offer.profile.gpu
    if gpu.kind is GPUKind.NONE:
        return "No GPU"
    if not offer.nodes:
        return ""
    unit = offer.unit + ("s" if offer.total != 1 else "")
    text = f"{offer.free} of {offer.total} {unit} free"
    if is_multi(offer) and offer.free:
        text += f" (at most {offer.max_free} on one node)"
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
    if is_multi(offer):
        return f"{choice.free} free, at most {choice.max_free} on one node"
    return f"{choice.free} free"


def _memory_warning(offer: Offer, recommended: int | None) -> str:
    memory = offer.profile.memory
    gives = memory.limit if memory.limit is not None else memory.guarantee
    if recommended is None or gives is None or gives >= recommended:
        return ""
    return (
        f"This image recommends {format_size(recommended)} of memory; this profile gives "
        f"{format_size(int(gives))}."
    )


def choice_link(base: str, slug: str, image: str | None, count: int | None) -> str:
    """``/hub/spawn?profile=gpu-1&image=cuda12-pytorch&gpus=2``."""
    query: list[tuple[str, str]] = [("profile", slug)]
    if image:
        query.append(("image", image))
    if count is not None:
        query.append(("gpus", str(count)))
    return f"{base}?{urlencode(query)}"


def build_form(
    offers: Sequence[Offer],
    selected: Choice | None,
    notices: Sequence[str] = (),
    *,
    catalog: Catalog | None = None,
    quotas: Mapping[GPUKind, QuotaCheck] | None = None,
    refused: str = "",
    fail_fast: bool = True,
    link_base: str = "",
    follow_url: bool = False,
) -> FormView:
    """The form's view: which profile, image and count are preselected, and what is greyed out.

    ``offers`` are the user's (what they may start). ``selected`` (a link or the user's saved
    options) is honoured as far as the cluster allows now, and whatever had to change is said.
    ``quotas``: the user's GPU limits per kind (a profile over its limit is unavailable to
    them, with which servers hold the GPUs). ``refused``: the message of a start just refused,
    which JupyterHub shows above the form (a card's reason it already says is not repeated).
    ``fail_fast``: images without room now cannot be picked (a start would fail at once).
    """
    checks = quotas or {}
    notes = list(notices)

    def unavailable(offer: Offer) -> str | None:
        if not offer.available:
            return offer.reason or "it cannot start now"
        check = checks.get(offer.profile.gpu.kind)
        if check is not None and not check.allows(offer.profile.gpu.count):
            return check.refusal(offer.profile.gpu.count, f"'{offer.profile.display_name}'")
        return None

    why = {o.slug: unavailable(o) for o in offers}
    chosen_slug = None
    by_slug = {o.slug: o for o in offers}
    if selected is not None:
        wanted = by_slug.get(selected.profile.slug)
        if wanted is not None and why[wanted.slug] is None:
            chosen_slug = wanted.slug
        elif wanted is not None:
            reason = str(why[wanted.slug])
            if not (refused and reason.rstrip(".") in refused):
                notes.append(
                    f"'{wanted.profile.display_name}' is not available right now: {reason}"
                )
    if chosen_slug is None:
        default = next((o for o in offers if o.profile.default and why[o.slug] is None), None)
        first = next((o for o in offers if why[o.slug] is None), None)
        pick = default or first
        chosen_slug = pick.slug if pick else None

    link = ""
    views = []
    for offer in offers:
        is_selected = offer.slug == chosen_slug
        mine = is_selected and selected is not None and selected.profile.slug == offer.slug
        wanted_image = offer.default_image
        wanted_count = offer.profile.gpu.count
        if mine and selected is not None:
            wanted_count = selected.count
            if selected.image is not None:
                if can_start(offer, selected.image):
                    wanted_image = selected.image
                else:
                    notes.append(_image_changed(offer, selected.image, wanted_image))
        images = []
        for c in offer.images:
            startable = can_start(offer, c.image.name)
            image = catalog.image(c.image.name) if catalog else c.image
            images.append(
                ImageOption(
                    name=c.image.name,
                    label=c.image.label,
                    note=_image_note(offer, c),
                    enabled=c.runs and (startable or not fail_fast or not offer.available),
                    selected=c.image.name == wanted_image,
                    description=image.description,
                    packages=catalog.packages_of(image) if catalog else image.packages,
                    memory_warning=_memory_warning(offer, image.memory_recommended),
                )
            )
        gpu = offer.profile.gpu
        counts: tuple[CountOption, ...] = ()
        if gpu.kind is GPUKind.WHOLE and gpu.max_count > gpu.count:
            room = offer.max_count
            if mine and wanted_count > room and why[offer.slug] is None:
                notes.append(
                    f"{wanted_count} GPUs are not free on one node of "
                    f"'{offer.profile.display_name}' right now (at most {room}); {room} "
                    f"{'is' if room == 1 else 'are'} selected instead."
                )
            wanted_count = min(max(wanted_count, gpu.count), room)
            counts = tuple(
                CountOption(value=n, enabled=n <= room, selected=n == wanted_count)
                for n in range(gpu.count, gpu.max_count + 1)
            )
        reason = why[offer.slug] or ""
        above = bool(reason and refused and reason.rstrip(".") in refused)
        if is_selected:
            link = choice_link(
                link_base, offer.slug, wanted_image, wanted_count if counts else None
            )
        views.append(
            ProfileView(
                slug=offer.slug,
                display_name=offer.profile.display_name,
                description=offer.profile.description,
                available=why[offer.slug] is None,
                reason=reason,
                capacity=capacity_text(offer),
                selected=is_selected,
                image_field=image_field(offer.slug),
                images=tuple(images),
                gpus_field=gpus_field(offer.slug),
                counts=counts,
                reason_above=above,
            )
        )
    if chosen_slug is None and offers:
        notes.append("No profile can start right now; the reasons are shown with each.")
    if not offers:
        notes.append("No server is offered to you; ask your hub's admin.")
    kinds = {o.profile.gpu.kind for o in offers}
    quota_lines = tuple(
        f"{check.summary}." for kind, check in checks.items() if kind in kinds and check.summary
    )
    return FormView(
        profiles=tuple(views),
        notices=tuple(dict.fromkeys(notes)),
        quotas=quota_lines,
        link_base=link_base,
        link=link,
        follow_url=follow_url,
    )


def _image_changed(offer: Offer, asked: str, instead: str) -> str:
    """Why the image asked for is not the one selected."""
    choice = offer.image(asked)
    other = offer.image(instead).image.label
    name = f"'{offer.profile.display_name}'"
    if not choice.runs:
        why = f"runs on no node of {name} now ({choice.reason})"
    else:
        why = f"has no room on the nodes of {name} that run it right now"
    return f"{choice.image.label} {why}; {other} is selected instead."


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
