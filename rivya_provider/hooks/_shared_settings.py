"""Connection settings shared by the waits of one event loop.

Every trigger reads its Connection when it starts. Thousands of triggers starting together (a
triggerer restart, a large mapped run) would each make their own lookup, and those lookups queue
for the few threads Airflow runs them on: the last trigger starts polling seconds late. Here one
lookup per Connection and event loop is in flight at a time and its answer is reused for
:data:`SETTINGS_TTL_SECONDS`, so an edited Connection still takes effect soon.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

#: Seconds the settings read from a Connection are reused by the waits of one event loop.
SETTINGS_TTL_SECONDS = 30.0

T = TypeVar("T")

_Entry = tuple[float, "asyncio.Future[Any]"]
_Entries = dict[str, _Entry]
_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entries] = (
    weakref.WeakKeyDictionary()
)


def _usable(entry: _Entry | None, now: float) -> bool:
    if entry is None or entry[0] <= now:
        return False
    future = entry[1]
    # A failed lookup is not reused: the next wait tries again.
    return not future.done() or (not future.cancelled() and future.exception() is None)


async def shared_lookup(conn_id: str, lookup: Callable[[], Awaitable[T]]) -> T:
    """Return ``lookup()``'s answer for ``conn_id``, shared in this event loop for a while.

    :param conn_id: the Connection id (the key of the shared answer).
    :param lookup: reads the Connection's settings.
    """
    entries = _BY_LOOP.setdefault(asyncio.get_running_loop(), {})
    now = time.monotonic()
    entry = entries.get(conn_id)
    if entry is None or not _usable(entry, now):
        entry = (now + SETTINGS_TTL_SECONDS, asyncio.ensure_future(lookup()))
        entries[conn_id] = entry
    # One waiter being cancelled must not cancel the lookup the others wait for.
    result: T = await asyncio.shield(entry[1])
    return result
