"""The model catalogue: what each model accepts, read from Rivya or built in, and the checks.

:data:`CATALOG` is the built-in description of the documented models; the clients check inputs
against Rivya's live ``/models`` (shared by the machine's processes) and fall back to it.
"""

from rivya_provider.client.catalog.checks import (
    file_limit,
    pydantic_problems,
    validate_generation,
)
from rivya_provider.client.catalog.live import clear_catalog_cache, spec_from_info
from rivya_provider.client.catalog.specs import (
    CATALOG,
    DEFAULT_FILE_LIMITS,
    REFERENCE_ITEMS_PARAM,
    FileLimit,
    ListedCatalog,
    ModelSpec,
    ParamSpec,
)
from rivya_provider.client.catalog.wire import ModelInfo, ModelList, ModelParam

__all__ = [
    "CATALOG",
    "DEFAULT_FILE_LIMITS",
    "REFERENCE_ITEMS_PARAM",
    "FileLimit",
    "ListedCatalog",
    "ModelInfo",
    "ModelList",
    "ModelParam",
    "ModelSpec",
    "ParamSpec",
    "clear_catalog_cache",
    "file_limit",
    "pydantic_problems",
    "spec_from_info",
    "validate_generation",
]
