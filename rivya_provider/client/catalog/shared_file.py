"""Rivya's model catalogue, shared by the processes of one machine through a small file.

Airflow runs each task in a process of its own, so a 200-way mapped refresh would otherwise read
``/models`` 200 times in the same minute, every read a request against the account's rate limit.
The first process that needs the catalogue reads it and writes Rivya's answer here; the processes
that need it meanwhile wait for that (a file lock, at most :data:`LOCK_WAIT_SECONDS`), then use the
copy until it expires. A read that failed is shared too, so the others check inputs against the
built-in catalogue instead of asking again at once.

The file lives in the machine's shared folder (:func:`~rivya_provider.client.machine.folder`). A
copy that is unreadable, not this user's, for another server, or expired is ignored. The catalogue
is public: nothing secret is written, and file names carry only a digest of the base URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rivya_provider.client import machine

log = logging.getLogger(__name__)

#: Seconds a process waits for another one's read of the catalogue before reading it itself.
LOCK_WAIT_SECONDS = 15.0
#: A shared copy is never kept longer than this, whatever its file says.
MAX_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class SharedAnswer:
    """One process's read of ``/models``: the body Rivya sent, or why there was none."""

    body: str | None
    error: str
    expires_in: float


#: A larger copy is not read.
MAX_COPY_BYTES = 4 * 1024 * 1024


def _paths(base_url: str) -> tuple[Path, Path] | None:
    copy = machine.keyed_path("models", base_url, ".json")
    return None if copy is None else (copy, copy.with_suffix(".lock"))


@contextlib.contextmanager
def turn(base_url: str, *, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold this machine's turn to read the catalogue of ``base_url`` (or give up waiting)."""
    paths = _paths(base_url)
    with machine.locked(None if paths is None else paths[1], wait=wait) as held:
        if held is None and paths is not None:
            log.info("Another process is still reading Rivya's model catalogue; reading it")
        yield


def read(base_url: str) -> SharedAnswer | None:
    """Return the unexpired answer another process shared for ``base_url``, if any."""
    paths = _paths(base_url)
    if paths is None:
        return None
    raw = machine.read_own(paths[0], max_bytes=MAX_COPY_BYTES)
    if raw is None:
        return None
    try:
        saved = json.loads(raw)
        expires_in = float(saved["expires_at"]) - time.time()
        body, error = saved["body"], str(saved["error"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if saved.get("base_url") != base_url or not isinstance(body, (str, type(None))):
        return None
    if expires_in <= 0:
        return None
    return SharedAnswer(body=body, error=error, expires_in=min(expires_in, MAX_TTL_SECONDS))


def write(base_url: str, *, body: str | None, error: str = "", ttl: float) -> None:
    """Share this process's answer for ``base_url`` for ``ttl`` seconds (atomically)."""
    paths = _paths(base_url)
    if paths is None:
        return
    saved = {"base_url": base_url, "expires_at": time.time() + ttl, "body": body, "error": error}
    machine.write_atomically(paths[0], json.dumps(saved))


def forget() -> None:
    """Delete every shared copy (the next process to need the catalogue reads it again)."""
    where = machine.folder()
    if where is None or not where.is_dir():
        return
    for copy in where.glob("models-*.json"):
        copy.unlink(missing_ok=True)
