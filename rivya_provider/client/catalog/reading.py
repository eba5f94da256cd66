"""Which catalogue a client checks inputs against: this process's, the machine's, or a fresh read.

Both clients ask :class:`CatalogReader` first and only read ``/models`` when it has nothing; what
they read (or why they could not) is kept here and shared with the machine's other processes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import ValidationError

from rivya_provider.client.catalog import live, shared_file
from rivya_provider.client.catalog.specs import CATALOG, ModelSpec
from rivya_provider.client.catalog.wire import ModelInfo, ModelList

log = logging.getLogger("rivya_provider.client")

Catalog = Mapping[str, ModelSpec]


class CatalogReader:
    """The catalogue of one base URL.

    :param base_url: the API base URL the catalogue describes.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def cached(self) -> Catalog | None:
        """Return this process's catalogue, else one another process of the machine shared."""
        cached = live.CACHE.get(self.base_url)
        if cached is not None:
            return cached
        shared = shared_file.read(self.base_url)
        if shared is None:
            return None
        if shared.body is None:
            return self._fallback(f"{shared.error}, in another process", shared.expires_in)
        try:
            models = ModelList.model_validate_json(shared.body).data
        except ValidationError:
            return None
        catalog = live.catalog_from_models(models)
        return live.CACHE.put(self.base_url, catalog, ttl=shared.expires_in)

    def keep(self, models: list[ModelInfo], *, body: str) -> Catalog:
        """Keep what ``/models`` answered (``body``, read into ``models``) and share it."""
        ttl = live.CATALOG_TTL_SECONDS
        shared_file.write(self.base_url, body=body, ttl=ttl)
        return live.CACHE.put(self.base_url, live.catalog_from_models(models), ttl=ttl)

    def keep_failure(self, why: str) -> Catalog:
        """Use the built-in catalogue for a while after ``/models`` could not be read."""
        ttl = live.FALLBACK_TTL_SECONDS
        shared_file.write(self.base_url, body=None, error=why, ttl=ttl)
        return self._fallback(why, ttl)

    def _fallback(self, why: str, ttl: float) -> Catalog:
        log.warning(
            "Could not read Rivya's model catalogue (%s); checking inputs against the "
            "built-in description of the documented models",
            why,
        )
        return live.CACHE.put(self.base_url, CATALOG, ttl=ttl)
