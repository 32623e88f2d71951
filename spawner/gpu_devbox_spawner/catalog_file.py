"""The spawner's catalog: read from a file, re-read when the file changes, never lost.

An admin can edit the catalog while the hub runs: the next form or start reads the new
version. If the edit breaks it, the spawner keeps the last good catalog and logs the error
(file, line and field) instead of refusing every user.
"""

from __future__ import annotations

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
        """The current catalog.

        Raises:
            CatalogError: the file never held a valid catalog.
        """
        if not self.path:
            if self._catalog is None:
                self._catalog = default_catalog()
            return self._catalog
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime, stat.st_size)
        except OSError:
            stamp = None
        if self._catalog is not None and stamp == self._stamp:
            return self._catalog
        try:
            catalog = load_catalog(self.path)
        except CatalogError as exc:
            if self._catalog is None:
                raise
            self.log.error("gpu-devbox: keeping the previous catalog: %s", exc)
            self._stamp = stamp
            return self._catalog
        if self._catalog is not None:
            self.log.info("gpu-devbox: catalog %s changed; using the new version", self.path)
        self._catalog, self._stamp = catalog, stamp
        return catalog
