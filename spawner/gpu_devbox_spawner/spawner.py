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
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from kubespawner import KubeSpawner
from tornado import web
from tornado.log import app_log
from traitlets import Any as AnyTrait
from traitlets import Bool, Enum, Float, Integer, List, Unicode, default

from gpu_devbox.catalog import Catalog, CatalogError, Toleration
from gpu_devbox.placement import Offer, Plan, alternatives, plan
from gpu_devbox_spawner.form import build_form, make_environment, render_form
from gpu_devbox_spawner.inventory import Inventory
from gpu_devbox_spawner.manifests import OWNED_TRAITS, Baseline, as_list, pod_settings
from gpu_devbox_spawner.options import (
    OPTION_NAMES,
    Choice,
    OptionsError,
    options_from_form,
    parse_options,
)
from gpu_devbox_spawner.progress import GPUWait, describe_event, describe_plan, no_room_message
from gpu_devbox_spawner.start_request import BodyError, options_given

#: HTTP status of "the cluster cannot take this now" (below 500: JupyterHub counts 5xx spawn
#: failures towards consecutive_failure_limit and would stop the hub if many users hit a full
#: cluster).
UNAVAILABLE = 409
#: Seconds between two looks at a starting pod for a GPU shortage (reads the pod reflector).
SHORTAGE_POLL = 0.25


class UserFacingError(web.HTTPError):
    """An HTTP error whose message JupyterHub shows the user as it is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "%s", message)
        self.jupyterhub_message = message


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
    """Keep the hub's log about user errors to one line.

    JupyterHub logs every exception of ``options_from_query``, ``options_from_form`` and
    ``apply_user_options`` with its traceback. A deep link showing the form is no error at all
    (dropped); a user's bad option or a full cluster is logged without the traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DeepLinkShowsForm):
            return False
        if isinstance(exc, UserFacingError):
            message = record.getMessage()
            if exc.jupyterhub_message not in message:
                message = f"{message}: {exc.jupyterhub_message}"
            record.msg = message
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


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
        #: The node the running pod was placed on (kept in the hub's state for the culler).
        self._node: str | None = None
        # JupyterHub logs a failed start on its app log, and (JupyterHub 5) on tornado's, which
        # it renames "JupyterHub": a filter belongs on each.
        for logger in (self.log, logging.getLogger("JupyterHub"), app_log):
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

    # -- the form -----------------------------------------------------------------------------

    async def render_options_form(self, spawner: Any = None) -> str:
        """The options form (the ``options_form`` JupyterHub calls with the spawner)."""
        offers = await self.offers()
        selected, notices = self._preselection(await self.current_catalog())
        view = build_form(offers, selected, notices)
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

    def _preselection(self, catalog: Catalog) -> tuple[Choice | None, list[str]]:
        """A deep link's choices, else the user's saved ones; notices when they do not fit."""
        query = self._query_options()
        if query:
            try:
                return parse_options(options_from_form(query, catalog), catalog), []
            except OptionsError as exc:
                return None, [f"The link's choice cannot be used ({exc}); pick a server below."]
        orm = self.orm_spawner
        saved = (orm.user_options if orm is not None else None) or self.user_options or {}
        if saved:
            try:
                return parse_options(saved, catalog), []
            except OptionsError as exc:
                return None, [
                    f"Your last choice is no longer offered ({exc}); pick a server below."
                ]
        return None, []

    async def read_options_form(self, formdata: dict[str, Any]) -> dict[str, Any]:
        """User options from the form or a spawn URL (``options_from_form``), all checked.

        Raises:
            UserFacingError: 400 naming the first field that cannot be used.
        """
        catalog = await self.current_catalog()
        try:
            options = options_from_form(formdata, catalog)
            parse_options(options, catalog)
        except OptionsError as exc:
            raise UserFacingError(400, str(exc)) from None
        return options

    async def options_from_query(self, query_data: dict[str, Any]) -> dict[str, Any]:
        """A spawn URL with query arguments: preselect the form, or start (``deep_links``).

        Raises:
            DeepLinkShowsForm: with ``deep_links = "preselect"``: JupyterHub shows the form.
            UserFacingError: 400 naming a field that cannot be used.
        """
        if self.deep_links == "preselect":
            raise DeepLinkShowsForm()
        return await self.read_options_form(query_data)

    # -- applying the user's choice -------------------------------------------------------------

    async def apply_catalog_options(self, user_options: Any) -> None:
        """Check the user's options, plan the placement and set this start's pod settings.

        Options the start's request gave must be right; saved ones that are no longer offered
        start the default profile with a notice.

        Raises:
            UserFacingError: 400 for bad options (naming the field) or a REST body that is not
                an object, 409 when no node can take the server now (with what to try).
        """
        catalog = await self.current_catalog()
        try:
            given = options_given(self.handler)
        except BodyError as exc:
            orm = self.orm_spawner
            if orm is not None and not isinstance(orm.user_options, dict | None):
                orm.user_options = {}  # JupyterHub 5 saved the body as the options: drop it
            raise UserFacingError(400, str(exc)) from None
        self._notice = None
        try:
            choice = parse_options(user_options or {}, catalog)
        except OptionsError as exc:
            if given:
                raise UserFacingError(400, str(exc)) from None
            default = catalog.default_profile
            choice = Choice(default, None, default.gpu.count)
            self._notice = (
                f"Your saved choice is no longer offered ({exc}); starting "
                f"'{default.display_name}' instead."
            )
            self.log.warning("gpu-devbox: %s: %s", self._log_name, self._notice)
        offers = await self.offers()
        offer = next(o for o in offers if o.slug == choice.profile.slug)
        image = choice.image or offer.default_image
        chosen = plan(offer, image, choice.count)
        if not chosen.nodes:
            why = offer.reason or offer.image(image).reason or "no node can take it"
            raise UserFacingError(
                UNAVAILABLE,
                f"'{offer.profile.display_name}' with {chosen.image.label} cannot start now: "
                f"{why.rstrip('.')}; {alternatives(offers, exclude=offer.slug)}",
            )
        self._image_chosen = choice.image is not None
        if self.fail_fast and not chosen.fits_now:
            raise UserFacingError(
                UNAVAILABLE, no_room_message(offers, chosen, image_chosen=self._image_chosen)
            )
        if self._baseline is None:
            self._baseline = Baseline.capture({name: getattr(self, name) for name in OWNED_TRAITS})
        settings = pod_settings(
            chosen, self._baseline, extra_tolerations=self.configured_tolerations()
        )
        for name, value in settings.items():
            setattr(self, name, value)
        self._plan = chosen
        self.log.info(
            "gpu-devbox: %s: profile %s, image %s, %s x %s on %d node(s)",
            self._log_name,
            offer.slug,
            image,
            chosen.count,
            chosen.resource,
            len(chosen.nodes),
        )

    async def load_user_options(self) -> None:
        """KubeSpawner's first step of a start: apply the options, unless already applied.

        The ``apply_user_options`` hook normally did; this covers an admin who replaced it.
        """
        if self._plan is None:
            await self.apply_catalog_options(self.user_options)

    def clear_state(self) -> None:
        """Forget the last start's plan (JupyterHub calls this before each start and after stop)."""
        super().clear_state()
        self._plan = None
        self._node = None

    def get_state(self) -> dict[str, Any]:
        """KubeSpawner's state, plus ``gpu_devbox.node``: where the pod runs.

        gpu-devbox-culler's admin view shows it (with the ``admin:server_state`` scope).
        """
        state: dict[str, Any] = super().get_state()
        reflector = self.pod_reflector
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector else None
        node = (pod or {}).get("spec", {}).get("nodeName") if isinstance(pod, dict) else None
        if isinstance(node, str) and node:
            self._node = node
        if self._node:
            state["gpu_devbox"] = {"node": self._node}
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """KubeSpawner's state, and the node recorded by :meth:`get_state`."""
        super().load_state(state)
        ours = state.get("gpu_devbox")
        node = ours.get("node") if isinstance(ours, dict) else None
        self._node = node if isinstance(node, str) else None

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
            raise UserFacingError(UNAVAILABLE, message)
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
                self.log.warning("gpu-devbox: %s: %s", self._log_name, text)
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
