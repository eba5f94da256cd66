"""Pydantic models of the Rivya Public API v1 wire format.

Requests forbid unknown fields so typos fail locally; responses ignore unknown fields because Rivya
adds optional response fields without a version bump.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr
from pydantic.alias_generators import to_camel

#: The longest ``client_request_id`` Rivya accepts.
CLIENT_REQUEST_ID_MAX = 128
#: The longest ``Idempotency-Key`` Rivya keeps.
IDEMPOTENCY_KEY_MAX = 255


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FileKind(str, Enum):
    """Kinds of reference media the Files API accepts."""

    def __str__(self) -> str:
        return self.value

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


class TaskStatus(str, Enum):
    """Lifecycle of a generation task; only ``succeeded`` and ``failed`` are terminal."""

    def __str__(self) -> str:
        return self.value

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


class ReferenceMediaItem(_Request):
    """One entry of ``params.referenceMediaItems`` (camelCase on the wire)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    url: str = Field(min_length=1)
    kind: FileKind
    name: str | None = None
    mime_type: str | None = None
    duration_seconds: float | None = Field(default=None, ge=0)
    duration_token: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class GenerationRequest(_Request):
    """Body of ``POST /api/v1/generations``."""

    model: str = Field(min_length=1)
    prompt: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    client_request_id: str | None = Field(default=None, max_length=CLIENT_REQUEST_ID_MAX)

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.prompt is not None:
            body["prompt"] = self.prompt
        if self.params:
            body["params"] = self.params
        if self.client_request_id is not None:
            body["client_request_id"] = self.client_request_id
        return body


class TaskResult(_Response):
    primary_url: str
    urls: list[str] = Field(default_factory=list)


class TaskError(_Response):
    code: str
    message: str = ""


class GenerationTask(_Response):
    """A generation task as returned by create and get."""

    id: str
    status: TaskStatus
    model: str
    reserved_credits: int = 0
    final_credits: int = 0
    created_at: datetime
    updated_at: datetime
    result: TaskResult | None = None
    error: TaskError | None = None
    # Set from the create answer's ``Idempotent-Replayed`` header; not part of the body.
    _replayed: bool = PrivateAttr(default=False)

    @property
    def replayed(self) -> bool:
        """True when a create answered with an existing task for its Idempotency-Key."""
        return self._replayed

    def raise_for_failure(self) -> None:
        """Raise :class:`GenerationFailedError` (with Rivya's code and message) when failed."""
        if self.status is TaskStatus.FAILED:
            from rivya_provider.client.errors import GenerationFailedError

            raise GenerationFailedError(
                task_id=self.id,
                code=self.error.code if self.error else "generation_failed",
                message=self.error.message if self.error else "no reason given",
            )

    @property
    def result_urls(self) -> list[str]:
        """All result URLs, primary first, without duplicates."""
        if self.result is None:
            return []
        urls = [self.result.primary_url, *self.result.urls]
        return list(dict.fromkeys(urls))


class RivyaFile(_Response):
    """An uploaded reference file (schema ``PublicApiFile``)."""

    id: str = Field(validation_alias=AliasChoices("id", "file_id", "fileId"))
    object: str = "file"
    url: str
    kind: FileKind
    mime_type: str | None = Field(
        default=None, validation_alias=AliasChoices("mime_type", "mimeType")
    )
    size_bytes: int | None = Field(
        default=None, validation_alias=AliasChoices("size_bytes", "sizeBytes")
    )
    name: str | None = None
    model: str | None = None
    duration_token: str | None = Field(
        default=None, validation_alias=AliasChoices("duration_token", "durationToken")
    )
    created_at: datetime | None = None

    def as_reference(self) -> ReferenceMediaItem:
        """Return the item to put in ``params.referenceMediaItems``."""
        return ReferenceMediaItem(
            url=self.url,
            kind=self.kind,
            name=self.name,
            mime_type=self.mime_type,
            duration_token=self.duration_token,
        )


class Credits(_Response):
    current_credits: int


class ModelParam(_Response):
    """One entry of a model's ``params`` in the catalogue."""

    key: str
    type: str
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    options: list[str] | None = None


class ModelInfo(_Response):
    """One model of ``GET /api/v1/models``."""

    id: str
    display_name: str | None = None
    category: str | None = None
    base_credits: int | None = None
    billing_type: str | None = None
    max_prompt_length: int | None = None
    params: list[ModelParam] = Field(default_factory=list)
    api_status: str | None = None
    supported_api_inputs: list[str] = Field(default_factory=list)
    requires_files_api: bool | None = None
    file_kinds: list[str] = Field(default_factory=list)


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class ErrorBody(_Response):
    code: str
    message: str = ""
    request_id: str | None = Field(
        default=None, validation_alias=AliasChoices("requestId", "request_id")
    )


class ErrorEnvelope(_Response):
    error: ErrorBody
