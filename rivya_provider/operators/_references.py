"""Reference files given as local paths or ObjectStoragePath URIs: check, hash, upload once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from airflow.providers.common.compat.sdk import ObjectStoragePath

from rivya_provider.client import (
    CATALOG,
    FieldProblem,
    FileKind,
    ModelSpec,
    RequestValidationError,
    RivyaClient,
    prepare_upload,
)
from rivya_provider.resume import TaskMemory

log = logging.getLogger(__name__)

_HASH_CHUNK = 1024 * 1024
FileSource = str | os.PathLike[str] | ObjectStoragePath


@dataclass(frozen=True)
class ReferenceFile:
    """A reference file that passed the local checks, known by its content hash."""

    source: str
    name: str
    kind: FileKind
    mime_type: str
    size_bytes: int
    sha256: str

    def placeholder(self) -> dict[str, Any]:
        """A stand-in media item, to validate counts and kinds before anything is uploaded."""
        return {"url": f"pending-upload:{self.sha256}", "kind": str(self.kind)}


def as_source_list(value: FileSource | Sequence[FileSource] | None) -> list[str]:
    """Accept one source, a list of them, or a JSON list (as a template renders it)."""
    if value is None or value == "":
        return []
    if isinstance(value, str) and value.lstrip().startswith("["):
        # Else a path that starts with "[" after all.
        with contextlib.suppress(ValueError, RecursionError):
            value = json.loads(value)
    if isinstance(value, str | os.PathLike | ObjectStoragePath):
        return [str(value)]
    return [str(item) for item in value]


@contextmanager
def _opened(source: str) -> Iterator[BinaryIO]:
    with ObjectStoragePath(source).open("rb") as handle:  # type: ignore[no-untyped-call]
        yield cast(BinaryIO, handle)


def inspect_files(
    sources: Sequence[str],
    *,
    model: str | None,
    kind: FileKind | str | None = None,
    catalog: Mapping[str, ModelSpec] = CATALOG,
) -> list[ReferenceFile]:
    """Check every file's real type and size, and hash it; nothing is uploaded.

    :param catalog: where ``model``'s file limits come from.

    :raises RequestValidationError: listing every file that cannot be uploaded, and why.
    """
    files: list[ReferenceFile] = []
    problems: list[FieldProblem] = []
    for index, source in enumerate(sources):
        where = f"reference_files[{index}]"
        try:
            with _opened(source) as handle:
                upload = prepare_upload(
                    handle, kind=kind, model=model, name=_name(source), catalog=catalog
                )
                digest = _sha256(handle)
        except RequestValidationError as exc:
            problems.extend(FieldProblem(f"{where} ({source})", p.message) for p in exc.problems)
            continue
        except OSError as exc:
            problems.append(FieldProblem(f"{where} ({source})", f"cannot be read: {exc}"))
            continue
        files.append(
            ReferenceFile(
                source=source,
                name=upload.name,
                kind=upload.kind,
                mime_type=upload.mime_type,
                size_bytes=upload.size_bytes,
                sha256=digest,
            )
        )
    if problems:
        raise RequestValidationError(problems, subject="reference files")
    return files


def _sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    while chunk := handle.read(_HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _name(source: str) -> str:
    return ObjectStoragePath(source).name or "reference"


def upload_files(
    client: RivyaClient,
    files: Sequence[ReferenceFile],
    *,
    model: str | None,
    memory: TaskMemory,
    kind: FileKind | str | None = None,
) -> list[dict[str, Any]]:
    """Upload each file once per task instance and return its reference media item (wire form).

    A file an earlier try uploaded (same content hash, recorded in ``task_state_store``) is not
    uploaded again: its URL is reused, so the generation request stays byte-identical.
    """
    earlier = memory.uploads()
    items = []
    for file in files:
        item = earlier.get(file.sha256)
        if item is None:
            with _opened(file.source) as handle:
                uploaded = client.upload_file(
                    handle, kind=kind or file.kind, model=model, name=file.name
                )
            item = uploaded.as_reference(kind=file.kind).to_wire()
            memory.remember_upload(file.sha256, item)
            log.info("Uploaded %s (%d bytes) as %s", file.source, file.size_bytes, uploaded.id)
        else:
            log.info("Reusing the upload of %s from an earlier try", file.source)
        items.append(item)
    return items
