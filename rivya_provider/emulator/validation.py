"""Server-side checks of generation bodies and uploads, reusing the client's catalogue rules.

Every failure is a 400 ``validation_failed`` whose message names the field, the value and what is
allowed, like Rivya's.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from rivya_provider.client.catalog import (
    CATALOG,
    ModelSpec,
    pydantic_problems,
    validate_generation,
)
from rivya_provider.client.errors import RequestValidationError
from rivya_provider.client.models import (
    CLIENT_REQUEST_ID_MAX,
    IDEMPOTENCY_KEY_MAX,
    FileKind,
    GenerationRequest,
)
from rivya_provider.client.uploads import SIGNATURE_BYTES, detect_mime_type, upload_problems
from rivya_provider.emulator.errors import validation_failed

_BODY_KEYS = ("model", "prompt", "params", "client_request_id")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ParsedGeneration:
    """A valid generation body: as sent (for the fingerprint) and normalised."""

    body: dict[str, Any]
    request: GenerationRequest
    spec: ModelSpec


def check_idempotency_key(value: str | None) -> str | None:
    """Return the Idempotency-Key header, refusing an empty or over-long one."""
    if value is not None and not 0 < len(value) <= IDEMPOTENCY_KEY_MAX:
        raise validation_failed(
            f"Idempotency-Key: is {len(value)} characters; "
            f"allowed: 1 to {IDEMPOTENCY_KEY_MAX} characters"
        )
    return value


def parse_generation(raw: bytes) -> ParsedGeneration:
    """Parse and validate a ``POST /api/v1/generations`` body.

    :param raw: the request body.
    :raises ApiError: ``validation_failed`` naming the field.
    """
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise validation_failed(f"body: is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise validation_failed(f"body: must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(_BODY_KEYS))
    if unknown:
        raise validation_failed(
            f"{unknown[0]}: is not a known field; allowed: {', '.join(_BODY_KEYS)}"
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise validation_failed(f"model: is required and must be a non-empty string, got {model!r}")
    spec = CATALOG.get(model)
    if spec is None:
        raise validation_failed(f"model: {model!r} is not available; available: {_model_ids()}")
    trace_id = body.get("client_request_id")
    if isinstance(trace_id, str) and len(trace_id) > CLIENT_REQUEST_ID_MAX:
        raise validation_failed(
            f"client_request_id: is {len(trace_id)} characters; at most {CLIENT_REQUEST_ID_MAX}"
        )
    try:
        request = validate_generation(GenerationRequest.model_validate(body))
    except ValidationError as exc:
        problems = pydantic_problems("body", exc)
        raise validation_failed("; ".join(str(p) for p in problems)) from None
    except RequestValidationError as exc:
        raise validation_failed(str(exc)) from None
    return ParsedGeneration(body=body, request=request, spec=spec)


@dataclass(frozen=True)
class CheckedUpload:
    """A valid upload, read into memory."""

    kind: FileKind
    model: str | None
    name: str
    safe_name: str
    mime_type: str
    data: bytes
    duration_token: str | None


async def check_upload(form: FormData) -> CheckedUpload:
    """Validate a ``POST /api/v1/files`` form and read the file.

    The type comes from the file's signature, never from its name or the part's content type.

    :param form: the parsed multipart form.
    :raises ApiError: ``validation_failed`` naming the field.
    """
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise validation_failed("file: is required and must be a file part")
    kind = _text_field(form, "kind")
    if kind not in set(FileKind):
        allowed = ", ".join(str(k) for k in FileKind)
        given = "is required" if kind is None else f"{kind!r} is not a file kind"
        raise validation_failed(f"kind: {given}; allowed: {allowed}")
    model = _text_field(form, "model") or None
    if model is not None and model not in CATALOG:
        raise validation_failed(f"model: {model!r} is not available; available: {_model_ids()}")
    name = upload.filename or "upload"
    head = await upload.read(SIGNATURE_BYTES)
    # Starlette's parser counts the size, so an oversize file is refused without reading it.
    size = upload.size if upload.size is not None else len(head + await upload.read())
    problems = upload_problems(
        name=name,
        head=head,
        size=size,
        kind=kind,
        model=model,
        client_request_id=_text_field(form, "client_request_id"),
    )
    if problems:
        raise validation_failed("; ".join(str(p) for p in problems))
    await upload.seek(0)
    data = await upload.read()
    mime_type = detect_mime_type(head)
    assert mime_type is not None  # upload_problems() rejected unknown types
    file_kind = FileKind(kind)
    return CheckedUpload(
        kind=file_kind,
        model=model,
        name=name,
        safe_name=safe_file_name(name),
        mime_type=mime_type,
        data=data,
        duration_token=None if file_kind is FileKind.IMAGE else "dur_" + secrets.token_hex(16),
    )


def safe_file_name(name: str) -> str:
    """Return ``name`` reduced to URL- and filesystem-safe characters."""
    cleaned = _UNSAFE_NAME_CHARS.sub("_", re.split(r"[/\\]", name)[-1]).lstrip(".")[:100]
    return cleaned or "file"


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise validation_failed(f"{name}: must be a text field, not a file")
    return value


def _model_ids() -> str:
    return ", ".join(CATALOG)
