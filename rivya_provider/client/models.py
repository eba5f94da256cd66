"""Pydantic models of the Rivya Public API v1 wire format.

Requests forbid unknown fields so typos fail locally; responses ignore unknown fields because Rivya
adds optional response fields without a version bump.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

#: The longest ``client_request_id`` the Files API accepts (documented for uploads only).
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

    @classmethod
    def from_reported(cls, reported: str) -> TaskStatus:
        """Map any status Rivya reports onto the four this package acts on.

        The documented four map to themselves; a cancel-like status (``canceled``, ``expired``...)
        ended the task without a result, so it counts as ``failed``; any other unknown status is
        taken as still running, until the wait's deadline.
        """
        value = reported.strip().lower()
        if value in _DOCUMENTED_STATUSES:
            return cls(value)
        if value in CANCEL_LIKE_STATUSES:
            return cls.FAILED
        return cls.PROCESSING


_DOCUMENTED_STATUSES = frozenset(str(s) for s in TaskStatus)
#: Undocumented statuses that end a task without a result; treated as ``failed``.
CANCEL_LIKE_STATUSES = frozenset(
    {
        "canceled",
        "cancelled",
        "expired",
        "aborted",
        "rejected",
        "timed_out",
        "timeout",
        "error",
        "errored",
        "terminated",
        "deleted",
    }
)


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
    # No length limit: the docs state 128 characters for uploads only; Rivya judges the rest.
    client_request_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.prompt is not None:
            body["prompt"] = self.prompt
        if self.params:
            body["params"] = self.params
        if self.client_request_id is not None:
            body["client_request_id"] = self.client_request_id
        return body


Credit = int | float

#: Results one generation may list; more is a broken or hostile answer (images give one to four).
MAX_RESULTS = 16
#: Longest result URL accepted (signed CDN URLs stay far below).
MAX_URL_LENGTH = 4096


class TaskResult(_Response):
    """Where a succeeded task's outputs are; ``primary_url`` defaults to the first of ``urls``."""

    primary_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    urls: list[Annotated[str, Field(max_length=MAX_URL_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_RESULTS
    )

    @field_validator("urls", mode="before")
    @classmethod
    def _no_null_urls(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _default_primary(self) -> TaskResult:
        if self.primary_url is None and self.urls:
            self.primary_url = self.urls[0]
        return self

    @property
    def all_urls(self) -> list[str]:
        """Every URL, primary first, without duplicates."""
        first = [self.primary_url] if self.primary_url else []
        return list(dict.fromkeys([*first, *self.urls]))


class TaskError(_Response):
    code: str = "generation_failed"
    message: str = ""

    @field_validator("code", "message", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else str(value)


class GenerationTask(_Response):
    """A generation task as returned by create and get.

    Only ``id`` and ``status`` are required: the docs show shorter and longer shapes of the same
    task. ``status`` is one of the four documented values (see :meth:`TaskStatus.from_reported`);
    ``reported_status`` keeps what Rivya actually said.
    """

    id: str = Field(min_length=1)
    status: TaskStatus
    reported_status: str = ""
    model: str | None = None
    reserved_credits: Credit = 0
    final_credits: Credit = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    result: TaskResult | None = None
    error: TaskError | None = None
    # Set when a create answered with a task that already existed for its Idempotency-Key.
    _replayed: bool = PrivateAttr(default=False)

    @property
    def status_as_reported(self) -> str:
        """The status in Rivya's own words, as logs show it (``status`` when none was kept)."""
        return self.reported_status or str(self.status)

    @model_validator(mode="before")
    @classmethod
    def _read_status(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("status"), str):
            reported = data["status"]
            # A task dumped by this package keeps what Rivya first reported.
            data = {"reported_status": reported, **data}
            data["status"] = TaskStatus.from_reported(reported)
            if reported.strip().lower() in CANCEL_LIKE_STATUSES and not data.get("error"):
                data["error"] = {
                    "code": reported.strip().lower(),
                    "message": f"Rivya reported the generation as {reported!r}",
                }
        return data

    @field_validator("reserved_credits", "final_credits", mode="before")
    @classmethod
    def _no_null_credits(cls, value: Any) -> Any:
        return 0 if value is None else value

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
    def primary_url(self) -> str | None:
        """The main result URL, once the task succeeded."""
        return self.result.primary_url if self.result else None

    @property
    def result_urls(self) -> list[str]:
        """All result URLs, primary first, without duplicates."""
        return self.result.all_urls if self.result else []


class RivyaFile(_Response):
    """An uploaded reference file (schema ``PublicApiFile``)."""

    id: str | None = Field(default=None, validation_alias=AliasChoices("id", "file_id", "fileId"))
    object: str = "file"
    url: str = Field(min_length=1)
    kind: FileKind | None = None
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
    created_at: datetime | None = Field(
        default=None, validation_alias=AliasChoices("created_at", "createdAt")
    )

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        # A kind this version does not know is not worth failing an upload over.
        return value if value in set(FileKind) else None

    def as_reference(self, *, kind: FileKind | None = None) -> ReferenceMediaItem:
        """Return the item to put in ``params.referenceMediaItems``.

        :param kind: the kind asked for at upload, used when the answer does not repeat it.
        """
        return ReferenceMediaItem(
            url=self.url,
            kind=self.kind or kind or FileKind.IMAGE,
            name=self.name,
            mime_type=self.mime_type,
            duration_token=self.duration_token,
        )


class Credits(_Response):
    current_credits: Credit


class ModelParam(_Response):
    """One entry of a model's ``params`` in the catalogue; options may be plain or objects."""

    key: str
    type: str = "text"
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    options: list[str] | None = None

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


class FileLimitInfo(_Response):
    """What a model accepts for one kind of reference file (``reference_media.limits``)."""

    kind: str
    max_bytes: int | None = Field(
        default=None, validation_alias=AliasChoices("max_bytes", "max_size_bytes", "maxBytes")
    )
    mime_types: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("mime_types", "mimeTypes")
    )


class ReferenceMedia(_Response):
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


class ModelInfo(_Response):
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


class ModelList(_Response):
    object: str = "list"
    data: list[ModelInfo]


class ErrorBody(_Response):
    code: str | None = None
    message: str = ""
    request_id: str | None = Field(
        default=None, validation_alias=AliasChoices("requestId", "request_id")
    )


class ErrorEnvelope(_Response):
    error: ErrorBody
