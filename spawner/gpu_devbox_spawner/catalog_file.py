"""The spawner's catalog: read from a file, re-read when the file changes, never lost.

An admin can edit the catalog while the hub runs: the next form or start reads the new
version. If the edit breaks it, the spawner keeps the last good catalog and logs the error
(file, line and field) instead of refusing every user.

Reading is bounded (:func:`~gpu_devbox.catalog.load_catalog` refuses a file that is not a
regular file, larger than 1 MiB or expanding to too many values) and, from the hub's coroutines,
done in a worker thread (:meth:`CatalogFile.aget`) so that the hub's event loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from gpu_devbox.catalog import Catalog, CatalogError, default_catalog, load_catalog

_log = logging.getLogger("gpu_devbox_spawner")


class CatalogFile:
    """A catalog file and its last good contents."""

    def __init__(
        self, path: str, log: logging.Logger | logging.LoggerAdapter[Any] | None = None
    ) -> None:
        """``path`` empty: the catalog gpu-devbox ships."""
        self.path = path
        self.log = log or _log
        self._stamp: tuple[float, int] | None = None
        self._catalog: Catalog | None = None

    def get(self) -> Catalog:
        """The current catalog, re-read here when the file changed.

        Raises:
            CatalogError: the file never held a valid catalog.
        """
        if not self.path:
            if self._catalog is None:
                self._catalog = default_catalog()
            return self._catalog
        stamp = self._current_stamp()
        if self._catalog is not None and stamp == self._stamp:
            return self._catalog
        try:
            catalog = load_catalog(self.path)
        except CatalogError as exc:
            return self._keep_previous(exc, stamp)
        return self._use(catalog, stamp)

    async def aget(self) -> Catalog:
        """The current catalog; a changed file is re-read in a worker thread, off the loop.

        Raises:
            CatalogError: the file never held a valid catalog.
        """
        if not self.path:
            return self.get()
        stamp = self._current_stamp()
        if self._catalog is not None and stamp == self._stamp:
            return self._catalog
        try:
            catalog = await asyncio.to_thread(load_catalog, self.path)
        except CatalogError as exc:
            return self._keep_previous(exc, stamp)
        return self._use(catalog, stamp)

    def _current_stamp(self) -> tuple[float, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime, info.st_size)

    def _keep_previous(self, exc: CatalogError, stamp: tuple[float, int] | None) -> Catalog:
        if self._catalog is None:
            raise exc
        self.log.error("gpu-devbox: keeping the previous catalog: %s", exc)
        self._stamp = stamp
        return self._catalog

    def _use(self, catalog: Catalog, stamp: tuple[float, int] | None) -> Catalog:
        if self._catalog is not None:
            self.log.info("gpu-devbox: catalog %s changed; using the new version", self.path)
        self._catalog, self._stamp = catalog, stamp
        return catalog
