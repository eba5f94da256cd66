"""How many API requests one async client sends at once: a limit that follows the round trips.

Thousands of triggers share one client in a triggerer's event loop. Against a server that
answers at once, the loop itself is the queue: more requests in flight answer no sooner, and
each holds objects that every garbage collection walks, which lengthens the loop's pauses
(docs/performance.md). Against a distant server, the network is the queue: a fixed 50 in flight
made a triggerer poll about 50 times per round trip, whatever was due.

So the limit starts at its floor and rises while requests wait for a slot, the round trip
(smoothed over the answers) stays within twice its fastest of the last 10 to 20 seconds (TCP
Vegas' test, with a wide margin because a server's own answer times vary), and the loop runs
woken requests within a tenth of a round trip (else the loop, not the network, is what they
wait for). Otherwise, or on a refused answer (429, 5xx) or none, it falls back by a tenth, at
most once per round trip: one pause of the loop delays every answer in flight, and counts once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from rivya_provider.client.averages import moving_average

#: A smoothed round trip over this many times the fastest recent one counts as slow.
SLOW_FACTOR = 2.0
#: The fastest round trip is kept over two windows of this many seconds: it follows a network
#: path that got slower within 20 s, and one lucky answer counts for 20 s at most.
BASE_WINDOW = 10.0
#: The loop may run a woken request this share of a round trip late before it counts as busy.
LOOP_SHARE = 0.1
#: Weight of each new sample in the smoothed round trip and lateness of woken requests: one
#: odd answer, quick or slow, moves them by a tenth of its difference.
SMOOTHING = 0.1
#: Answers, and woken requests, smoothed before the limit may rise.
WARM_UP = 10
#: Slots added per fast answer while requests wait: a quarter more per round trip at most.
GROWTH = 0.25
#: What is left of the limit after a slow answer.
BACK_OFF = 0.9


class AdaptiveLimit:
    """A gate of ``floor`` to ``ceiling`` requests at once, first come first served.

    Take a slot with :meth:`acquire`, give it back with :meth:`release`.

    :param floor: slots always open; the limit starts there.
    :param ceiling: slots at most (the connection pool must hold as many).
    :param clock: monotonic seconds; round trips are timed with it.
    """

    def __init__(
        self, *, floor: int, ceiling: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got floor={floor} ceiling={ceiling}")
        self.floor = floor
        self.ceiling = ceiling
        self._clock = clock
        self._limit = float(floor)
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[float]] = deque()  # each resolves to when it woke
        self._woken = 0
        self._lateness: float | None = None  # how late the loop ran woken requests, smoothed
        self._answered = 0
        self._round_trip: float | None = None  # smoothed over the answers
        self._fastest = float("inf")  # the fastest smoothed round trip of this window
        self._fastest_before = float("inf")  # and of the window before
        self._window_ends = float("-inf")
        self._steady_until = float("-inf")  # no second back-off before then

    @property
    def limit(self) -> int:
        """Requests allowed at once now."""
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self) -> float:
        """Wait for a slot; returns when it was taken, for :meth:`release`."""
        if self._in_flight < int(self._limit) and not self._waiters:
            self._in_flight += 1
            return self._clock()
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            woken = await waiter  # _admit counted this request in when it woke it
        except asyncio.CancelledError:
            if not waiter.cancelled():
                self._in_flight -= 1  # woken, then cancelled: the slot goes to the next one
            self._admit()  # and a cancelled waiter must not hold up those behind it
            raise
        now = self._clock()
        self._woken += 1
        self._lateness = moving_average(self._lateness, now - woken, SMOOTHING)
        return now

    def release(self, taken: float, *, refused: bool = False) -> None:
        """Give back a slot taken at ``taken``.

        :param refused: the server refused the request (429, 5xx) or did not answer it.
        """
        self._in_flight -= 1
        now = self._clock()
        round_trip = now - taken
        if not refused:
            self._note(round_trip, now)
        smoothed, lateness = self._round_trip, self._lateness
        fast = (
            not refused
            and min(self._answered, self._woken) > WARM_UP
            and smoothed is not None
            and lateness is not None
            and smoothed <= SLOW_FACTOR * min(self._fastest, self._fastest_before)
            and lateness <= LOOP_SHARE * smoothed
        )
        if not fast:
            if now >= self._steady_until:
                self._limit = max(float(self.floor), self._limit * BACK_OFF)
                self._steady_until = now + round_trip
        elif self._waiters:
            self._limit = min(float(self.ceiling), self._limit + GROWTH)
        self._admit()

    def _note(self, round_trip: float, now: float) -> None:
        """Smooth the round trips, and keep the fastest smoothed one of the last two windows."""
        self._answered += 1
        self._round_trip = smoothed = moving_average(self._round_trip, round_trip, SMOOTHING)
        if self._answered <= WARM_UP:
            return
        if now >= self._window_ends:
            self._fastest_before, self._fastest = self._fastest, smoothed
            self._window_ends = now + BASE_WINDOW
        elif smoothed < self._fastest:
            self._fastest = smoothed

    def _admit(self) -> None:
        """Wake waiters, oldest first, while there are free slots."""
        waiters = self._waiters
        while waiters and self._in_flight < int(self._limit):
            waiter = waiters.popleft()
            if not waiter.done():  # a waiter cancelled before its turn is passed over
                waiter.set_result(self._clock())
                self._in_flight += 1
