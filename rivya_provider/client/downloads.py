"""Where downloaded result bytes go: a temporary file renamed into place, or a caller's stream.

A path destination is written to a hidden ``.part`` file beside it and renamed only once complete,
so readers never see half an image and a failed download leaves nothing behind. The file gets the
mode any new file of the process gets (``0o666`` less the umask: ``0o644`` by default), so a web
server or another user's process can read the images a DAG produced.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rivya_provider.client.errors import DownloadTooLargeError

#: Default cap on one result download; images are far smaller.
DEFAULT_MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
CHUNK_BYTES = 64 * 1024

Destination = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True)
class DownloadedFile:
    """What a download produced."""

    path: str | None
    size_bytes: int
    content_type: str | None
    sha256: str


def _new_part_file(final: Path) -> tuple[int, Path]:
    """Create a new hidden ``.part`` file beside ``final``; return its descriptor and path.

    Not ``tempfile.mkstemp``: it makes files ``0o600`` whatever the umask.
    """
    while True:
        temp = final.parent / f".{final.name}.{secrets.token_hex(6)}.part"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue


class DownloadSink:
    """Receives one attempt's bytes, enforcing the size cap; commit or abort exactly once."""

    def __init__(self, destination: Destination, *, url: str, max_bytes: int) -> None:
        self._url = url
        self._max_bytes = max_bytes
        self._size = 0
        self._digest = hashlib.sha256()
        self._final: Path | None = None
        if isinstance(destination, str | os.PathLike):
            self._final = Path(destination)
            self._final.parent.mkdir(parents=True, exist_ok=True)
            self._temp: Path | None
            fd, self._temp = _new_part_file(self._final)
            self._out: BinaryIO = os.fdopen(fd, "wb")
        else:
            self._temp = None
            self._out = destination
            self._start = destination.tell()

    def expect(self, content_length: str | None) -> None:
        """Fail before reading when the server announces too many bytes."""
        if content_length and content_length.isdigit() and int(content_length) > self._max_bytes:
            raise DownloadTooLargeError(url=self._url, limit_bytes=self._max_bytes)

    def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise DownloadTooLargeError(url=self._url, limit_bytes=self._max_bytes)
        self._digest.update(chunk)
        self._out.write(chunk)

    def commit(self, content_type: str | None) -> DownloadedFile:
        if self._final is None:
            self._out.flush()
            return DownloadedFile(None, self._size, content_type, self._digest.hexdigest())
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        assert self._temp is not None
        os.replace(self._temp, self._final)
        return DownloadedFile(str(self._final), self._size, content_type, self._digest.hexdigest())

    def abort(self) -> None:
        """Forget this attempt: remove the temporary file, or rewind the caller's stream."""
        if self._temp is not None:
            self._out.close()
            self._temp.unlink(missing_ok=True)
            return
        self._out.seek(self._start)
        self._out.truncate()
