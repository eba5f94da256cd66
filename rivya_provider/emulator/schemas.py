"""Response and request schemas of the OpenAPI document, as the default profile answers.

Only documentation: the routes build their JSON by hand (so profiles can change shapes), and these
models describe the default shapes. Written from rivya-api.md, not taken from the client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rivya_provider.emulator.rules import CLIENT_REQUEST_ID_MAX


class GenerationBody(BaseModel):
    """Body of ``POST /api/v1/generations``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="public model id")
    prompt: str = Field(description="required by every documented model; limit per model")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="model-specific keys; reference media go in referenceMediaItems",
    )
    client_request_id: str | None = Field(default=None, max_length=CLIENT_REQUEST_ID_MAX)


class TaskResult(BaseModel):
    primary_url: str
    urls: list[str]


class TaskError(BaseModel):
    code: str
    message: str


class Task(BaseModel):
    """A generation task."""

    id: str
    status: Literal["queued", "processing", "succeeded", "failed"]
    model: str
    reserved_credits: int
    final_credits: int
    created_at: str
    updated_at: str
    result: TaskResult | None
    error: TaskError | None


class CreditBalance(BaseModel):
    current_credits: int


class PublicApiFile(BaseModel):
    """An uploaded reference file."""

    id: str
    object: Literal["file"]
    url: str
    kind: Literal["image", "video", "audio"]
    mime_type: str
    size_bytes: int
    name: str
    model: str | None
    duration_token: str | None = None
    created_at: str


class ModelParam(BaseModel):
    key: str
    type: str
    required: bool
    default: Any = None
    min: float | None = None
    max: float | None = None
    options: list[str] | None = None


class MediaLimitEntry(BaseModel):
    kind: str
    max_bytes: int
    mime_types: list[str]


class ReferenceMediaEntry(BaseModel):
    max_files: int
    kinds: list[str]
    limits: list[MediaLimitEntry]


class ModelEntry(BaseModel):
    """One model of the catalogue."""

    id: str
    display_name: str
    category: str
    runtime: str
    base_credits: int
    billing_type: str
    supported_modes: list[str]
    max_prompt_length: int | None
    reference_media: ReferenceMediaEntry | None
    params: list[ModelParam]
    api_status: str
    api_input_status: str
    supported_api_inputs: list[str]
    requires_files_api: bool
    requires_upload_for_modes: list[str]
    url_input_supported: bool
    file_kinds: list[str]
    chat_capabilities: dict[str, Any] | None
    notices: list[Any]


class ModelCatalogue(BaseModel):
    object: Literal["list"]
    data: list[ModelEntry]


class ErrorBody(BaseModel):
    code: str
    message: str
    requestId: str  # noqa: N815 - the documented field name


class ErrorEnvelope(BaseModel):
    error: ErrorBody
