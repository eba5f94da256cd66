"""What a model accepts: its params, prompt and reference-file rules, and the documented models.

:data:`CATALOG` describes the models documented on rivya.ai; the clients check requests against
Rivya's live catalogue (:mod:`~rivya_provider.client.catalog.live`) and fall back to this one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rivya_provider.client.catalog.wire import ModelInfo
from rivya_provider.client.models import FileKind

MB = 1024 * 1024
REFERENCE_ITEMS_PARAM = "referenceMediaItems"


@dataclass(frozen=True)
class FileLimit:
    """What the Files API accepts for one kind of file."""

    kind: FileKind
    max_bytes: int
    mime_types: tuple[str, ...]


#: The Files API defaults (a model may narrow them).
DEFAULT_FILE_LIMITS: Mapping[FileKind, FileLimit] = {
    FileKind.IMAGE: FileLimit(FileKind.IMAGE, 10 * MB, ("image/jpeg", "image/png", "image/webp")),
    FileKind.VIDEO: FileLimit(
        FileKind.VIDEO, 50 * MB, ("video/mp4", "video/quicktime", "video/webm")
    ),
    FileKind.AUDIO: FileLimit(
        FileKind.AUDIO,
        10 * MB,
        ("audio/mpeg", "audio/mp4", "audio/wav", "audio/x-wav", "audio/aac", "audio/ogg"),
    ),
}


@dataclass(frozen=True)
class ParamSpec:
    """One model parameter: its type, default and allowed values."""

    key: str
    #: ``any`` is a type this version does not know: its values are sent unchecked.
    type: Literal["select", "number", "text", "any"]
    default: Any = None
    options: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None

    def normalise(self, value: Any) -> Any:
        """Return the wire value for ``value`` or raise ``ValueError`` saying what is allowed."""
        if self.type == "select":
            return self._select(value)
        if self.type == "number":
            return self._number(value)
        if self.type == "any":
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__} {value!r}")
        return value

    def _select(self, value: Any) -> Any:
        # The docs send the boolean options as the strings "true"/"false"; accept Python bools too.
        if isinstance(value, bool) and set(self.options) == {"true", "false"}:
            value = "true" if value else "false"
        elif isinstance(value, int | float) and not isinstance(value, bool):
            # Templated or numeric values for options like "2" or "1.5".
            value = str(value) if str(value) in self.options else value
        if not self.options:
            return value
        if value not in self.options:
            raise ValueError(f"{value!r} is not allowed; allowed: {', '.join(self.options)}")
        return str(value)

    def _number(self, value: Any) -> int | float:
        number: float
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
        try:
            # Templated DAG values often arrive as strings such as "3".
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        if (self.min is not None and number < self.min) or (
            self.max is not None and number > self.max
        ):
            low = "" if self.min is None else f"{self.min:g}"
            high = "" if self.max is None else f"{self.max:g}"
            raise ValueError(f"{value!r} is out of range; allowed: {low} to {high}".strip())
        return int(number) if number.is_integer() else number

    def to_wire(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "key": self.key,
            "type": self.type,
            "required": False,
            "default": self.default,
        }
        if self.min is not None:
            entry["min"] = self.min
        if self.max is not None:
            entry["max"] = self.max
        if self.options:
            entry["options"] = list(self.options)
        return entry


@dataclass(frozen=True)
class ModelSpec:
    """A model's rules: credits, prompt limit, params and reference-file rules.

    ``strict_params`` says whether a param this spec does not list is refused (the live catalogue
    is Rivya's own word) or sent with a warning (the built-in catalogue may be out of date).
    ``None`` limits are unknown and not checked.
    """

    id: str
    display_name: str
    base_credits: int | float | None
    max_prompt_length: int | None
    max_reference_images: int | None
    params: tuple[ParamSpec, ...]
    reference_kinds: tuple[FileKind, ...] = (FileKind.IMAGE,)
    file_limits: Mapping[FileKind, FileLimit] = field(
        default_factory=lambda: {FileKind.IMAGE: DEFAULT_FILE_LIMITS[FileKind.IMAGE]}
    )
    prompt_required: bool = True
    strict_params: bool = False
    #: Seconds a generation is expected to take, where the live catalogue says.
    expected_seconds: float | None = None

    def param(self, key: str) -> ParamSpec | None:
        return next((p for p in self.params if p.key == key), None)

    def to_model_info(self) -> ModelInfo:
        """Describe the model as ``GET /api/v1/models`` does."""
        return ModelInfo.model_validate(
            {
                "id": self.id,
                "display_name": self.display_name,
                "category": "image",
                "base_credits": self.base_credits,
                "billing_type": "FIXED",
                "max_prompt_length": self.max_prompt_length,
                "params": [p.to_wire() for p in self.params],
                "api_status": "available",
                "supported_api_inputs": ["text", "file"],
                "requires_files_api": False,
                "file_kinds": [str(k) for k in self.reference_kinds],
            }
        )


_KONTEXT_PRO = ModelSpec(
    id="flux-kontext-pro",
    display_name="Flux Kontext Pro",
    base_credits=4,
    max_prompt_length=None,
    max_reference_images=1,
    params=(
        ParamSpec(
            "aspectRatio", "select", "16:9", options=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
        ),
        ParamSpec("outputFormat", "select", "jpeg", options=("jpeg", "png")),
        ParamSpec("enableTranslation", "select", "true", options=("true", "false")),
        ParamSpec("promptUpsampling", "select", "false", options=("false", "true")),
        ParamSpec("safetyTolerance", "number", 2, min=0, max=6),
        ParamSpec("watermark", "text"),
    ),
)

_FLUX_2_FLEX = ModelSpec(
    id="flux-2-flex",
    display_name="Flux 2 Flex",
    base_credits=14,
    max_prompt_length=5000,
    max_reference_images=8,
    params=(
        ParamSpec(
            "aspectRatio",
            "select",
            "1:1",
            options=("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"),
        ),
        ParamSpec("resolution", "select", "1K", options=("1K", "2K")),
    ),
)

#: The models documented on rivya.ai (reviewed 2026-05-11), by public id.
CATALOG: Mapping[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        _FLUX_2_FLEX,
        _KONTEXT_PRO,
        # Identical to Kontext Pro but for its price.
        replace(
            _KONTEXT_PRO, id="flux-kontext-max", display_name="Flux Kontext Max", base_credits=8
        ),
    )
}


class ListedCatalog(dict[str, ModelSpec]):
    """A catalogue read from Rivya's ``/models``: a model it does not list is one Rivya does not
    serve, so a request for it is refused locally. The built-in catalogue, which stands in when
    ``/models`` cannot be read, is not one: an unknown model then goes to Rivya to judge."""
