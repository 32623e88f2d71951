"""``GPUDevboxSpawner``: KubeSpawner that offers a catalog's profiles on the cluster's GPU nodes.

Set ``c.JupyterHub.spawner_class = "gpu-devbox"``. The form lists the catalog's profiles with
the GPUs free for each right now (from the shared, watch-fed inventory: no API call per form),
every user option is checked (an HTTP 400 naming the field), the pod's GPU settings come from
a placement plan on each start, a start that no node has a free GPU for fails within seconds
with what to try instead, and the progress log says what is happening in plain words.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from kubespawner import KubeSpawner
from tornado import web
from tornado.log import app_log
from traitlets import Any as AnyTrait
from traitlets import Bool, Enum, Float, Integer, List, Unicode, default

from gpu_devbox.catalog import Catalog, CatalogError, Toleration
from gpu_devbox_spawner.catalog_file import CatalogFile
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
from gpu_devbox_spawner.placement import Offer, Plan, alternatives, compute_offers, plan, shortage
from gpu_devbox_spawner.progress import describe_event, describe_plan, unschedulable_for_gpus

#: HTTP status of "the cluster cannot take this now" (below 500: JupyterHub counts 5xx spawn
#: failures towards consecutive_failure_limit and would stop the hub if many users hit a full
#: cluster).
UNAVAILABLE = 409
_CATALOGS: dict[str, CatalogFile] = {}
#: The last offers computed, and the (snapshot, catalog, tolerations) they came from.
_LAST_OFFERS: tuple[tuple[object, object, tuple[Toleration, ...]], tuple[Offer, ...]] | None = None


class UserFacingError(web.HTTPError):
    """An HTTP error whose message JupyterHub shows the user as it is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "%s", message)
        self.jupyterhub_message = message


class _ShowForm(web.HTTPError):
    """Raised from ``options_from_query`` so that a deep link shows the form, preselected."""

    def __init__(self) -> None:
        super().__init__(200, "a deep link: showing the options form with its choices")
        self.jupyterhub_message = None


class _QuietUserErrors(logging.Filter):
    """Keep the hub's log about user errors to one line.

    JupyterHub logs every exception of ``options_from_query``, ``options_from_form`` and
    ``apply_user_options`` with its traceback. A deep link showing the form is no error at all
    (dropped); a user's bad option or a full cluster is logged without the traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, _ShowForm):
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


def _json_kind(value: Any) -> str:
    """How a JSON value is called in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


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
        self._baseline: Baseline | None = None
        self._plan: Plan | None = None
        self._notice: str | None = None
        self._options_from_request = False
        self._image_chosen = False
        self._inventory: Inventory | None = None
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
        return self._render_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return self._options_from_form

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return _apply_user_options_hook

    # -- catalog, inventory, offers -----------------------------------------------------------

    def _catalog_file(self) -> CatalogFile:
        source = _CATALOGS.get(self.catalog_path)
        if source is None:
            source = _CATALOGS[self.catalog_path] = CatalogFile(self.catalog_path, self.log)
        return source

    def _invalid_catalog(self, exc: CatalogError) -> UserFacingError:
        self.log.error("gpu-devbox: the catalog is invalid: %s", exc)
        return UserFacingError(
            500, f"The hub's catalog of servers is invalid; please tell its admin. ({exc})"
        )

    def catalog(self) -> Catalog:
        """The catalog in force (re-read when its file changed).

        The coroutines use :meth:`current_catalog`, which reads off the event loop; this is for
        JupyterHub's synchronous hooks, which then mostly find it read already.
        """
        try:
            return self._catalog_file().get()
        except CatalogError as exc:
            raise self._invalid_catalog(exc) from None

    async def current_catalog(self) -> Catalog:
        """The catalog in force; a changed file is re-read in a worker thread."""
        try:
            return await self._catalog_file().aget()
        except CatalogError as exc:
            raise self._invalid_catalog(exc) from None

    async def inventory(self) -> Inventory:
        """The hub's shared inventory, listed at least once (or the sync timeout passed)."""
        if self._inventory is None:
            self._inventory = Inventory.shared(
                self.k8s_api_host or "in-cluster",
                lambda: Inventory.for_kubespawner(
                    watch_timeout=self.inventory_watch_timeout,
                    request_timeout=self.k8s_api_request_timeout,
                    log=self.log,
                ),
            )
        await self._inventory.wait_synced(self.inventory_sync_timeout)
        return self._inventory

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
        """Every profile's offer, from the inventory's current snapshot.

        Computed once per cluster change: forms rendered in between reuse them.
        """
        global _LAST_OFFERS
        catalog = await self.current_catalog()
        inventory = await self.inventory()
        snapshot = inventory.snapshot()
        tolerations = tuple(self.configured_tolerations())
        if _LAST_OFFERS is not None:
            seen, cached = _LAST_OFFERS
            if seen[0] is snapshot and seen[1] is catalog and seen[2] == tolerations:
                return cached
        offers = compute_offers(catalog, snapshot, tolerations=tolerations)
        _LAST_OFFERS = ((snapshot, catalog, tolerations), offers)
        return offers

    # -- the form -----------------------------------------------------------------------------

    async def _render_form(self, spawner: Any = None) -> str:
        offers = await self.offers()
        selected, notices = self._preselection(await self.current_catalog())
        view = build_form(offers, selected, notices)
        return render_form(view, make_environment(self.form_template_paths))

    def _query_options(self) -> dict[str, list[str]]:
        request = getattr(getattr(self, "handler", None), "request", None)
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
        orm = getattr(self, "orm_spawner", None)
        saved = (orm.user_options if orm is not None else None) or self.user_options or {}
        if saved:
            try:
                return parse_options(saved, catalog), []
            except OptionsError as exc:
                return None, [
                    f"Your last choice is no longer offered ({exc}); pick a server below."
                ]
        return None, []

    def _options_from_form(self, formdata: dict[str, Any]) -> dict[str, Any]:
        try:
            options = options_from_form(formdata, self.catalog())
        except OptionsError as exc:
            raise UserFacingError(400, str(exc)) from None
        self._options_from_request = True
        return options

    def options_from_query(self, query_data: dict[str, Any]) -> dict[str, Any]:
        """A spawn URL with query parameters: show the form preselected, or start (deep_links)."""
        if self.deep_links == "preselect":
            raise _ShowForm()
        return self._options_from_form(query_data)

    # -- applying the user's choice -------------------------------------------------------------

    def _request_carried_options(self) -> bool:
        """Whether the starting request gave options (else JupyterHub reuses saved ones).

        Raises:
            UserFacingError: 400 when a REST request's JSON body is not an object, or its
                ``user_options`` is neither an object nor null. (JupyterHub 5 passes such a
                body on as the options, and 6 reads a falsy one like ``null`` or ``[]`` as "no
                options"; either way the user would get the default profile without a word.)
        """
        if self._options_from_request:
            return True
        request = getattr(getattr(self, "handler", None), "request", None)
        if request is None or request.method != "POST" or not request.body:
            return False
        try:
            body = json.loads(request.body)
        except ValueError:
            return False  # not JSON: a form post (its fields came through options_from_form)
        if not isinstance(body, dict):
            orm = getattr(self, "orm_spawner", None)
            if orm is not None and not isinstance(orm.user_options, dict | None):
                orm.user_options = {}  # JupyterHub 5 saved the body as the options: drop it
            raise UserFacingError(
                400,
                "The request body must be a JSON object (the user options, or "
                f'{{"user_options": {{...}}}}), not {_json_kind(body)}',
            )
        if "user_options" in body:
            options = body["user_options"]
            if options is not None and not isinstance(options, dict):
                raise UserFacingError(
                    400, f"user_options must be a JSON object or null, not {_json_kind(options)}"
                )
            return options is not None
        return bool(set(body) - {"name", "display_name"})

    async def apply_catalog_options(self, user_options: Any) -> None:
        """Check the user's options, plan the placement and set this start's pod settings.

        Raises:
            UserFacingError: 400 for bad options (naming the field), 409 when no node can take
                the server now (with what to try instead).
        """
        catalog = await self.current_catalog()
        given = self._request_carried_options()
        self._options_from_request = False
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
            raise UserFacingError(UNAVAILABLE, self._shortage_text(offers, chosen))
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

    def _shortage_text(
        self, offers: tuple[Offer, ...], chosen: Plan, scheduler_says: str | None = None
    ) -> str:
        offer = next(o for o in offers if o.slug == chosen.offer.slug)
        # about the chosen image, or about the whole profile when the user left it to us
        image = chosen.image.name if self._image_chosen else None
        text = shortage(offer, chosen.count, image=image)
        room = offer.image(image).max_free if image else offer.max_free
        if scheduler_says and room >= chosen.count:
            # the inventory has not seen what the scheduler saw yet
            text = f"No {offer.model_text} {offer.unit} is free for this server ({scheduler_says})"
        others = [
            c
            for c in offer.images
            if image and c.image.name != image and c.max_free >= chosen.count
        ]
        if others:  # the profile has room, with another of its images
            hint = "try " + " or ".join(
                f"the image {c.image.label} ({c.free} free)" for c in others[:2]
            )
        else:
            hint = alternatives(offers, exclude=offer.slug)
        return f"{text}; {hint}"

    async def load_user_options(self) -> None:
        """KubeSpawner calls this first in ``_start``; the hook normally did the work already."""
        if self._plan is None:
            await self.apply_catalog_options(self.user_options)

    def clear_state(self) -> None:
        """Forget the last start's plan (JupyterHub calls this before each start and after stop)."""
        super().clear_state()
        self._plan = None

    # -- starting -----------------------------------------------------------------------------

    async def _start(self) -> Any:
        start = asyncio.ensure_future(super()._start())
        if not self.fail_fast:
            return await start
        watcher = asyncio.ensure_future(self._watch_for_gpu_shortage())
        try:
            await asyncio.wait({start, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if start.done():
                return start.result()
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await start
            with contextlib.suppress(Exception):
                await self.stop(now=True)
            return watcher.result()  # raises the shortage
        finally:
            watcher.cancel()
            if not start.done():
                start.cancel()

    async def _watch_for_gpu_shortage(self) -> None:
        """Raise once the pod was unschedulable for lack of GPUs for ``unschedulable_grace``."""
        loop = asyncio.get_running_loop()
        since: float | None = None
        while True:
            await asyncio.sleep(0.25)
            chosen = self._plan
            reflector = self.pod_reflector
            if chosen is None or chosen.resource is None or reflector is None:
                continue
            pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}")
            message = unschedulable_for_gpus(pod)
            if message is None:
                since = None
                continue
            since = since if since is not None else loop.time()
            if loop.time() - since >= self.unschedulable_grace:
                offers = await self.offers()
                text = self._shortage_text(offers, chosen, scheduler_says=message)
                self.log.warning("gpu-devbox: %s: %s", self._log_name, text)
                raise UserFacingError(UNAVAILABLE, text)

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
