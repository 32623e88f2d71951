"""``GPUDevboxSpawner``: KubeSpawner that offers a catalog's profiles on the cluster's GPU nodes.

Set ``c.JupyterHub.spawner_class = "gpu-devbox"``. The form lists the catalog's profiles with
the GPUs free for each right now (from the shared, watch-fed inventory: no API call per form),
every user option is checked (an HTTP 400 naming the field), the pod's GPU settings come from
a placement plan on each start, a start that no node has a free GPU for fails within seconds
with what to try instead, and the progress log says what is happening in plain words.

It works through the hooks JupyterHub and KubeSpawner document: ``options_form`` (a coroutine
rendering the form), ``options_from_form`` and ``options_from_query`` (form and deep link to
checked options), ``apply_user_options`` (JupyterHub 5.3: check, place, set the pod's
settings; ``load_user_options`` does it when an admin replaced that hook), ``start`` (stopped
early when the pod cannot get a GPU) and ``progress``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from kubespawner import KubeSpawner
from tornado import web
from tornado.log import app_log
from traitlets import Any as AnyTrait
from traitlets import Bool, Callable, Enum, Float, Integer, List, Unicode, default

from gpu_devbox.catalog import Catalog, CatalogError, GPUKind, Toleration
from gpu_devbox.placement import ClusterSnapshot, Offer, Plan, alternatives, plan
from gpu_devbox.placement.quota import Holding, QuotaCheck, holdings
from gpu_devbox.placement.quota import check as check_quota
from gpu_devbox_spawner.access import FilterError, group_names, may_start, run_filter
from gpu_devbox_spawner.form import build_form, make_environment, render_form
from gpu_devbox_spawner.inventory import Inventory
from gpu_devbox_spawner.manifests import (
    OWNED_TRAITS,
    Baseline,
    as_list,
    created_claim,
    is_shared_claim,
    pod_settings,
)
from gpu_devbox_spawner.options import (
    IMAGE,
    OPTION_NAMES,
    PROFILE,
    Choice,
    OptionsError,
    default_profile,
    options_from_form,
    parse_options,
    profile_for_image,
)
from gpu_devbox_spawner.progress import GPUWait, describe_event, describe_plan, no_room_message
from gpu_devbox_spawner.start_request import BodyError, options_given


def sqlalchemy_session(obj: Any) -> Any:
    """The database session an ORM object belongs to (``None`` when detached)."""
    from sqlalchemy.orm import object_session

    return object_session(obj)


#: HTTP status of "the cluster cannot take this now" (below 500: JupyterHub counts 5xx spawn
#: failures towards consecutive_failure_limit and would stop the hub if many users hit a full
#: cluster).
UNAVAILABLE = 409
#: Query arguments of a spawn URL that JupyterHub reads itself (JupyterHub 5 passes them on).
_RESERVED_QUERY = frozenset({"next", "display_name", "_xsrf"})
#: Seconds between two looks at a starting pod for a GPU shortage (reads the pod reflector).
SHORTAGE_POLL = 0.25


class UserFacingError(web.HTTPError):
    """An HTTP error whose message JupyterHub shows the user as it is."""

    #: The messages of the last refusals, so that the log filter knows JupyterHub's own lines
    #: about them (which carry the message but not the exception).
    recent: ClassVar[collections.deque[str]] = collections.deque(maxlen=64)

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "%s", message)
        self.jupyterhub_message = message
        UserFacingError.recent.append(message)


class DeepLinkShowsForm(Exception):
    """Raised by ``options_from_query`` so that a spawn URL's choices preselect the form.

    JupyterHub starts a server for a spawn URL with query arguments, unless
    ``options_from_query`` raises: then it serves the options form, with the exception's
    message (empty here) above it and the status of an HTTP error (this is none: a 200).
    """

    jupyterhub_message = None

    def __init__(self) -> None:
        super().__init__()


class _QuietUserErrors(logging.Filter):
    """Keep the hub's log about a refused start to the one WARNING line the spawner writes.

    JupyterHub logs every exception of ``options_from_query``, ``options_from_form`` and
    ``apply_user_options`` as an error with its traceback, then "Error starting ...'s server"
    as another error, and tornado a warning with the message again: a user's bad option or a
    full cluster read like a failure of the hub. The spawner logs each refusal once (a
    WARNING naming the user, the status and why); these lines about the same refusal, and a
    deep link showing the form (no error at all), are dropped. A 5xx stays an error.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DeepLinkShowsForm):
            return False
        if isinstance(exc, UserFacingError):
            return exc.status_code >= 500
        if exc is None and record.levelno >= logging.WARNING:
            message = record.getMessage()
            return not any(refusal in message for refusal in UserFacingError.recent)
        return True


#: The loggers JupyterHub (and tornado, and asyncio for a future nobody awaited) log a refused
#: start on.
_QUIETED_LOGGERS = ("JupyterHub", "tornado.application", "tornado.general", "asyncio")


async def _apply_user_options_hook(spawner: GPUDevboxSpawner, user_options: Any) -> None:
    await spawner.apply_catalog_options(user_options)


class GPUDevboxSpawner(KubeSpawner):  # type: ignore[misc]  # KubeSpawner ships no types
    """A KubeSpawner whose profiles come from a gpu-devbox catalog and the cluster's GPUs."""

    catalog_path = Unicode(
        "",
        config=True,
        help="""Path of the catalog (a YAML file) of images and profiles users can start.

        Empty: the catalog gpu-devbox ships. The file is read again when it changes; an edit
        that breaks it is logged and the previous version stays in use.
        Example: ``c.GPUDevboxSpawner.catalog_path = "/etc/jupyterhub/catalog.yaml"``.
        """,
    )
    fail_fast = Bool(
        True,
        config=True,
        help="""Stop a start at once when no node has a free GPU for it.

        The user gets "No <model> GPU is free (0 of N); try <alternative>" instead of waiting
        for start_timeout. Turn this off with a cluster autoscaler that adds GPU nodes for
        pending pods. Example: ``c.GPUDevboxSpawner.fail_fast = False``.
        """,
    )
    unschedulable_grace = Float(
        2.0,
        config=True,
        help="""Seconds a started pod may stay unschedulable for lack of GPUs before the start
        fails (with fail_fast). Covers a GPU that is being released as the pod arrives.
        Example: ``c.GPUDevboxSpawner.unschedulable_grace = 5.0``.""",
    )
    deep_links = Enum(
        ["preselect", "start"],
        default_value="preselect",
        config=True,
        help="""What ``/hub/spawn?profile=...&image=...&gpus=...`` does.

        "preselect" shows the form with those choices selected; "start" starts the server at
        once (JupyterHub's default for spawn URLs with query parameters).
        Example: ``c.GPUDevboxSpawner.deep_links = "start"``.
        """,
    )
    form_template_paths = List(
        Unicode(),
        config=True,
        help="""Paths of directories searched, in order, for a ``form.html`` that replaces the
        packaged options form. Empty: the packaged form.
        Example: ``c.GPUDevboxSpawner.form_template_paths = ["/etc/jupyterhub/templates"]``.""",
    )
    inventory_watch_timeout = Integer(
        60,
        config=True,
        help="""Seconds (a whole number) each watch of nodes and pods lasts before it is
        renewed. Example: ``c.GPUDevboxSpawner.inventory_watch_timeout = 300``.""",
    )
    inventory_sync_timeout = Float(
        10.0,
        config=True,
        help="""Seconds the first form after the hub starts waits for the cluster's nodes and
        pods to be listed. Example: ``c.GPUDevboxSpawner.inventory_sync_timeout = 30.0``.""",
    )

    admins_see_all_profiles = Bool(
        False,
        config=True,
        help="""Let JupyterHub admins see and start every profile, whatever its ``groups``.

        Off: admins see the profiles of their groups, like everyone.
        Example: ``c.GPUDevboxSpawner.admins_see_all_profiles = True``.""",
    )
    profile_filter = Callable(
        None,
        allow_none=True,
        config=True,
        help="""A function choosing which profiles a user is offered, after the catalog's
        ``groups`` (and ``admins_see_all_profiles``) did.

        It is called with the spawner (``spawner.user.name``, ``spawner.user.groups``...) and
        the offers (each with ``.slug``, ``.profile`` and what the cluster has free), may be
        async, and returns the offers to keep. A start of a profile it left out is refused
        (HTTP 400). A ``def`` in jupyterhub_config.py does for anything longer than the
        example, which offers every profile but the h100 one.
        Example: ``c.GPUDevboxSpawner.profile_filter = lambda s, o: [x for x in o if x.slug != "h100"]``.""",  # noqa: E501 - one line: the reference's table shows it
    )

    # JupyterHub 5 assigns a REST request's body as it is (a list, a string, a number) to
    # user_options: as a Dict that is a 500 before apply_user_options can answer 400 (below).
    user_options = AnyTrait(help="The user's options; checked by apply_catalog_options.")

    @default("user_options")
    def _default_user_options(self) -> dict[str, Any]:
        return {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The admin's values of the traits a start sets, captured before the first start.
        self._baseline: Baseline | None = None
        #: This start's placement; None until the user's options were applied.
        self._plan: Plan | None = None
        #: Said first in the progress log (saved options that are no longer offered).
        self._notice: str | None = None
        #: Whether the user picked the image, rather than leaving it to the profile.
        self._image_chosen = False
        #: The options of the last start that was not refused (JupyterHub saved the new ones
        #: before the spawner could judge them; a refused start puts these back).
        orm = self.orm_spawner
        self._accepted_options: Any = copy.deepcopy(orm.user_options) if orm is not None else None
        #: The message of the last refused start (the form shown with it does not repeat it).
        self._refused = ""
        #: The claim KubeSpawner manages when the profile creates none (the admin's, or the one
        #: its state remembered); the claim of the last start is shared by every user.
        self._admin_pvc_name: str | None = None
        self._claim_shared = False
        # JupyterHub logs a refused start on its app log, and (JupyterHub 5) on tornado's, which
        # it renames "JupyterHub": a filter belongs on each.
        loggers = [self.log, app_log, *(logging.getLogger(n) for n in _QUIETED_LOGGERS)]
        for logger in loggers:
            target = getattr(logger, "logger", logger)
            if not any(isinstance(f, _QuietUserErrors) for f in target.filters):
                target.addFilter(_QuietUserErrors())
        if self.profile_list:
            self.log.warning("gpu-devbox: profile_list is ignored; profiles come from the catalog")

    # -- defaults wired into JupyterHub -------------------------------------------------------

    @default("options_form")
    def _default_options_form(self) -> Any:
        return self.render_options_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return self.read_options_form

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return _apply_user_options_hook

    # -- catalog, inventory, offers -----------------------------------------------------------

    def shared_inventory(self) -> Inventory:
        """The hub's inventory of this cluster, made by the first spawner that needs it.

        Every spawner of the hub shares it, and with it the catalog files and the offers.
        """
        return Inventory.shared(self.k8s_api_host or "in-cluster", self._new_inventory)

    def _new_inventory(self) -> Inventory:
        return Inventory.for_kubespawner(
            watch_timeout=self.inventory_watch_timeout,
            request_timeout=self.k8s_api_request_timeout,
            log=self.log,
        )

    async def inventory(self) -> Inventory:
        """The shared inventory, listed at least once (or the sync timeout passed)."""
        inventory = self.shared_inventory()
        await inventory.wait_synced(self.inventory_sync_timeout)
        return inventory

    async def current_catalog(self) -> Catalog:
        """The catalog in force; a changed file is re-read in a worker thread.

        Raises:
            UserFacingError: 500 when the file never held a valid catalog (a broken edit of a
                good one keeps the good one, and is logged).
        """
        try:
            return await self.shared_inventory().catalog_file(self.catalog_path).aget()
        except CatalogError as exc:
            self.log.error("gpu-devbox: the catalog is invalid: %s", exc)
            raise UserFacingError(
                500, f"The hub's catalog of servers is invalid; please tell its admin. ({exc})"
            ) from None

    def configured_tolerations(self) -> list[Toleration]:
        """The admin's own tolerations (``c.KubeSpawner.tolerations``), for placement."""
        source = self._baseline.get("tolerations") if self._baseline else as_list(self.tolerations)
        return [
            Toleration(
                key=item.get("key") or "",
                operator=item.get("operator") or "Equal",
                value=item.get("value"),
                effect=item.get("effect"),
            )
            for item in source
            if isinstance(item, dict)
        ]

    async def offers(self) -> tuple[Offer, ...]:
        """Every profile's offer on the cluster now (computed once per cluster change)."""
        catalog = await self.current_catalog()
        inventory = await self.inventory()
        return inventory.offers(catalog, tuple(self.configured_tolerations()))

    async def user_offers(self) -> tuple[Offer, ...]:
        """The offers of the profiles this user may start: the catalog's ``groups``, then
        ``admins_see_all_profiles`` and ``profile_filter``.

        Raises:
            UserFacingError: 500 when the admin's ``profile_filter`` fails.
        """
        offers = await self.offers()
        groups = group_names(self.user)
        sees_all = self.admins_see_all_profiles and bool(getattr(self.user, "admin", False))
        mine = tuple(o for o in offers if may_start(o.profile, groups, admin_sees_all=sees_all))
        try:
            return await run_filter(self.profile_filter, self, mine)
        except FilterError as exc:
            self.log.error("gpu-devbox: %s: %s", self._log_name, exc)
            raise self._refusal(
                500, f"The hub's profile_filter failed; please tell its admin. ({exc})"
            ) from None

    def quota_checks(
        self, catalog: Catalog, snapshot: ClusterSnapshot
    ) -> dict[GPUKind, QuotaCheck]:
        """This user's GPU limits per kind, against what their servers hold now.

        Counted from the inventory's pods (no API call): the user's server pods in the hub's
        namespace, but not this server's own (a start replaces it), plus the user's other
        servers that are starting and whose pods the inventory has not seen yet.
        """
        quota = catalog.quota_for(group_names(self.user))
        if quota is None:
            return {}
        namespaces = None if self.enable_user_namespaces else [self.namespace]
        held = [
            *holdings(snapshot, self.user.name, namespaces=namespaces, exclude=[self.pod_name]),
            *self._starting_elsewhere(snapshot),
        ]
        return {kind: check_quota(quota, held, kind) for kind in GPUKind if kind.value != "none"}

    def _starting_elsewhere(self, snapshot: ClusterSnapshot) -> list[Holding]:
        """GPUs the user's other servers asked for while starting, before their pods show."""
        seen = {pod.server for pod in snapshot.held_by(self.user.name)}
        out = []
        for other in getattr(self.user, "spawners", {}).values():
            chosen = getattr(other, "_plan", None)
            if (
                other is self
                or not isinstance(other, GPUDevboxSpawner)
                or chosen is None
                or chosen.resource is None
                or other.name in seen
                or not other.pending
            ):
                continue
            out.append(Holding(other.name, chosen.offer.profile.gpu.kind, chosen.count))
        return out

    def _refusal(self, status: int, message: str) -> UserFacingError:
        """The error for a refused start or a bad form, logged as the one line about it.

        A refused start (400) puts back the options of the last start that was not refused:
        JupyterHub saved the refused ones before the spawner judged them, so the user's next
        form and the admin page would otherwise show a choice that never started.
        """
        level = logging.ERROR if status >= 500 else logging.WARNING
        self.log.log(
            level,
            "gpu-devbox: %s: not started (HTTP %d): %s",
            self._log_name,
            status,
            message,
            extra={"gpu_devbox_refusal": True},
        )
        self._refused = message
        if status == 400:
            self._restore_accepted_options()
        return UserFacingError(status, message)

    def _restore_accepted_options(self) -> None:
        orm = self.orm_spawner
        accepted = copy.deepcopy(self._accepted_options) or {}
        self.user_options = copy.deepcopy(accepted)
        if orm is None or orm.user_options == accepted:
            return
        orm.user_options = accepted
        session = sqlalchemy_session(orm)
        if session is not None:
            session.commit()

    # -- the form -----------------------------------------------------------------------------

    async def render_options_form(self, spawner: Any = None) -> str:
        """The options form (the ``options_form`` JupyterHub calls with the spawner)."""
        catalog = await self.current_catalog()
        offers = await self.user_offers()
        selected, notices = self._preselection(catalog, offers)
        inventory = await self.inventory()
        request = getattr(self.handler, "request", None)
        # JupyterHub shows the form again after a refused start, with the refusal above it; by
        # then the start has let go of its handler (None). A spawn page's GET sets a fresh one:
        # a refusal from before (a REST start, say) is not above that page.
        refused, self._refused = self._refused, ""
        if request is not None and request.method != "POST":
            refused = ""
        view = build_form(
            offers,
            selected,
            notices,
            catalog=catalog,
            quotas=self.quota_checks(catalog, inventory.snapshot()),
            refused=refused,
            fail_fast=self.fail_fast,
            link_base=request.path if request is not None else "",
            follow_url=self.deep_links == "preselect",
        )
        return render_form(view, make_environment(self.form_template_paths))

    def _query_options(self) -> dict[str, list[str]]:
        """A deep link's choices: the spawn page passes its handler for the form to read."""
        request = getattr(self.handler, "request", None)
        if request is None or request.method != "GET":
            return {}
        out: dict[str, list[str]] = {}
        for key, values in request.query_arguments.items():
            name = key[4:] if key.startswith("opt-") else key
            if name in OPTION_NAMES:
                out[name] = [v.decode("utf-8", "replace") for v in values]
        return out

    def _preselection(
        self, catalog: Catalog, offers: tuple[Offer, ...]
    ) -> tuple[Choice | None, list[str]]:
        """A deep link's choices, else the user's saved ones; notices when they do not fit."""
        allowed = [o.slug for o in offers]
        query = self._query_options()
        if query:
            try:
                options, note = self._link_options(query, catalog, offers)
                return parse_options(options, catalog, allowed), [note] if note else []
            except OptionsError:
                # options_from_query refused the link with a 400 JupyterHub shows above
                return None, []
        orm = self.orm_spawner
        saved = (orm.user_options if orm is not None else None) or self.user_options or {}
        if saved:
            try:
                return parse_options(saved, catalog, allowed), []
            except OptionsError as exc:
                return None, [
                    f"Your last choice is no longer offered ({exc}); pick a server below."
                ]
        return None, []

    def _link_options(
        self, formdata: Mapping[str, Any], catalog: Catalog, offers: tuple[Offer, ...]
    ) -> tuple[dict[str, Any], str | None]:
        """User options from a spawn URL; ``?image=NAME`` alone picks its profile.

        Raises:
            OptionsError: naming the field that cannot be used.
        """
        options = options_from_form(formdata, catalog)
        note = None
        if IMAGE in options and PROFILE not in options:
            offer, note = profile_for_image(options[IMAGE], catalog, offers)
            options[PROFILE] = offer.slug
        return options, note

    async def read_options_form(self, formdata: dict[str, Any]) -> dict[str, Any]:
        """User options from the form (``options_from_form``), all checked.

        Raises:
            UserFacingError: 400 naming the first field that cannot be used.
        """
        catalog = await self.current_catalog()
        offers = await self.user_offers()
        try:
            options = options_from_form(formdata, catalog)
            parse_options(options, catalog, [o.slug for o in offers])
        except OptionsError as exc:
            raise self._refusal(400, str(exc)) from None
        return options

    async def options_from_query(self, query_data: dict[str, Any]) -> dict[str, Any]:
        """A spawn URL with query arguments: preselect the form, or start (``deep_links``).

        ``?image=NAME`` alone picks the first profile that offers the image and can start it
        now (else the first that offers it, and the form says why it cannot start now).

        Raises:
            DeepLinkShowsForm: with ``deep_links = "preselect"``: JupyterHub shows the form.
            UserFacingError: 400 naming a field that cannot be used (an unknown profile or
                image lists those that exist).
        """
        catalog = await self.current_catalog()
        offers = await self.user_offers()
        # JupyterHub 5 passes every query argument as it is (6 strips its opt- prefix)
        query = {
            (key[4:] if key.startswith("opt-") else key): value
            for key, value in query_data.items()
            if key not in _RESERVED_QUERY
        }
        try:
            options, _ = self._link_options(query, catalog, offers)
            parse_options(options, catalog, [o.slug for o in offers])
        except OptionsError as exc:
            raise self._refusal(400, f"The link cannot be used: {exc}") from None
        if self.deep_links == "preselect":
            raise DeepLinkShowsForm()
        return options

    # -- applying the user's choice -------------------------------------------------------------

    async def apply_catalog_options(self, user_options: Any) -> None:
        """Check the user's options, plan the placement and set this start's pod settings.

        Options the start's request gave must be right; saved ones that are no longer offered
        start the default profile with a notice.

        Raises:
            UserFacingError: 400 for bad options (naming the field), a profile the user may not
                start, a start over the user's GPU limit (naming the servers that hold them) or
                a REST body that is not an object; 409 when no node can take the server now
                (with what to try).
        """
        catalog = await self.current_catalog()
        try:
            given = options_given(self.handler)
        except BodyError as exc:
            raise self._refusal(400, str(exc)) from None
        self._notice = None
        offers = await self.user_offers()
        allowed = [o.slug for o in offers]
        try:
            choice = parse_options(user_options or {}, catalog, allowed)
        except OptionsError as exc:
            if given:
                raise self._refusal(400, str(exc)) from None
            try:
                fallback = default_profile(catalog, allowed)
            except OptionsError as none:
                raise self._refusal(400, str(none)) from None
            choice = Choice(fallback, None, fallback.gpu.count)
            self._notice = (
                f"Your saved choice is no longer offered ({exc}); starting "
                f"'{fallback.display_name}' instead."
            )
            self.log.warning("gpu-devbox: %s: %s", self._log_name, self._notice)
        offer = next(o for o in offers if o.slug == choice.profile.slug)
        gpu = choice.profile.gpu
        if gpu.wants_gpu:
            inventory = await self.inventory()
            quota = self.quota_checks(catalog, inventory.snapshot()).get(gpu.kind)
            if quota is not None and not quota.allows(choice.count):
                raise self._refusal(
                    400, quota.refusal(choice.count, f"'{choice.profile.display_name}'")
                )
        image = choice.image or offer.default_image
        chosen = plan(offer, image, choice.count)
        if not chosen.nodes:
            why = offer.reason or offer.image(image).reason or "no node can take it"
            raise self._refusal(
                UNAVAILABLE,
                f"'{offer.profile.display_name}' with {chosen.image.label} cannot start now: "
                f"{why.rstrip('.')}; {alternatives(offers, exclude=offer.slug)}",
            )
        self._image_chosen = choice.image is not None
        if self.fail_fast and not chosen.fits_now:
            raise self._refusal(
                UNAVAILABLE, no_room_message(offers, chosen, image_chosen=self._image_chosen)
            )
        if self._baseline is None:
            self._baseline = Baseline.capture({name: getattr(self, name) for name in OWNED_TRAITS})
            self._admin_pvc_name = getattr(self, "pvc_name", None)
        settings = pod_settings(
            chosen, self._baseline, extra_tolerations=self.configured_tolerations()
        )
        for name, value in settings.items():
            setattr(self, name, value)
        self._use_claim(choice)
        self._plan = chosen
        self._accepted_options = (
            copy.deepcopy(user_options) if isinstance(user_options, dict) else {}
        )
        self.log.info(
            "gpu-devbox: %s: profile %s, image %s, %s x %s on %d node(s)",
            self._log_name,
            offer.slug,
            image,
            chosen.count,
            chosen.resource,
            len(chosen.nodes),
        )

    def _use_claim(self, choice: Choice) -> None:
        """Point KubeSpawner's claim at the profile's created claim, or back at the admin's."""
        volume = created_claim(choice.profile)
        name: str | None = (
            self._expand_user_properties(self.pvc_name_template)
            if volume is not None
            else self._admin_pvc_name
        )
        self._claim_shared = volume is not None and is_shared_claim(volume)
        current = getattr(self, "pvc_name", None)
        if name is not None and name != current:
            self.pvc_name = name
            self._pvc_exists = False  # KubeSpawner creates it, or finds it exists (409)

    async def load_user_options(self) -> None:
        """KubeSpawner's first step of a start: apply the options, unless already applied.

        The ``apply_user_options`` hook normally did; this covers an admin who replaced it.
        """
        if self._plan is None:
            await self.apply_catalog_options(self.user_options)

    # -- state and deletion -------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """KubeSpawner's state, and whether the server's claim is shared by every user."""
        state: dict[str, Any] = super().get_state()
        if self._claim_shared:
            state["gpu_devbox_claim_shared"] = True
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """KubeSpawner's state, and whether the server's claim is shared by every user."""
        super().load_state(state)
        self._claim_shared = bool(state.get("gpu_devbox_claim_shared"))

    async def delete_forever(self) -> None:
        """KubeSpawner deletes the user's claim with the user; never a claim every user shares."""
        if self._claim_shared:
            self.log.info(
                "gpu-devbox: %s: keeping claim %s, which every user shares",
                self._log_name,
                self.pvc_name,
            )
            return
        await super().delete_forever()

    def clear_state(self) -> None:
        """Forget the last start's plan (JupyterHub calls this before each start and after stop)."""
        super().clear_state()
        self._plan = None

    # -- starting -----------------------------------------------------------------------------

    async def start(self) -> Any:
        """Start the server; with ``fail_fast``, give up once its pod cannot get a GPU.

        Raises:
            UserFacingError: 409 when the scheduler found no free GPU for the pod for
                ``unschedulable_grace`` seconds (the pod is deleted).
        """
        starting = super().start()  # KubeSpawner's future; its progress() ends with it
        if not self.fail_fast:
            return await starting
        watching = asyncio.ensure_future(self._gpu_shortage())
        try:
            await asyncio.wait({starting, watching}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                return starting.result()
            message = watching.result()
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            with contextlib.suppress(Exception):
                await self.stop(now=True)
            raise self._refusal(UNAVAILABLE, message)
        finally:
            watching.cancel()
            if not starting.done():
                starting.cancel()

    async def _gpu_shortage(self) -> str:
        """What to tell the user once the pod waited ``unschedulable_grace`` s for a GPU."""
        loop = asyncio.get_running_loop()
        waiting = GPUWait(self.unschedulable_grace)
        while True:
            await asyncio.sleep(SHORTAGE_POLL)
            chosen = self._plan
            reflector = self.pod_reflector
            if chosen is None or chosen.resource is None or reflector is None:
                continue
            pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}")
            scheduler_says = waiting.observe(pod, loop.time())
            if scheduler_says is not None:
                text = no_room_message(
                    await self.offers(),
                    chosen,
                    image_chosen=self._image_chosen,
                    scheduler_says=scheduler_says,
                )
                return text

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """KubeSpawner's progress, with events turned into plain sentences."""
        if self._notice:
            yield {"progress": 1, "message": self._notice}
        if self._plan is not None:
            yield {"progress": 2, "message": describe_plan(self._plan)}
        async for event in super().progress():
            raw = event.get("raw_event")
            if raw:
                event = {**event, "message": describe_event(raw)}
            yield event
