"""The model catalogue as ``GET /api/v1/models`` describes it: every field but ``id`` optional.

Rivya documents the entries loosely (params, options and limits come in several shapes), so each
shape seen or plausible is read here into one form; unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator

from rivya_provider.client.models import Answer, Credit

#: Where a number param's bounds may be given: beside its other fields or in a nested object.
_BOUND_NAMES = {
    "min": ("min", "minimum", "min_value", "minValue"),
    "max": ("max", "maximum", "max_value", "maxValue"),
}
_BOUND_HOLDERS = ("range", "bounds", "limits")


def _bound(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _bounds(entry: dict[str, Any]) -> dict[str, float | None]:
    """Read ``min``/``max`` in every shape: ``{"min": 0}``, ``{"minimum": 0}``,
    ``{"range": {"min": 0, "max": 6}}``, ``{"range": [0, 6]}``... (the first one found wins)."""
    places: list[Any] = [entry, *(entry.get(holder) for holder in _BOUND_HOLDERS)]
    found: dict[str, float | None] = {"min": None, "max": None}
    for place in places:
        if isinstance(place, list | tuple) and len(place) == 2:
            place = {"min": place[0], "max": place[1]}
        if not isinstance(place, dict):
            continue
        for bound, names in _BOUND_NAMES.items():
            if found[bound] is None:
                found[bound] = next(
                    (n for n in (_bound(place.get(name)) for name in names) if n is not None), None
                )
    return found


class ModelParam(Answer):
    """One entry of a model's ``params`` in the catalogue; options may be plain or objects."""

    key: str
    type: str = "text"
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    options: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_bounds(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**data, **_bounds(data)}
        return data

    @field_validator("options", mode="before")
    @classmethod
    def _option_values(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_option_value(option) for option in value]


def _option_value(option: Any) -> str:
    """Read ``"16:9"``, ``{"value": "16:9", "label": ...}`` or ``true`` as the wire value."""
    if isinstance(option, dict):
        option = next((option[k] for k in ("value", "id", "key") if k in option), option)
    if isinstance(option, bool):
        return "true" if option else "false"
    return str(option)


class FileLimitInfo(Answer):
    """What a model accepts for one kind of reference file (``reference_media.limits``)."""

    kind: str
    max_bytes: int | None = Field(
        default=None, validation_alias=AliasChoices("max_bytes", "max_size_bytes", "maxBytes")
    )
    mime_types: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("mime_types", "mimeTypes")
    )


class ReferenceMedia(Answer):
    """A model's reference-media rules (``reference_media`` of ``GET /api/v1/models``)."""

    max_files: int | None = Field(
        default=None, validation_alias=AliasChoices("max_files", "maxFiles", "max_items")
    )
    kinds: list[str] = Field(default_factory=list)
    limits: list[FileLimitInfo] = Field(default_factory=list)

    @field_validator("limits", mode="before")
    @classmethod
    def _limits_by_kind(cls, value: Any) -> Any:
        # Accept {"image": {...}} as well as [{"kind": "image", ...}].
        if isinstance(value, dict):
            return [{"kind": kind, **(limit or {})} for kind, limit in value.items()]
        return value


#: Keys of a ``runtime`` object read as the expected generation time in seconds.
_RUNTIME_SECONDS_KEYS = (
    "expected_seconds",
    "expectedSeconds",
    "typical_seconds",
    "typicalSeconds",
    "avg_seconds",
    "average_seconds",
)


class ModelInfo(Answer):
    """One model of ``GET /api/v1/models``; every field but ``id`` is optional."""

    id: str
    display_name: str | None = None
    category: str | None = None
    #: How the model runs: a kind (``async_task``), or an object that may give its expected
    #: duration in seconds (see :attr:`expected_seconds`).
    runtime: str | dict[str, Any] | None = None
    base_credits: Credit | None = None
    billing_type: str | None = None
    supported_modes: list[str] = Field(default_factory=list)
    max_prompt_length: int | None = None
    reference_media: ReferenceMedia | None = None
    params: list[ModelParam] = Field(default_factory=list)
    api_status: str | None = None
    api_input_status: str | None = None
    supported_api_inputs: list[str] = Field(default_factory=list)
    requires_files_api: bool | None = None
    requires_upload_for_modes: list[str] = Field(default_factory=list)
    url_input_supported: bool | None = None
    file_kinds: list[str] = Field(default_factory=list)
    chat_capabilities: Any = None
    notices: list[Any] = Field(default_factory=list)

    @property
    def expected_seconds(self) -> float | None:
        """Seconds a generation of this model is expected to take, where ``runtime`` says."""
        if not isinstance(self.runtime, dict):
            return None
        for key in _RUNTIME_SECONDS_KEYS:
            value = self.runtime.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value)
        return None

    @field_validator(
        "supported_modes",
        "params",
        "supported_api_inputs",
        "requires_upload_for_modes",
        "file_kinds",
        "notices",
        mode="before",
    )
    @classmethod
    def _no_null_lists(cls, value: Any) -> Any:
        return [] if value is None else value


class ModelList(Answer):
    object: str = "list"
    data: list[ModelInfo]
