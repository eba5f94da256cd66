"""Sleeps for thousands of waits in one event loop: one timer per slot, not one per sleeper.

``asyncio.sleep`` schedules a timer of its own, with a copy of the task's context, for each
sleep. A triggerer with thousands of waits sleeping between polls keeps thousands of those,
renewed at every poll and alive for seconds: Python's garbage collector moves them into its
oldest generation, whose full passes (which stop the event loop) then come more often. Here
sleeps ending in the same :data:`SLOT_SECONDS` share one timer; each sleeper still awaits a
future of its own, so cancelling one never touches another.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import weakref
from collections.abc import Awaitable

#: Width of a wake-up slot: a sleep ends at most this much after its time.
SLOT_SECONDS = 0.01


class _Slots:
    """The sleepers of one event loop, by the slot they end in."""

    def __init__(self) -> None:
        # Not the loop itself: it is the key of this object in a weak dictionary.
        self._sleepers: dict[int, list[asyncio.Future[None]]] = {}
        # Timers run in this empty context, not in a copy of the first sleeper's.
        self._context = contextvars.Context()

    def sleep(self, loop: asyncio.AbstractEventLoop, seconds: float) -> asyncio.Future[None]:
        slot = math.ceil((loop.time() + seconds) / SLOT_SECONDS)
        future: asyncio.Future[None] = loop.create_future()
        sleepers = self._sleepers.get(slot)
        if sleepers is None:
            sleepers = self._sleepers[slot] = []
            loop.call_at(slot * SLOT_SECONDS, self._wake, slot, context=self._context)
        sleepers.append(future)
        return future

    def _wake(self, slot: int) -> None:
        for future in self._sleepers.pop(slot):
            if not future.done():  # a cancelled sleeper stays listed until its slot comes
                future.set_result(None)


#: One per event loop, and gone with it.
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slots] = weakref.WeakKeyDictionary()


def sleep(seconds: float) -> Awaitable[None]:
    """Sleep ``seconds`` in the running event loop, ending up to :data:`SLOT_SECONDS` late.

    A sleep of zero or less only lets the other tasks run, as ``asyncio.sleep(0)`` does.
    """
    if seconds <= 0:
        return asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = _Slots()
    return slots.sleep(loop, seconds)
