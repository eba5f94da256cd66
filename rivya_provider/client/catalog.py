"""Model descriptions and the local checks made before anything is sent.

The clients check requests against Rivya's live catalogue (``GET /api/v1/models``, see
:mod:`rivya_provider.client.live_catalog`); :data:`CATALOG`, the documented models, is the offline
fallback. Bad input for a known model costs no request and no credit. A model id that no catalogue
knows is sent as-is: Rivya adds models without notice and validates them itself.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from rivya_provider.client.errors import FieldProblem, RequestValidationError
from rivya_provider.client.models import FileKind, GenerationRequest, ModelInfo, ReferenceMediaItem

log = logging.getLogger("rivya_provider.client")

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


def validate_generation(
    request: GenerationRequest, *, catalog: Mapping[str, ModelSpec] = CATALOG
) -> GenerationRequest:
    """Check a request against the catalogue and return it with params normalised for the wire.

    Every problem is reported at once. Unknown models pass through untouched.

    :param request: the generation request as the user gave it.
    :param catalog: the models to check against.
    :raises RequestValidationError: naming each bad field, its value and what is allowed.
    """
    spec = catalog.get(request.model)
    if spec is None:
        return request
    problems = _prompt_problems(spec, request.prompt)
    for key in _unlisted_params(spec, request.params):
        log.warning(
            "Param %r is not in the built-in description of %s; sending it for Rivya to judge",
            key,
            spec.id,
        )
    params: dict[str, Any] = {}
    for key, value in request.params.items():
        try:
            params[key] = _normalise_param(spec, key, value)
        except RequestValidationError as exc:  # a ValueError too: must come first
            problems.extend(exc.problems)
        except ValueError as exc:
            problems.append(FieldProblem(f"params.{key}", f"{exc} (model {spec.id})"))
    if problems:
        raise RequestValidationError(problems, subject=f"{spec.id} generation request")
    return request.model_copy(update={"params": params})


def _unlisted_params(spec: ModelSpec, params: Mapping[str, Any]) -> list[str]:
    """Params a lenient spec does not list (they are sent unchecked)."""
    if spec.strict_params:
        return []
    return [k for k in params if k != REFERENCE_ITEMS_PARAM and spec.param(k) is None]


def _prompt_problems(spec: ModelSpec, prompt: str | None) -> list[FieldProblem]:
    if prompt is None or not prompt.strip():
        if not spec.prompt_required:
            return []
        return [FieldProblem("prompt", f"is required for {spec.id} and must not be blank")]
    if spec.max_prompt_length is not None and len(prompt) > spec.max_prompt_length:
        return [
            FieldProblem(
                "prompt",
                f"is {len(prompt)} characters; {spec.id} allows at most {spec.max_prompt_length}",
            )
        ]
    return []


def _normalise_param(spec: ModelSpec, key: str, value: Any) -> Any:
    if key == REFERENCE_ITEMS_PARAM:
        return _reference_items(spec, value)
    param = spec.param(key)
    if param is None and not spec.strict_params:
        return value
    if param is None:
        known = [p.key for p in spec.params] + [REFERENCE_ITEMS_PARAM]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown param{hint}; known params: {', '.join(known)}")
    return param.normalise(value)


def _reference_items(spec: ModelSpec, value: Any) -> list[dict[str, Any]]:
    field_name = f"params.{REFERENCE_ITEMS_PARAM}"
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ValueError(f"expected a list of reference media items, got {type(value).__name__}")
    if spec.max_reference_images is not None and len(value) > spec.max_reference_images:
        raise ValueError(
            f"{len(value)} items given; {spec.id} accepts at most {spec.max_reference_images}"
        )
    problems: list[FieldProblem] = []
    items: list[dict[str, Any]] = []
    for index, raw in enumerate(value):
        where = f"{field_name}[{index}]"
        try:
            item = ReferenceMediaItem.model_validate(raw)
        except ValidationError as exc:
            problems.extend(pydantic_problems(where, exc))
            continue
        if spec.reference_kinds and item.kind not in spec.reference_kinds:
            allowed = ", ".join(str(k) for k in spec.reference_kinds)
            problems.append(
                FieldProblem(f"{where}.kind", f"{item.kind!s} is not accepted; allowed: {allowed}")
            )
        items.append(item.to_wire())
    if problems:
        raise RequestValidationError(problems)
    return items


def pydantic_problems(where: str, exc: ValidationError) -> list[FieldProblem]:
    problems = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"])
        location = f"{where}.{path}" if path else where
        problems.append(FieldProblem(location, f"{err['msg']} (got {err.get('input')!r})"))
    return problems


def file_limit(
    kind: FileKind, *, model: str | None = None, catalog: Mapping[str, ModelSpec] = CATALOG
) -> FileLimit | None:
    """Return the Files API limit for ``kind``, as ``model`` sets it when the catalogue knows it.

    :returns: ``None`` when a known model does not accept this kind at all.
    """
    spec = catalog.get(model) if model else None
    if spec is None:
        return DEFAULT_FILE_LIMITS[kind]
    return spec.file_limits.get(kind)
