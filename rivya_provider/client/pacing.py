"""Client-side pacing: at most N API requests per second per Rivya key and base URL, per process.

Every client built for the same key and base URL in one process (the tasks of a worker, the
triggers of a triggerer) takes its turn from one shared :class:`Pacer`, so a wide mapped refresh
spreads its requests out instead of meeting Rivya's rate limit all at once. The pacer only says how
long to wait: the sync client sleeps, the async one awaits, and neither holds a lock meanwhile.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable


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


_PACERS: dict[tuple[str, str, float], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def shared_pacer(*, base_url: str, api_key: str, rate: float | None) -> Pacer | None:
    """Return the process-wide pacer of this key, base URL and rate (``None`` when not paced)."""
    if rate is None:
        return None
    # Rivya limits per account: one pacer per key, known here only by a digest.
    account = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    with _PACERS_LOCK:
        return _PACERS.setdefault((base_url, account, rate), Pacer(rate))
