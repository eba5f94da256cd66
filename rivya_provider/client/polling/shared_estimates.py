"""Expected generation times, shared by the processes of one machine through a small file.

Airflow runs each task in a process of its own, so a worker's task never sees a duration it did
not measure itself: every mapped generation would start out knowing nothing about its model and
poll at a guess, while the triggerer next to it has watched hundreds of them finish. Each process
folds the durations it sees into one file per base URL, and a process that knows nothing of a
model reads the machine's estimate from it.

The file lives in the machine's shared folder (:func:`~rivya_provider.client.machine.folder`),
named by a digest of the base URL; it holds only model ids, seconds and Unix times. A file that is
unreadable, not this user's or too large is ignored, and so is an estimate older than
:data:`MAX_AGE_SECONDS`. Sharing is best effort: a process never waits for another one's turn on
the file (the triggerer calls this from its event loop), it keeps its own estimate instead.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from rivya_provider.client import machine
from rivya_provider.client.averages import moving_average

#: An estimate nobody refreshed for this long (a week) is not used: the model may have changed.
MAX_AGE_SECONDS = 7 * 24 * 3600.0
#: At most this many models are kept per base URL (the least recently seen are dropped): model
#: ids come from the server's answers, and the file must stay small whatever it sends.
MAX_MODELS = 64
#: A larger file is not read.
MAX_FILE_BYTES = 64 * 1024
#: A longer model id is not shared (Rivya's are a few dozen characters).
MAX_MODEL_ID = 128


def _path(base_url: str) -> Path | None:
    return machine.keyed_path("durations", base_url, ".json")


def _entries(raw: bytes | None, *, now: float) -> dict[str, tuple[float, float]]:
    """The file's valid, unexpired estimates: model id -> (seconds, when last seen)."""
    try:
        saved = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than json can parse
        return {}
    found: dict[str, tuple[float, float]] = {}
    for model, entry in saved.items() if isinstance(saved, dict) else ():
        try:
            seconds, seen = float(entry[0]), float(entry[1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if math.isfinite(seconds) and seconds > 0 and 0 <= now - seen <= MAX_AGE_SECONDS:
            found[str(model)] = (seconds, seen)
    return found


def read(base_url: str) -> dict[str, float]:
    """Return the machine's estimates for ``base_url``: model id -> seconds (maybe empty)."""
    path = _path(base_url)
    if path is None:
        return {}
    raw = machine.read_own(path, max_bytes=MAX_FILE_BYTES)
    return {model: seconds for model, (seconds, _) in _entries(raw, now=time.time()).items()}


def fold(base_url: str, *, model: str, seconds: float, weight: float) -> float | None:
    """Fold one observed duration into the machine's estimate of ``model``; return the result.

    :returns: the machine's new estimate, or ``None`` when the file was busy or could not be
        used (the caller keeps its own).
    """
    path = None if len(model) > MAX_MODEL_ID else _path(base_url)
    lock = None if path is None else path.with_suffix(".lock")
    with machine.locked(lock, wait=0.0) as held:
        if held is None or path is None:
            return None
        now = time.time()
        entries = _entries(machine.read_own(path, max_bytes=MAX_FILE_BYTES), now=now)
        mean = entries[model][0] if model in entries else None
        estimate = moving_average(mean, seconds, weight)
        entries[model] = (estimate, now)
        kept = sorted(entries.items(), key=lambda item: item[1][1])[-MAX_MODELS:]
        machine.write_atomically(path, json.dumps({name: list(entry) for name, entry in kept}))
        return estimate
