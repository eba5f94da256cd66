"""The 429 governor: after one request meets Rivya's rate limit, the process's others slow down.

Per process and without shared state: the processes of one or many machines each adapt on their
own to the 429s they meet (``tests/benchmarks/test_governor_convergence.py`` shows several of
them sharing one limit).
"""

from __future__ import annotations

import threading
from collections import deque

from rivya_provider.client.flow.pacing import account


class ThrottleGovernor:
    """Slows one process's requests to an account down after a 429, then speeds them up again.

    Hundreds of waits share a triggerer: when Rivya answers one of them 429, the others would meet
    the same limit a moment later, each earning its own 429. After a 429 the governor holds every
    request of the process until ``Retry-After`` has passed. When the process was sending more
    than one wait's few requests (or was slowed down already), it then lets them through at half
    the rate it was sending at, and raises that rate by :attr:`INCREASE` requests per second for
    every second without a 429, until it no longer limits anything: additive increase,
    multiplicative decrease, as TCP does. The halving makes a process that sends much give up
    much and the equal increase lets one that sends little catch up, so processes sharing one
    limit settle near it in about equal shares, without knowing of each other.
    """

    #: Seconds of sending history the process's rate is measured over.
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
        self._lock = threading.Lock()
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
            if len(sent) >= self.FEW:
                sending = (len(sent) - 1) / max(sent[-1] - sent[0], 1.0)
                current = sending if self.rate is None else min(self.rate, sending)
            elif self.rate is not None:
                current = self.rate  # already slowed down, and still too fast
            else:
                return  # one wait's own retries: its Retry-After is enough
            self.rate = max(self.MIN_RATE, current / 2)
            self._raised = self._next  # the rate grows again once the hold is over

    def answered(self, *, now: float) -> None:
        """Note an answer that was not a 429: raise the rate by the time gone since the last.

        :param now: the caller's monotonic clock.
        """
        with self._lock:
            if self.rate is None or now <= self._raised:
                return
            self.rate += self.INCREASE * (now - self._raised)
            self._raised = now
            if self.rate > self.FREE_RATE:
                self.rate = None


_GOVERNORS: dict[tuple[str, str], ThrottleGovernor] = {}
_LOCK = threading.Lock()


def shared_governor(*, base_url: str, api_key: str) -> ThrottleGovernor:
    """Return the process-wide throttle governor of this key and base URL."""
    with _LOCK:
        return _GOVERNORS.setdefault((base_url, account(api_key)), ThrottleGovernor())


def forget_governors() -> None:
    """Drop every governor (a fresh process's state; for tests)."""
    with _LOCK:
        _GOVERNORS.clear()
