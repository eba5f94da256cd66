"""The 429 governor: after one request meets Rivya's rate limit, the machine's others slow down.

The processes of one machine (a worker's tasks, each in a process of its own; a triggerer) share
one governor per account through a small file (:mod:`rivya_provider.client.machine`); machines
share nothing and each adapt on their own to the 429s they meet
(``tests/benchmarks/test_governor_convergence.py`` shows several sharing one limit).
"""

from __future__ import annotations

import math
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rivya_provider.client import machine
from rivya_provider.client.flow.pacing import MachinePacer, account


class ThrottleGovernor:
    """Slows one process's requests to an account down after a 429, then speeds them up again.

    Hundreds of waits share a triggerer: when Rivya answers one of them 429, the others would meet
    the same limit a moment later, each earning its own 429. After a 429 the governor holds every
    request until ``Retry-After`` has passed. When more than one wait's few requests were being
    sent (or the rate is limited already), it then lets them through at half the rate they were
    sent at, and raises that rate by :attr:`INCREASE` requests per second for every second
    without a 429, until it no longer limits anything: additive increase, multiplicative
    decrease, as TCP does. The halving makes a sender that sends much give up much and the equal
    increase lets one that sends little catch up, so senders sharing one limit settle near it in
    about equal shares, without knowing of each other. 429s that answer requests sent before the
    last slow-down took effect (during its hold) do not halve the rate again.
    """

    #: Seconds of sending history the rate is measured over.
    WINDOW = 5.0
    #: Fewer requests than this in the window are one wait's own: only Retry-After holds them.
    FEW = 4
    #: Never slower than this many requests per second.
    MIN_RATE = 0.5
    #: Requests per second the rate gains per second without a 429.
    INCREASE = 0.1
    #: Faster than this, the governor stops limiting.
    FREE_RATE = 50.0

    def __init__(self) -> None:
        """Start without limiting anything."""
        self._lock = threading.RLock()
        self._sent: deque[float] = deque()
        self._next = float("-inf")
        self._raised = float("-inf")
        self.rate: float | None = None

    # Times come from the caller's clock (the client's), so that tests with a fake clock see
    # the same pauses a real process would.
    def reserve(self, *, now: float) -> float:
        """Take the next slot; return the seconds to wait before sending (0 when free).

        :param now: the caller's monotonic clock.
        """
        with self._lock:
            return self._reserve(now)

    def throttled(self, *, now: float, retry_after: float | None) -> None:
        """Note a 429: hold every request until ``retry_after`` and halve the sending rate.

        :param now: the caller's monotonic clock.
        :param retry_after: the answer's ``Retry-After`` in seconds, if any.
        """
        with self._lock:
            self._throttled(now, retry_after)

    def answered(self, *, now: float) -> None:
        """Note an answer that was not a 429: raise the rate by the time gone since the last.

        :param now: the caller's monotonic clock.
        """
        with self._lock:
            self._answered(now)

    def _reserve(self, now: float) -> float:
        slot = max(now, self._next)
        if self.rate is not None:
            self._next = slot + 1.0 / self.rate
        self._note_sent(slot, now)
        return slot - now

    def _note_sent(self, slot: float, now: float) -> None:
        self._sent.append(slot)
        while self._sent and self._sent[0] < now - self.WINDOW:
            self._sent.popleft()

    def _throttled(self, now: float, retry_after: float | None) -> None:
        self._next = max(self._next, now + (retry_after or 0.0))
        if now < self._raised:
            return  # the last slow-down's hold is still on: this request was sent before it
        sent = [when for when in self._sent if when <= now]
        if len(sent) >= self.FEW:
            sending = (len(sent) - 1) / max(sent[-1] - sent[0], 1.0)
            self.rate = max(self.MIN_RATE, min(self.rate or sending, sending) / 2)
        elif self.rate is not None:
            self.rate = max(self.MIN_RATE, self.rate / 2)  # slowed down, and still too fast
        elif (first := self._first_rate(retry_after)) is not None:
            self.rate = first
        else:
            return  # one wait's own retries: its Retry-After is enough
        self._raised = self._next  # the rate grows again once the hold is over

    def _first_rate(self, retry_after: float | None) -> float | None:
        """The rate after a first 429 to requests too few to measure (``None``: no limit)."""
        return None

    def _answered(self, now: float) -> None:
        if self.rate is None or now <= self._raised:
            return
        self.rate += self.INCREASE * (now - self._raised)
        self._raised = now
        if self.rate > self.FREE_RATE:
            self.rate = None


class MachineGovernor(ThrottleGovernor):
    """A :class:`ThrottleGovernor` whose hold, rate and next slot every process of the machine
    shares, through a file of three numbers (wall-clock seconds).

    A worker runs each task in a process of its own, and each sends a request or two: alone, none
    of them sees enough to slow down. Shared, the first 429 any of them meets holds them all for
    its ``Retry-After`` and then paces the machine at one request per ``Retry-After`` (at least
    one per second) until the rate has climbed back, unless the process that met it measured a
    faster pace of its own to halve. Requests while nothing is limited read the file without
    taking its lock.
    """

    #: A next slot further ahead than this is a clock that jumped, not a queue: start afresh.
    MAX_AHEAD_SECONDS = MachinePacer.MAX_AHEAD_SECONDS
    _LAYOUT = struct.Struct("3d")

    def __init__(self, path: Path) -> None:
        """:param path: the shared file."""
        super().__init__()
        self.path = path
        # Kept open for the unlocked reads of every request (the lock opens the file anew).
        self._reader: int | None = None

    def reserve(self, *, now: float) -> float:
        """Take the machine's next slot; ``now`` is ignored (the file keeps wall-clock time)."""
        wall = time.time()
        with self._lock:
            if self._free(wall):
                self._note_sent(wall, wall)
                return 0.0
            with self._shared(wall):
                return self._reserve(wall)

    def throttled(self, *, now: float, retry_after: float | None) -> None:
        """Note a 429 for the whole machine; ``now`` is ignored (wall-clock time)."""
        wall = time.time()
        with self._lock, self._shared(wall):
            self._throttled(wall, retry_after)

    def answered(self, *, now: float) -> None:
        """Note an answer that was not a 429; ``now`` is ignored (wall-clock time)."""
        wall = time.time()
        with self._lock:
            if self._free(wall):
                return
            with self._shared(wall):
                self._answered(wall)

    def _first_rate(self, retry_after: float | None) -> float | None:
        return max(self.MIN_RATE, 1.0 / max(1.0, retry_after or 1.0))

    def _free(self, wall: float) -> bool:
        """Whether the shared file says nothing is limited (read without its lock)."""
        if self._reader is None:
            try:
                self._reader = os.open(self.path, os.O_RDONLY)
            except OSError:
                return self.rate is None and self._next <= wall
        try:
            saved = os.pread(self._reader, self._LAYOUT.size, 0)
        except OSError:
            return self.rate is None and self._next <= wall
        if len(saved) < self._LAYOUT.size:
            return True
        next_slot, rate, _ = self._LAYOUT.unpack(saved)
        return rate == 0.0 and not next_slot > wall

    @contextmanager
    def _shared(self, wall: float) -> Iterator[None]:
        """Load the machine's state, let the caller change it, and save it, under the lock."""
        with machine.locked(self.path) as handle:
            if handle is None:
                yield  # not shared: this process's own state
                return
            saved = os.pread(handle, self._LAYOUT.size, 0)
            if len(saved) == self._LAYOUT.size:
                next_slot, rate, raised = self._LAYOUT.unpack(saved)
                # -inf is "no slot yet"; NaN, a negative rate or a slot far ahead are not ours.
                sane = not math.isnan(raised) and math.isfinite(rate) and rate >= 0
                if (
                    sane
                    and not math.isnan(next_slot)
                    and next_slot - wall <= self.MAX_AHEAD_SECONDS
                ):
                    self._next, self._raised = next_slot, raised
                    self.rate = rate if rate > 0 else None
            yield
            state = (self._next, self.rate or 0.0, self._raised)
            os.pwrite(handle, self._LAYOUT.pack(*state), 0)


_GOVERNORS: dict[tuple[str, str, bool], ThrottleGovernor] = {}
_LOCK = threading.Lock()


def shared_governor(*, base_url: str, api_key: str, machine_wide: bool = True) -> ThrottleGovernor:
    """Return the governor of this key and base URL: the machine's when it can be shared (see
    :mod:`rivya_provider.client.machine`), else this process's.

    :param machine_wide: ``False`` keeps it in this process, on the caller's clock (the
        machine's runs on wall-clock time).
    """
    key = (base_url, account(api_key), machine_wide)
    with _LOCK:
        governor = _GOVERNORS.get(key)
        if governor is None:
            path = machine.keyed_path("throttle", f"{base_url} {key[1]}") if machine_wide else None
            governor = ThrottleGovernor() if path is None else MachineGovernor(path)
            _GOVERNORS[key] = governor
        return governor


def forget_governors() -> None:
    """Drop every governor (a fresh process's state; for tests)."""
    with _LOCK:
        _GOVERNORS.clear()
