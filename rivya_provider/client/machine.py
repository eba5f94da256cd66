"""Small files the processes of one machine share, and taking turns on them with a lock.

Airflow runs each task in a process of its own, so what "every task of a worker" should share
(the model catalogue, the pace of requests) has to live outside any one process. The folder is
``$RIVYA_CACHE_DIR``, else ``$XDG_CACHE_HOME/rivya-provider``, else ``~/.cache/rivya-provider``;
``RIVYA_CACHE_DIR=`` (empty) turns sharing off, and so does a folder that cannot be written:
each process then keeps its state to itself, as before.

Files are named after the server (and account) they describe, so a test suite that starts an
emulator on a new port each run would leave a trail of them: the first process to use the folder
deletes the files nobody has written for :data:`STALE_AFTER_SECONDS` (lock files excepted, as
another process may hold one).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: nothing is shared
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Seconds between tries of a lock that is held.
_LOCK_POLL_SECONDS = 0.05
#: A shared file nobody wrote for this long (a week) is deleted.
STALE_AFTER_SECONDS = 7 * 24 * 3600.0
#: Names of the files this package shares (and their temporary copies): the only ones pruned,
#: whatever else a user's ``RIVYA_CACHE_DIR`` holds.
OWN_PREFIXES = ("models-", "durations-", "pace-", "throttle-", ".models-", ".durations-")
_pruned: set[Path] = set()


def folder() -> Path | None:
    """Return the folder shared files live in, or ``None`` when sharing is off."""
    configured = os.environ.get("RIVYA_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rivya-provider"


def shared_path(name: str) -> Path | None:
    """Return the path of the shared file ``name`` (its folder made), or ``None``."""
    where = folder()
    if where is None or fcntl is None:
        return None
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("Nothing is shared between processes: %s", exc)
        return None
    if where not in _pruned:
        _pruned.add(where)
        prune(where)
    return where / name


def keyed_path(kind: str, key: str, suffix: str = "") -> Path | None:
    """Return the shared file of ``kind`` for ``key`` (a base URL, ...), named by a digest only.

    :param kind: what the file holds (one of :data:`OWN_PREFIXES`, without its dash).
    :param key: what it is about; only a digest of it is in the name.
    :param suffix: the file name's ending (``.json``).
    """
    return shared_path(f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}{suffix}")


def read_own(path: Path, *, max_bytes: int) -> bytes | None:
    """Return a shared file's bytes; ``None`` when it is missing, not this user's or too large."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if os.fstat(handle).st_uid != os.getuid():
            return None
        raw = os.read(handle, max_bytes + 1)
    except OSError:
        return None
    finally:
        os.close(handle)
    return None if len(raw) > max_bytes else raw


def write_atomically(path: Path, text: str) -> None:
    """Replace a shared file's text at once: a reader sees the old file or the new one, whole.

    A failure is logged at debug level and otherwise ignored: sharing is best effort.
    """
    temporary = None
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        log.debug("Could not share %s: %s", path.name, exc)
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def prune(where: Path, *, now: float | None = None) -> None:
    """Delete this package's files in ``where`` nobody wrote for :data:`STALE_AFTER_SECONDS`."""
    oldest = (time.time() if now is None else now) - STALE_AFTER_SECONDS
    try:
        for entry in os.scandir(where):
            if not entry.name.startswith(OWN_PREFIXES) or entry.name.endswith(".lock"):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < oldest:
                    os.unlink(entry.path)
    except OSError as exc:
        log.debug("Could not tidy %s: %s", where, exc)


@contextlib.contextmanager
def locked(path: Path | None, *, wait: float | None = None) -> Iterator[int | None]:
    """Hold an exclusive lock on ``path``; yield its descriptor (read/write), or ``None``.

    :param wait: seconds to wait for another process's turn before going on without the lock
        (and yielding ``None``); ``None`` waits as long as it takes, for turns that only read
        and write a few bytes.
    """
    if path is None or fcntl is None:
        yield None
        return
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        log.debug("Not sharing %s: %s", path.name, exc)
        yield None
        return
    try:
        yield handle if _lock(handle, wait) else None
    finally:
        os.close(handle)  # also releases the lock


def _lock(handle: int, wait: float | None) -> bool:
    if wait is None:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return True
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_LOCK_POLL_SECONDS)
