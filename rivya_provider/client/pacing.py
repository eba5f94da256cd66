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
from collections import deque
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
    account = _account(api_key)
    with _PACERS_LOCK:
        pacer = _PACERS.get((base_url, account, rate))
        if pacer is None:
            path = machine.keyed_path("pace", f"{base_url} {account}")
            pacer = Pacer(rate) if path is None else MachinePacer(rate, path)
            _PACERS[(base_url, account, rate)] = pacer
        return pacer


def _account(api_key: str) -> str:
    # Rivya limits per account: one pacer per key, known here only by a digest.
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class ThrottleGovernor:
    """Slows one process's requests to an account down after a 429, then speeds them up again.

    Hundreds of waits share a triggerer: when Rivya answers one of them 429, the others would meet
    the same limit a moment later, each earning its own 429. After a 429 the governor holds every
    request of the process until ``Retry-After`` has passed. When the process was sending more
    than one wait's few requests, it then lets them through at half the rate it was sending at,
    and raises that rate by 5 % per answer that is not a 429 until it no longer limits anything
    (additive-increase, multiplicative-decrease, as TCP and the AWS SDKs' adaptive retries do).
    """

    #: Seconds of sending history the process's rate is measured over.
    WINDOW = 5.0
    #: Fewer requests than this in the window are one wait's own: only Retry-After holds them.
    FEW = 4
    #: Never slower than this many requests per second.
    MIN_RATE = 0.5
    #: Faster than this, the governor stops limiting.
    FREE_RATE = 50.0

    def __init__(self) -> None:
        """Start without limiting anything."""
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._next = float("-inf")
        self.rate: float | None = None

    # Times come from the caller's clock (the client's), so that tests with a fake clock see
    # the same pauses a real process would.
    def reserve(self, *, now: float) -> float:
        """Take the next slot; return the seconds to wait before sending (0 when free).

        :param now: the caller's monotonic clock.
        """
        with self._lock:
            slot = max(now, self._next)
            if self.rate is not None:
                self._next = slot + 1.0 / self.rate
            self._sent.append(slot)
            while self._sent and self._sent[0] < now - self.WINDOW:
                self._sent.popleft()
            return slot - now

    def throttled(self, *, now: float, retry_after: float | None) -> None:
        """Note a 429: hold every request until ``retry_after`` and halve the sending rate.

        :param now: the caller's monotonic clock.
        :param retry_after: the answer's ``Retry-After`` in seconds, if any.
        """
        with self._lock:
            self._next = max(self._next, now + (retry_after or 0.0))
            sent = [when for when in self._sent if when <= now]
            if len(sent) < self.FEW:
                return  # one wait's own retries: its Retry-After is enough
            sending = (len(sent) - 1) / max(sent[-1] - sent[0], 1.0)
            current = sending if self.rate is None else min(self.rate, sending)
            self.rate = max(self.MIN_RATE, current / 2)

    def answered(self) -> None:
        """Note an answer that was not a 429: send a little faster."""
        with self._lock:
            if self.rate is not None:
                self.rate *= 1.05
                if self.rate > self.FREE_RATE:
                    self.rate = None


_GOVERNORS: dict[tuple[str, str], ThrottleGovernor] = {}


def shared_governor(*, base_url: str, api_key: str) -> ThrottleGovernor:
    """Return the process-wide throttle governor of this key and base URL."""
    with _PACERS_LOCK:
        return _GOVERNORS.setdefault((base_url, _account(api_key)), ThrottleGovernor())


def forget_shared_state() -> None:
    """Drop every shared pacer and governor (a fresh process's state; for tests)."""
    with _PACERS_LOCK:
        _PACERS.clear()
        _GOVERNORS.clear()
