"""Server-side checks of ``POST /api/v1/files`` uploads, written from Rivya's Files API page.

The type comes from the file's signature (magic bytes), never from its name or the part's content
type. Limits are the model's when a model is named, else the Files API defaults.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import filetype
from starlette.datastructures import FormData, UploadFile

from rivya_provider.emulator.errors import validation_failed
from rivya_provider.emulator.models import DEFAULT_LIMITS, FILE_KINDS, Catalogue, MediaLimit
from rivya_provider.emulator.rules import CLIENT_REQUEST_ID_MAX

#: Enough leading bytes for every signature the Files API accepts.
SIGNATURE_BYTES = 8192
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
#: filetype's names for types the Files API lists under another name.
_SAME_TYPE = {"image/apng": "image/png", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav"}


@dataclass(frozen=True)
class CheckedUpload:
    """A valid upload, read into memory."""

    kind: str
    model: str | None
    name: str
    safe_name: str
    mime_type: str
    data: bytes
    duration_token: str | None


def sniff_mime_type(head: bytes) -> str | None:
    """Return the MIME type a file's leading bytes prove, or ``None`` when unknown."""
    guess = filetype.guess(head)
    if guess is None:
        return None
    return _SAME_TYPE.get(str(guess.mime), str(guess.mime))


async def check_upload(form: FormData, *, catalogue: Catalogue) -> CheckedUpload:
    """Validate a ``POST /api/v1/files`` form and read the file.

    :param form: the parsed multipart form.
    :param catalogue: the models served (for ``model`` and its limits).
    :raises ApiError: ``validation_failed`` naming the field.
    """
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise validation_failed("file: is required and must be a file part")
    kind = _text_field(form, "kind")
    if kind not in FILE_KINDS:
        given = "is required" if kind is None else f"{kind!r} is not a file kind"
        raise validation_failed(f"kind: {given}; allowed: {', '.join(FILE_KINDS)}")
    model = _text_field(form, "model") or None
    limit = _limit(catalogue, kind=kind, model=model)
    name = upload.filename or "upload"
    head = await upload.read(SIGNATURE_BYTES)
    # Starlette's parser counts the size, so an oversize file is refused without reading it.
    size = upload.size if upload.size is not None else len(head + await upload.read())
    mime_type = sniff_mime_type(head)
    problems = []
    if size == 0:
        problems.append(f"file: {name!r} is empty")
    elif mime_type not in limit.mime_types:
        seen = mime_type or "an unknown type"
        allowed = ", ".join(limit.mime_types)
        problems.append(f"file: {name!r} is {seen} by its content; {kind} allows {allowed}")
    if size > limit.max_bytes:
        problems.append(
            f"file: {name!r} is {size} bytes; {kind} files may be at most {limit.max_bytes} bytes"
        )
    trace_id = _text_field(form, "client_request_id")
    if trace_id is not None and len(trace_id) > CLIENT_REQUEST_ID_MAX:
        problems.append(
            f"client_request_id: is {len(trace_id)} characters; at most {CLIENT_REQUEST_ID_MAX}"
        )
    if problems or mime_type is None:
        raise validation_failed("; ".join(problems))
    await upload.seek(0)
    return CheckedUpload(
        kind=kind,
        model=model,
        name=name,
        safe_name=safe_file_name(name),
        mime_type=mime_type,
        data=await upload.read(),
        duration_token=None if kind == "image" else "dur_" + secrets.token_hex(16),
    )


def _limit(catalogue: Catalogue, *, kind: str, model: str | None) -> MediaLimit:
    if model is None:
        return DEFAULT_LIMITS[kind]
    spec = catalogue.get(model)
    if spec is None:
        available = ", ".join(catalogue.ids())
        raise validation_failed(f"model: {model!r} is not available; available: {available}")
    refs = spec.reference_media
    limit = refs.limit(kind) if refs is not None else None
    if limit is None:
        accepted = ", ".join(refs.kinds) if refs is not None else "no files"
        raise validation_failed(
            f"kind: model {model} does not accept {kind} files; it accepts: {accepted}"
        )
    return limit


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
