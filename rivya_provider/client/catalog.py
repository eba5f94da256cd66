"""The documented Rivya models and the local checks made before anything is sent.

Known models are validated here so bad input costs no request and no credit. A model id that is not
in :data:`CATALOG` is sent as-is: Rivya adds models without notice and validates them itself.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from rivya_provider.client.errors import FieldProblem, RequestValidationError
from rivya_provider.client.models import FileKind, GenerationRequest, ModelInfo, ReferenceMediaItem

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
    type: Literal["select", "number", "text"]
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
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__} {value!r}")
        return value

    def _select(self, value: Any) -> str:
        # The docs send the boolean options as the strings "true"/"false"; accept Python bools too.
        if isinstance(value, bool) and set(self.options) == {"true", "false"}:
            value = "true" if value else "false"
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
            raise ValueError(f"{value!r} is out of range; allowed: {self.min:g} to {self.max:g}")
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
    """A documented model: credits, prompt limit, params and reference-file rules."""

    id: str
    display_name: str
    base_credits: int
    max_prompt_length: int | None
    max_reference_images: int
    params: tuple[ParamSpec, ...]
    reference_kinds: tuple[FileKind, ...] = (FileKind.IMAGE,)
    file_limits: Mapping[FileKind, FileLimit] = field(
        default_factory=lambda: {FileKind.IMAGE: DEFAULT_FILE_LIMITS[FileKind.IMAGE]}
    )

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


def _prompt_problems(spec: ModelSpec, prompt: str | None) -> list[FieldProblem]:
    if prompt is None or not prompt.strip():
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
    if len(value) > spec.max_reference_images:
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
        if item.kind not in spec.reference_kinds:
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


def file_limit(kind: FileKind, *, model: str | None = None) -> FileLimit | None:
    """Return the Files API limit for ``kind``, narrowed by ``model`` when it is known.

    :returns: ``None`` when a known model does not accept this kind at all.
    """
    spec = CATALOG.get(model) if model else None
    if spec is None:
        return DEFAULT_FILE_LIMITS[kind]
    return spec.file_limits.get(kind)
