"""Pydantic models of the Rivya Public API v1 wire format.

Requests forbid unknown fields so typos fail locally; responses ignore unknown fields because Rivya
adds optional response fields without a version bump.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic.alias_generators import to_camel

log = logging.getLogger("rivya_provider.client")

#: The longest ``client_request_id`` the Files API accepts (documented for uploads only).
CLIENT_REQUEST_ID_MAX = 128
#: The longest ``Idempotency-Key`` Rivya keeps.
IDEMPOTENCY_KEY_MAX = 255


# Every model builds its validator when first used, not when imported: the DAG processor imports
# the operators with every DAG file it parses and never reads an answer.
class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Answer(BaseModel):
    """An answer's model: fields Rivya adds later are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


class FileKind(str, Enum):
    """Kinds of reference media the Files API accepts."""

    def __str__(self) -> str:
        return self.value

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


class ReferenceMediaItem(_Request):
    """One entry of ``params.referenceMediaItems`` (camelCase on the wire)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        defer_build=True,
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


class RivyaFile(Answer):
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


class Credits(Answer):
    current_credits: Credit


class ErrorBody(Answer):
    code: str | None = None
    message: str = ""
    request_id: str | None = Field(
        default=None, validation_alias=AliasChoices("requestId", "request_id")
    )


class ErrorEnvelope(Answer):
    error: ErrorBody
