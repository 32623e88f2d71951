"""Who may start what: a profile's ``groups``, admins, and the admin's ``profile_filter`` hook.

A catalog profile with ``groups:`` is offered only to members of one of those JupyterHub groups
(without: to everyone); admins see every profile when ``admins_see_all_profiles`` is on; then
``c.GPUDevboxSpawner.profile_filter``, a callable taking the spawner and the offers (it may be
async, as KubeSpawner's ``profile_list`` callables may), keeps the offers it returns. What is
left is all the user sees on the form and all a start may ask for.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gpu_devbox.catalog import Profile
from gpu_devbox.placement import Offer


class FilterError(Exception):
    """The admin's ``profile_filter`` failed or returned something other than offers."""


def group_names(user: Any) -> frozenset[str]:
    """The names of a JupyterHub user's groups (``User.groups`` holds ORM groups)."""
    return frozenset(str(getattr(group, "name", group)) for group in getattr(user, "groups", ()))


def may_start(profile: Profile, groups: Iterable[str], *, admin_sees_all: bool) -> bool:
    """Whether a user in ``groups`` may start the profile (``admin_sees_all``: an admin, with
    ``admins_see_all_profiles`` on)."""
    if admin_sees_all or profile.groups is None:
        return True
    return not set(profile.groups).isdisjoint(groups)


async def run_filter(
    hook: Callable[..., Any] | None, spawner: Any, offers: Sequence[Offer]
) -> tuple[Offer, ...]:
    """The offers ``hook(spawner, offers)`` keeps, in catalog order.

    Raises:
        FilterError: the hook raised, or returned something other than some of the offers.
    """
    if hook is None:
        return tuple(offers)
    try:
        kept = hook(spawner, tuple(offers))
        if inspect.isawaitable(kept):
            kept = await kept
    except Exception as exc:  # an admin's hook may raise anything
        raise FilterError(f"profile_filter raised {type(exc).__name__}: {exc}") from exc
    try:
        chosen = list(kept)
    except TypeError:
        raise FilterError(
            f"profile_filter must return some of the offers it was given, not {kept!r}"
        ) from None
    slugs = {offer.slug for offer in offers}
    strange = [item for item in chosen if getattr(item, "slug", None) not in slugs]
    if strange:
        raise FilterError(
            f"profile_filter must return some of the offers it was given, not {strange[0]!r}"
        )
    keep = {item.slug for item in chosen}
    return tuple(offer for offer in offers if offer.slug in keep)
