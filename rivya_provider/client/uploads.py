"""Reference-file uploads: check type and size locally, then stream the bytes.

The real MIME type comes from the file's signature (magic bytes), as Rivya checks it, so a file
whose extension lies is judged by its content. Wrong types and oversize files are rejected before
any request is made; the file is streamed, never read whole into memory.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import filetype

from rivya_provider.client.catalog import (
    CATALOG,
    DEFAULT_FILE_LIMITS,
    FileLimit,
    ModelSpec,
    file_limit,
)
from rivya_provider.client.errors import FieldProblem, RequestValidationError
from rivya_provider.client.models import CLIENT_REQUEST_ID_MAX, FileKind

#: Enough leading bytes for every signature the Files API accepts.
SIGNATURE_BYTES = 8192

UploadSource = str | os.PathLike[str] | bytes | BinaryIO


def detect_mime_type(head: bytes) -> str | None:
    """Return the MIME type a file's leading bytes prove, or ``None`` when unknown."""
    guess = filetype.guess(head)
    if guess is None:
        return None
    # A PNG with an animation chunk is still a PNG for the Files API.
    return "image/png" if guess.mime == "image/apng" else str(guess.mime)


def kind_of(mime_type: str, *, spec: ModelSpec | None = None) -> FileKind | None:
    """Infer the Files API ``kind`` from a MIME type the model (or the Files API) accepts."""
    limits: list[FileLimit] = [*(spec.file_limits.values() if spec else ())]
    limits += DEFAULT_FILE_LIMITS.values()
    for limit in limits:
        if mime_type in limit.mime_types:
            return limit.kind
    return None


@dataclass(frozen=True)
class PreparedUpload:
    """A checked upload, ready to be sent once or several times (each attempt re-reads it)."""

    source: str | os.PathLike[str] | BinaryIO
    name: str
    mime_type: str
    kind: FileKind
    size_bytes: int
    model: str | None
    client_request_id: str | None

    def form(self) -> dict[str, str]:
        fields = {"kind": str(self.kind)}
        if self.model:
            fields["model"] = self.model
        if self.client_request_id:
            fields["client_request_id"] = self.client_request_id
        return fields

    @contextmanager
    def stream(self) -> Iterator[BinaryIO]:
        """Yield the file positioned at its start; paths are opened and closed here."""
        if isinstance(self.source, str | os.PathLike):
            with open(self.source, "rb") as handle:
                yield handle
        else:
            yield self.source

    def multipart(self, handle: IO[bytes]) -> dict[str, Any]:
        return {"file": (self.name, handle, self.mime_type)}


def prepare_upload(
    source: UploadSource,
    *,
    kind: FileKind | str | None = None,
    model: str | None = None,
    name: str | None = None,
    client_request_id: str | None = None,
    catalog: Mapping[str, ModelSpec] = CATALOG,
) -> PreparedUpload:
    """Check an upload against the Files API limits without sending anything.

    :param source: a path, bytes, or a seekable binary file object (uploaded from its start).
    :param kind: ``image``, ``video`` or ``audio``; inferred from the content when omitted.
    :param model: when given, the model's own limits apply (and Rivya checks it accepts the kind).
    :param name: the file name Rivya records; defaults to the path's or file object's name.
    :param client_request_id: your trace id, at most 128 characters.
    :param catalog: where ``model``'s limits come from (the live catalogue, in the clients).
    :raises RequestValidationError: naming the field, the value and what is allowed.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    name = name or _name_of(source)
    with _opened(source) as handle:
        # httpx rewinds file objects to 0 for every attempt, so the whole file is what counts.
        handle.seek(0)
        head = handle.read(SIGNATURE_BYTES)
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
    problems = upload_problems(
        name=name,
        head=head,
        size=size,
        kind=kind,
        model=model,
        client_request_id=client_request_id,
        catalog=catalog,
    )
    if problems:
        raise RequestValidationError(problems, subject=f"upload of {name!r}")
    mime_type = detect_mime_type(head)
    assert mime_type is not None  # upload_problems() rejected unknown types
    spec = catalog.get(model) if model else None
    return PreparedUpload(
        source=source,
        name=name,
        mime_type=mime_type,
        kind=FileKind(kind) if kind else kind_of(mime_type, spec=spec) or FileKind.IMAGE,
        size_bytes=size,
        model=model,
        client_request_id=client_request_id,
    )


def upload_problems(
    *,
    name: str,
    head: bytes,
    size: int,
    kind: FileKind | str | None,
    model: str | None,
    client_request_id: str | None,
    catalog: Mapping[str, ModelSpec] = CATALOG,
) -> list[FieldProblem]:
    """List what the Files API would refuse in an upload.

    :param name: the file name, for messages.
    :param head: the file's first bytes (at least :data:`SIGNATURE_BYTES` when it is that long).
    :param size: the file's size in bytes.
    :param kind: the kind asked for, or ``None`` to infer it from the content.
    :param model: the model whose limits apply, if any.
    :param client_request_id: the caller's trace id, if any.
    :param catalog: where ``model``'s limits come from.
    """
    mime_type = detect_mime_type(head)
    spec = catalog.get(model) if model else None
    inferred = kind_of(mime_type, spec=spec) if mime_type else None
    if kind is not None and kind not in set(FileKind):
        allowed = ", ".join(str(k) for k in FileKind)
        return [FieldProblem("kind", f"{kind!r} is not a file kind; allowed: {allowed}")]
    wanted = FileKind(kind) if kind else inferred
    if wanted is None:
        allowed = ", ".join(t for limit in DEFAULT_FILE_LIMITS.values() for t in limit.mime_types)
        seen = mime_type or "an unknown type"
        return [FieldProblem("file", f"{name!r} is {seen} by its content; allowed: {allowed}")]
    limit = file_limit(wanted, model=model, catalog=catalog)
    if limit is None:
        return [FieldProblem("kind", f"model {model} does not accept {wanted} files")]
    problems = []
    if mime_type not in limit.mime_types:
        seen = mime_type or "an unknown type"
        allowed = ", ".join(limit.mime_types)
        problems.append(
            FieldProblem("file", f"{name!r} is {seen} by its content; {wanted} allows {allowed}")
        )
    if size == 0:
        problems.append(FieldProblem("file", f"{name!r} is empty"))
    elif size > limit.max_bytes:
        problems.append(
            FieldProblem(
                "file",
                f"{name!r} is {size} bytes; {wanted} files may be at most {limit.max_bytes} bytes",
            )
        )
    if client_request_id is not None and len(client_request_id) > CLIENT_REQUEST_ID_MAX:
        problems.append(
            FieldProblem(
                "client_request_id",
                f"is {len(client_request_id)} characters; at most {CLIENT_REQUEST_ID_MAX}",
            )
        )
    return problems


def _name_of(source: str | os.PathLike[str] | BinaryIO) -> str:
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    raw = getattr(source, "name", None)
    return Path(raw).name if isinstance(raw, str) and raw else "upload"


@contextmanager
def _opened(source: str | os.PathLike[str] | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise RequestValidationError(
                [FieldProblem("file", f"{str(path)!r} is not a readable file")]
            )
        with path.open("rb") as handle:
            yield handle
        return
    if not (hasattr(source, "seekable") and source.seekable()):
        raise RequestValidationError(
            [FieldProblem("file", "the file object must be binary and seekable")]
        )
    yield source
