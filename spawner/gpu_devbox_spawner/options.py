"""User options: what the form posts, what the REST API sends, and checking every field.

User options are ``{"profile": slug, "image": name, "gpus": count}`` (``image`` and ``gpus``
optional). Anything else, an unknown profile or image, or a count the profile does not allow is
an :class:`OptionsError` naming the field; the spawner turns it into an HTTP 400.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gpu_devbox.catalog import Catalog, GPUKind, Profile

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


def parse_options(options: Mapping[str, Any], catalog: Catalog) -> Choice:
    """Check user options against the catalog.

    Raises:
        OptionsError: an unknown field, profile or image, or a count the profile does not allow.
    """
    if not isinstance(options, Mapping):
        raise OptionsError("user_options", "must be an object")
    for key in options:
        if key not in OPTION_NAMES:
            raise OptionsError(
                str(key), f"is not an option; the options are {', '.join(OPTION_NAMES)}"
            )
    slug = options.get(PROFILE)
    if slug in (None, ""):
        profile = catalog.default_profile
    elif not isinstance(slug, str):
        raise OptionsError(PROFILE, "must be a profile's slug (text)")
    elif not catalog.has_profile(slug):
        raise OptionsError(
            PROFILE,
            f"there is no profile {slug!r}; the profiles are "
            + ", ".join(p.slug for p in catalog.profiles),
        )
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
