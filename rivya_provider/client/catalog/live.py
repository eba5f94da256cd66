"""Rivya's live model catalogue (``GET /api/v1/models``) as the rules local checks apply.

New models, params, options and per-model file limits that Rivya lists work without a new release
of this package. The catalogue is read once per base URL by one process of the machine, shared
with the others (:mod:`~rivya_provider.client.catalog.shared_file`), and kept for
:data:`CATALOG_TTL_SECONDS`; when it cannot be read, the built-in :data:`CATALOG` stands in for a
shorter while, so a Rivya outage never blocks the checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from rivya_provider.client.catalog import shared_file
from rivya_provider.client.catalog.specs import (
    CATALOG,
    DEFAULT_FILE_LIMITS,
    FileLimit,
    ListedCatalog,
    ModelSpec,
    ParamSpec,
)
from rivya_provider.client.catalog.wire import ModelInfo, ModelParam, ReferenceMedia
from rivya_provider.client.models import FileKind

Catalog = Mapping[str, ModelSpec]

#: Seconds a catalogue read from Rivya is reused.
CATALOG_TTL_SECONDS = 300.0
#: Seconds the built-in catalogue stands in after the live one could not be read.
FALLBACK_TTL_SECONDS = 60.0

_NUMBER_TYPES = {"number", "integer", "int", "float", "slider", "range"}
_TEXT_TYPES = {"text", "string", "textarea"}
_SELECT_TYPES = {"select", "enum", "radio", "dropdown"}
_BOOLEAN_TYPES = {"boolean", "bool", "toggle", "switch", "checkbox"}


def param_spec(param: ModelParam) -> ParamSpec:
    """Turn one ``params`` entry of ``/models`` into the rule that checks its values."""
    kind = param.type.strip().lower()
    options = tuple(param.options or ())
    if kind in _BOOLEAN_TYPES:
        return ParamSpec(param.key, "select", param.default, options=options or ("true", "false"))
    if kind in _SELECT_TYPES or (options and kind not in _NUMBER_TYPES):
        return ParamSpec(param.key, "select", param.default, options=options)
    if kind in _NUMBER_TYPES:
        return ParamSpec(param.key, "number", param.default, min=param.min, max=param.max)
    if kind in _TEXT_TYPES:
        return ParamSpec(param.key, "text", param.default)
    return ParamSpec(param.key, "any", param.default)


def _file_kinds(names: list[str]) -> tuple[FileKind, ...]:
    known = {str(kind) for kind in FileKind}
    return tuple(FileKind(name) for name in dict.fromkeys(names) if name in known)


def _file_limits(
    media: ReferenceMedia | None, kinds: tuple[FileKind, ...]
) -> dict[FileKind, FileLimit]:
    limits: dict[FileKind, FileLimit] = {kind: DEFAULT_FILE_LIMITS[kind] for kind in kinds}
    for entry in media.limits if media else []:
        if entry.kind not in {str(kind) for kind in FileKind}:
            continue
        kind = FileKind(entry.kind)
        default = DEFAULT_FILE_LIMITS[kind]
        limits[kind] = FileLimit(
            kind,
            entry.max_bytes if entry.max_bytes is not None else default.max_bytes,
            tuple(entry.mime_types) or default.mime_types,
        )
    return limits


def spec_from_info(info: ModelInfo) -> ModelSpec:
    """Describe a model of the live catalogue with the rules local checks apply.

    Params it does not list are refused (the catalogue is Rivya's word); limits it does not state
    are not checked, except that a documented model keeps its documented prompt rule.
    """
    media = info.reference_media
    documented = CATALOG.get(info.id)
    kinds = _file_kinds((media.kinds if media else []) or info.file_kinds)
    limits = _file_limits(media, kinds)
    if not limits and documented is not None:
        # Rivya said nothing about references: the documented rules still hold.
        limits = dict(documented.file_limits)
    reference_kinds = tuple(dict.fromkeys([*kinds, *limits]))
    return ModelSpec(
        id=info.id,
        display_name=info.display_name or info.id,
        base_credits=info.base_credits,
        max_prompt_length=info.max_prompt_length,
        max_reference_images=media.max_files if media else None,
        params=tuple(param_spec(p) for p in info.params),
        reference_kinds=reference_kinds,
        # No word on files at all: leave them to the Files API defaults and to Rivya.
        file_limits=limits or dict(DEFAULT_FILE_LIMITS),
        prompt_required=documented.prompt_required if documented else False,
        strict_params=True,
        expected_seconds=info.expected_seconds,
    )


def catalog_from_models(models: list[ModelInfo]) -> ListedCatalog:
    """Build the catalogue: Rivya's models, and the documented ones it does not list."""
    return ListedCatalog({**CATALOG, **{info.id: spec_from_info(info) for info in models}})


class _CatalogCache:
    """Catalogues per base URL, each with the monotonic time it expires."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Catalog]] = {}

    def get(self, base_url: str) -> Catalog | None:
        with self._lock:
            entry = self._entries.get(base_url)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def put(self, base_url: str, catalog: Catalog, *, ttl: float) -> Catalog:
        with self._lock:
            self._entries[base_url] = (self._clock() + ttl, catalog)
        return catalog

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = _CatalogCache()


def clear_catalog_cache() -> None:
    """Forget every catalogue read so far, by this process or shared by another one (the next
    check reads ``/models`` again)."""
    CACHE.clear()
    shared_file.forget()
