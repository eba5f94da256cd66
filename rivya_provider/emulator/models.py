"""The emulator's own model catalogue, written from Rivya's model pages.

Deliberately independent of the client's catalogue: a fact misread on one side then shows up as a
disagreement in the tests instead of being wrong on both. Models can be added at run time; they are
validated and described exactly like the documented ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MB = 1024 * 1024
FILE_KINDS = ("image", "video", "audio")
Kind = Literal["image", "video", "audio"]


class MediaLimit(BaseModel):
    """What the Files API accepts for one kind of file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    max_bytes: int = Field(gt=0)
    mime_types: tuple[str, ...] = Field(min_length=1)


#: The Files API defaults (rivya-api.md section 5); a model may differ.
DEFAULT_LIMITS: dict[str, MediaLimit] = {
    "image": MediaLimit(
        kind="image", max_bytes=10 * MB, mime_types=("image/jpeg", "image/png", "image/webp")
    ),
    "video": MediaLimit(
        kind="video", max_bytes=50 * MB, mime_types=("video/mp4", "video/quicktime", "video/webm")
    ),
    "audio": MediaLimit(
        kind="audio",
        max_bytes=10 * MB,
        mime_types=(
            "audio/mpeg",
            "audio/mp4",
            "audio/wav",
            "audio/x-wav",
            "audio/aac",
            "audio/ogg",
        ),
    ),
}


class ReferenceMedia(BaseModel):
    """How many reference files a model takes, of which kinds, within which limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_files: int = Field(ge=1)
    kinds: tuple[Kind, ...] = ("image",)
    limits: tuple[MediaLimit, ...] = ()

    @model_validator(mode="after")
    def _limit_every_kind(self) -> ReferenceMedia:
        given = {limit.kind for limit in self.limits}
        missing = tuple(DEFAULT_LIMITS[k] for k in self.kinds if k not in given)
        if missing:
            object.__setattr__(self, "limits", self.limits + missing)
        return self

    def limit(self, kind: str) -> MediaLimit | None:
        """Return the limit for ``kind``, or ``None`` when the model does not take that kind."""
        if kind not in self.kinds:
            return None
        return next(limit for limit in self.limits if limit.kind == kind)


class ParamDef(BaseModel):
    """One model parameter as ``/models`` lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1)
    type: Literal["select", "number", "text"]
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    options: tuple[str, ...] | None = None

    @field_validator("options", mode="before")
    @classmethod
    def _option_values(cls, value: object) -> object:
        # Accept the object spelling too ({"value", "label"}), as a profile serves it.
        if isinstance(value, list | tuple):
            return [o.get("value") if isinstance(o, dict) else o for o in value]
        return value

    @model_validator(mode="after")
    def _select_has_options(self) -> ParamDef:
        if self.type == "select" and not self.options:
            raise ValueError(f"param {self.key!r}: a select needs options")
        return self

    def to_wire(self, *, option_objects: bool = False) -> dict[str, Any]:
        """Describe the param as ``/models`` does.

        :param option_objects: list options as ``{"value", "label"}`` objects.
        """
        entry: dict[str, Any] = {
            "key": self.key,
            "type": self.type,
            "required": self.required,
            "default": self.default,
        }
        if self.min is not None:
            entry["min"] = self.min
        if self.max is not None:
            entry["max"] = self.max
        if self.options is not None:
            entry["options"] = (
                [{"value": o, "label": o} for o in self.options]
                if option_objects
                else list(self.options)
            )
        return entry


class ModelDef(BaseModel):
    """A model: every field ``/models`` documents, plus the rules the emulator enforces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    display_name: str | None = None
    category: str = "image"
    runtime: str = "async_task"
    base_credits: int = Field(ge=0)
    billing_type: str = "FIXED"
    supported_modes: tuple[str, ...] | None = None
    max_prompt_length: int | None = Field(default=None, ge=1)
    reference_media: ReferenceMedia | None = None
    params: tuple[ParamDef, ...] = ()
    api_status: str = "available"
    api_input_status: str | None = None
    supported_api_inputs: tuple[str, ...] | None = None
    requires_files_api: bool = False
    requires_upload_for_modes: tuple[str, ...] | None = None
    url_input_supported: bool = False
    file_kinds: tuple[str, ...] | None = None
    chat_capabilities: dict[str, Any] | None = None
    notices: tuple[Any, ...] = ()

    @model_validator(mode="after")
    def _fill_derived(self) -> ModelDef:
        refs = self.reference_media
        derived = {
            "display_name": self.id,
            "supported_modes": ("text-to-image", "image-to-image") if refs else ("text-to-image",),
            "api_input_status": "partial_requires_files" if refs else "available",
            "supported_api_inputs": ("text", "file") if refs else ("text",),
            "requires_upload_for_modes": ("image-to-image",) if refs else (),
            "file_kinds": refs.kinds if refs else (),
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        keys = [p.key for p in self.params]
        if len(keys) != len(set(keys)):
            raise ValueError(f"model {self.id!r}: param keys repeat: {keys}")
        return self

    def param(self, key: str) -> ParamDef | None:
        return next((p for p in self.params if p.key == key), None)

    def to_wire(self, *, option_objects: bool = False) -> dict[str, Any]:
        """Describe the model as ``GET /api/v1/models`` does.

        :param option_objects: list param options as ``{"value", "label"}`` objects.
        """
        body = self.model_dump(mode="json", exclude={"params"})
        body["params"] = [p.to_wire(option_objects=option_objects) for p in self.params]
        return body


def _image_refs(max_files: int) -> ReferenceMedia:
    return ReferenceMedia(max_files=max_files, kinds=("image",), limits=(DEFAULT_LIMITS["image"],))


def _kontext(model_id: str, name: str, credits: int) -> ModelDef:
    return ModelDef(
        id=model_id,
        display_name=name,
        base_credits=credits,
        supported_modes=("text-to-image", "image-editing"),
        max_prompt_length=None,
        reference_media=_image_refs(1),
        api_input_status="partial_requires_files",
        supported_api_inputs=("text", "file"),
        requires_upload_for_modes=("image-editing",),
        params=(
            ParamDef(
                key="aspectRatio",
                type="select",
                default="16:9",
                options=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"),
            ),
            ParamDef(key="outputFormat", type="select", default="jpeg", options=("jpeg", "png")),
            ParamDef(
                key="enableTranslation", type="select", default="true", options=("true", "false")
            ),
            ParamDef(
                key="promptUpsampling", type="select", default="false", options=("false", "true")
            ),
            ParamDef(key="safetyTolerance", type="number", default=2, min=0, max=6),
            ParamDef(key="watermark", type="text", default=None),
        ),
    )


#: The three models documented on rivya.ai (model pages reviewed 2026-05-11).
DOCUMENTED_MODELS: tuple[ModelDef, ...] = (
    ModelDef(
        id="flux-2-flex",
        display_name="Flux 2 Flex",
        base_credits=14,
        supported_modes=("text-to-image", "image-to-image"),
        max_prompt_length=5000,
        reference_media=_image_refs(8),
        api_input_status="partial_requires_files",
        supported_api_inputs=("text", "file"),
        requires_upload_for_modes=("image-to-image",),
        params=(
            ParamDef(
                key="aspectRatio",
                type="select",
                default="1:1",
                options=("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"),
            ),
            ParamDef(key="resolution", type="select", default="1K", options=("1K", "2K")),
        ),
    ),
    _kontext("flux-kontext-pro", "Flux Kontext Pro", 4),
    _kontext("flux-kontext-max", "Flux Kontext Max", 8),
)


class Catalogue:
    """The models one emulator serves, by id; thread-safe, and extendable at run time."""

    def __init__(self, models: Iterable[ModelDef]) -> None:
        """Start with ``models`` (:meth:`reset` returns to them).

        :param models: the start models; a later one replaces an earlier one of the same id.
        """
        self._start = {m.id: m for m in models}
        self._lock = threading.Lock()
        self._models = dict(self._start)

    def get(self, model_id: str) -> ModelDef | None:
        with self._lock:
            return self._models.get(model_id)

    def all(self) -> list[ModelDef]:
        with self._lock:
            return list(self._models.values())

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def add(self, definition: ModelDef | dict[str, Any]) -> ModelDef:
        """Add a model, or redefine one with the same id; return it.

        :param definition: a :class:`ModelDef` or its fields.
        :raises pydantic.ValidationError: on a bad definition.
        """
        model = ModelDef.model_validate(definition)
        with self._lock:
            self._models[model.id] = model
        return model

    def reset(self) -> None:
        with self._lock:
            self._models = dict(self._start)
