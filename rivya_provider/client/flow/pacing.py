"""Client-side pacing: at most N API requests per second per Rivya key and base URL, per machine.

Every client built for the same key and base URL on one machine (the tasks of a worker, each in a
process of its own, and the triggers of a triggerer) takes its turn from one shared pacer, so a
wide mapped refresh spreads its requests out instead of meeting Rivya's rate limit all at once. The
pacer only says how long to wait: the sync client sleeps, the async one awaits, and neither holds a
lock meanwhile.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rivya_provider.client import machine


class Pacer:
    """Hands out request slots ``1 / rate`` seconds apart, to threads and event loops alike."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Start with a free slot now.

        :param rate: requests per second (must be positive).
        :param clock: monotonic seconds.
        """
        if rate <= 0:
            raise ValueError(f"requests_per_second must be positive, got {rate}")
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def reserve(self) -> float:
        """Take the next slot; return the seconds to wait before sending (0 when it is free)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + 1.0 / self.rate
            return slot - now


class MachinePacer:
    """A :class:`Pacer` whose slots every process of the machine takes turns on.

    Airflow runs each task in a process of its own: a pace kept in one process would let a
    200-way mapped refresh send 200 times the rate. The next free slot (wall-clock seconds) lives
    in a shared file; a turn locks it just long enough to read and move it on.
    """

    #: A next slot further ahead than this is a clock that jumped, not a queue: start afresh.
    MAX_AHEAD_SECONDS = 900.0

    def __init__(self, rate: float, path: Path) -> None:
        """:param rate: requests per second (must be positive). :param path: the shared file."""
        self._local = Pacer(rate)
        self.rate = rate
        self.path = path

    def reserve(self) -> float:
        """Take the machine's next slot; return the seconds to wait before sending."""
        with machine.locked(self.path) as handle:
            if handle is None:
                return self._local.reserve()
            now = time.time()
            saved = os.pread(handle, 8, 0)
            slot = struct.unpack("d", saved)[0] if len(saved) == 8 else now
            if not (math.isfinite(slot) and slot - now <= self.MAX_AHEAD_SECONDS):
                slot = now
            slot = max(now, slot)
            os.pwrite(handle, struct.pack("d", slot + 1.0 / self.rate), 0)
            return slot - now


_PACERS: dict[tuple[str, str, float], Pacer | MachinePacer] = {}
_PACERS_LOCK = threading.Lock()


def shared_pacer(*, base_url: str, api_key: str, rate: float | None) -> Pacer | MachinePacer | None:
    """Return the pacer of this key and base URL, shared by every process of the machine when it
    can be (else by this process's clients), or ``None`` when not paced."""
    if rate is None:
        return None
    account_id = account(api_key)
    with _PACERS_LOCK:
        pacer = _PACERS.get((base_url, account_id, rate))
        if pacer is None:
            path = machine.keyed_path("pace", f"{base_url} {account_id}")
            pacer = Pacer(rate) if path is None else MachinePacer(rate, path)
            _PACERS[(base_url, account_id, rate)] = pacer
        return pacer


def account(api_key: str) -> str:
    """The account of a key, as the shared state names it: a digest, never the key."""
    # Rivya limits per account: one pacer per key, known here only by a digest.
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def forget_pacers() -> None:
    """Drop every shared pacer (a fresh process's state; for tests)."""
    with _PACERS_LOCK:
        _PACERS.clear()
