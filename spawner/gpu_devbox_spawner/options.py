"""User options: what the form posts, what the REST API sends, and checking every field.

User options are ``{"profile": slug, "image": name, "gpus": count}`` (``image`` and ``gpus``
optional). Anything else, an unknown profile or image, or a count the profile does not allow is
an :class:`OptionsError` naming the field; the spawner turns it into an HTTP 400.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from gpu_devbox.catalog import Catalog, GPUKind, Profile
from gpu_devbox.placement import Offer

PROFILE = "profile"
IMAGE = "image"
GPUS = "gpus"
OPTION_NAMES = (PROFILE, IMAGE, GPUS)
#: Form fields JupyterHub or the browser may add that carry no choice.
_IGNORED_FORM_FIELDS = frozenset({"_xsrf"})


class OptionsError(ValueError):
    """A user option that cannot be used; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def image_field(slug: str) -> str:
    """The form field of a profile's image picker."""
    return f"image--{slug}"


def gpus_field(slug: str) -> str:
    """The form field of a profile's GPU-count picker."""
    return f"gpus--{slug}"


@dataclasses.dataclass(frozen=True)
class Choice:
    """Checked user options."""

    profile: Profile
    #: ``None``: the offer's default image.
    image: str | None
    count: int

    def as_options(self) -> dict[str, Any]:
        """The user-options dict that would make this choice again."""
        out: dict[str, Any] = {PROFILE: self.profile.slug}
        if self.image is not None:
            out[IMAGE] = self.image
        if self.profile.gpu.kind is GPUKind.WHOLE:
            out[GPUS] = self.count
        return out


def _one(values: Any, field: str) -> str:
    """The single string a form field carries."""
    if isinstance(values, list | tuple):
        if len(values) != 1:
            raise OptionsError(field, "must be given once")
        values = values[0]
    if isinstance(values, bytes):
        values = values.decode("utf-8", "replace")
    if not isinstance(values, str):
        raise OptionsError(field, "must be text")
    return values


def options_from_form(formdata: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    """User options from the options form (or a spawn URL's query), refusing unknown fields.

    The form has one image and one GPU-count picker per profile (``image--<slug>``,
    ``gpus--<slug>``) so that it works without JavaScript; only the chosen profile's count.
    """
    allowed = {PROFILE, IMAGE, GPUS}
    for profile in catalog.profiles:
        allowed.update((image_field(profile.slug), gpus_field(profile.slug)))
    for key in formdata:
        if key not in allowed and key not in _IGNORED_FORM_FIELDS:
            raise OptionsError(key, "is not a field of this form")
    options: dict[str, Any] = {}
    if PROFILE in formdata:
        options[PROFILE] = _one(formdata[PROFILE], PROFILE)
    slug = options.get(PROFILE) or catalog.default_profile.slug
    for name, field in ((IMAGE, image_field(slug)), (GPUS, gpus_field(slug))):
        for key in (name, field):  # a deep link says image=..., the form image--<slug>=...
            if key in formdata:
                value = _one(formdata[key], key)
                if value != "":
                    options[name] = value
    return options


def default_profile(catalog: Catalog, allowed: Collection[str] | None = None) -> Profile:
    """The catalog's default profile, else (when the user may not start it) their first one.

    Raises:
        OptionsError: the user may start no profile at all.
    """
    default = catalog.default_profile
    if allowed is None or default.slug in allowed:
        return default
    for profile in catalog.profiles:
        if profile.slug in allowed:
            return profile
    raise OptionsError(PROFILE, "no profile is offered to you; ask your hub's admin")


def parse_options(
    options: Mapping[str, Any], catalog: Catalog, allowed: Collection[str] | None = None
) -> Choice:
    """Check user options against the catalog and the profiles the user may start.

    ``allowed``: the slugs of the profiles offered to this user (``None``: every profile).

    Raises:
        OptionsError: an unknown field, profile or image, a profile the user may not start, or
            a count the profile does not allow.
    """
    if not isinstance(options, Mapping):
        raise OptionsError("user_options", "must be an object")
    for key in options:
        if key not in OPTION_NAMES:
            raise OptionsError(
                str(key), f"is not an option; the options are {', '.join(OPTION_NAMES)}"
            )
    mine = [p.slug for p in catalog.profiles if allowed is None or p.slug in allowed]
    slug = options.get(PROFILE)
    if slug in (None, ""):
        profile = default_profile(catalog, allowed)
    elif not isinstance(slug, str):
        raise OptionsError(PROFILE, "must be a profile's slug (text)")
    elif not catalog.has_profile(slug):
        raise OptionsError(
            PROFILE, f"there is no profile {slug!r}; the profiles are " + ", ".join(mine)
        )
    elif allowed is not None and slug not in allowed:
        others = f"; your profiles are {', '.join(mine)}" if mine else ""
        raise OptionsError(PROFILE, f"you may not start profile {slug!r}{others}")
    else:
        profile = catalog.profile(slug)

    image = options.get(IMAGE)
    if image in (None, ""):
        image = None
    elif not isinstance(image, str):
        raise OptionsError(IMAGE, "must be an image's name (text)")
    elif image not in profile.images:
        raise OptionsError(
            IMAGE,
            f"{image!r} is not an image of profile {profile.slug!r}; its images are "
            + ", ".join(profile.images),
        )
    return Choice(profile=profile, image=image, count=_count(options.get(GPUS), profile))


def _count(raw: Any, profile: Profile) -> int:
    gpu = profile.gpu
    if raw in (None, ""):
        return gpu.count
    if isinstance(raw, bool):
        raise OptionsError(GPUS, "must be a whole number")
    if isinstance(raw, str):
        try:
            raw = int(raw.strip())
        except ValueError:
            raise OptionsError(GPUS, f"{raw!r} is not a whole number") from None
    if not isinstance(raw, int):
        raise OptionsError(GPUS, "must be a whole number")
    if gpu.kind is not GPUKind.WHOLE:
        if raw != gpu.count:
            what = "no GPU" if gpu.kind is GPUKind.NONE else "exactly one GPU slice or share"
            raise OptionsError(GPUS, f"profile {profile.slug!r} has {what}; it cannot be {raw}")
        return raw
    if not gpu.count <= raw <= gpu.max_count:
        allowed = (
            f"exactly {gpu.count}"
            if gpu.count == gpu.max_count
            else f"{gpu.count} to {gpu.max_count}"
        )
        raise OptionsError(
            GPUS, f"{raw} GPUs is not allowed for profile {profile.slug!r} ({allowed})"
        )
    return raw


def can_start(offer: Offer, image: str) -> bool:
    """Whether a node could take a server of this offer with this image now."""
    choice = offer.image(image)
    if not (offer.available and choice.runs):
        return False
    return not offer.profile.gpu.wants_gpu or choice.max_free >= max(1, offer.profile.gpu.count)


def profile_for_image(
    image: str, catalog: Catalog, offers: Sequence[Offer]
) -> tuple[Offer, str | None]:
    """The profile a link naming only an image (``/hub/spawn?image=NAME``) starts.

    The first of ``offers`` (the user's, in catalog order) that offers the image and can start
    it now; else the first that offers it, with why it cannot start now.

    Raises:
        OptionsError: no image has that name, or no profile of the user offers it.
    """
    names = list(dict.fromkeys(name for o in offers for name in o.profile.images))
    if not catalog.has_image(image) or image not in names:
        if catalog.has_image(image):
            problem = f"no profile you may start offers the image {image!r}"
        else:
            problem = f"there is no image {image!r}"
        raise OptionsError(IMAGE, f"{problem}; the images are {', '.join(names)}")
    offering = [o for o in offers if image in o.profile.images]
    for offer in offering:
        if can_start(offer, image):
            return offer, None
    offer = offering[0]
    why = offer.reason or offer.image(image).reason or "no node with room runs it now"
    label = catalog.image(image).label
    return offer, (
        f"No profile can start {label} right now; '{offer.profile.display_name}' offers it, "
        f"but {why[0].lower()}{why[1:].rstrip('.')}."
    )
