"""What each poll of a waiting trigger leaves alive through the sleep after it.

Run with ``make bench-all``. 2,000 triggers (``RIVYA_BENCH_CENSUS_TRIGGERS``) wait in one event
loop for generations that do not finish, polling every 5 s. After they have settled, the test
keeps every object the garbage collector tracks, waits one poll cycle, and counts the tracked
objects alive then that were not before, per trigger and by type: what the collections of the
younger generations move into the oldest, and so what decides how often the full passes come
that stop the loop (docs/performance.md). Also prints the timers in the loop's schedule.
Prints the numbers; asserts only that the triggers polled.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import logging
import os
import time
from collections.abc import Iterator

import pytest

from rivya_provider.emulator.config import new_api_key
from rivya_provider.triggers.generation import RivyaGenerationTrigger
from tests.benchmarks import _loads as loads
from tests.benchmarks._servers import Served, serve

pytestmark = pytest.mark.benchmark

TRIGGERS = int(os.environ.get("RIVYA_BENCH_CENSUS_TRIGGERS", "2000"))
INTERVAL = 5.0
#: Long enough for every trigger to have polled twice and gone back to sleep.
SETTLE_SECONDS = 12.0


@pytest.fixture(scope="module")
def emulator(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Served]:
    with serve("emulator", new_api_key()) as served:
        conn = {"conn_type": "rivya", "host": served.base_url, "password": served.api_key}
        monkeypatch_module.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(conn))
        yield served


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


async def _census(ids: list[str]) -> tuple[collections.Counter[str], int, int]:
    """New tracked objects by type after one poll cycle, and the loop's (cancelled) timers."""
    deadline = time.time() + loads.WAIT_SECONDS
    triggers = [
        RivyaGenerationTrigger(generation_id=i, deadline=deadline, poll_interval=INTERVAL)
        for i in ids
    ]
    waits = asyncio.ensure_future(loads.run_triggers(triggers))
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        gc.collect()
        before = gc.get_objects()  # kept, so that no new object can reuse an old one's id
        seen = {id(o) for o in before}
        await asyncio.sleep(INTERVAL)
        gc.collect()
        new = collections.Counter(
            type(o).__qualname__ for o in gc.get_objects() if id(o) not in seen
        )
        scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
        return new, len(scheduled), sum(handle.cancelled() for handle in scheduled)
    finally:
        waits.cancel()
        await asyncio.gather(waits, return_exceptions=True)
        await loads.close_shared_client()


def test_poll_census(emulator: Served) -> None:
    with loads.logs_at(logging.WARNING):  # a log line for each wait's first look
        _report(emulator)


def _report(emulator: Served) -> None:
    ids = asyncio.run(loads.seed(emulator.base_url, emulator.api_key, TRIGGERS))
    polls = loads.polls_served(emulator.base_url)
    new, timers, cancelled = asyncio.run(_census(ids))
    polls = loads.polls_served(emulator.base_url) - polls
    total = sum(new.values())
    print(
        f"\nPoll census ({TRIGGERS:,} triggers, {INTERVAL:.0f} s polls, {polls:,} polls): "
        f"{total / TRIGGERS:.2f} new tracked objects per trigger alive one poll cycle later"
    )
    for name, count in new.most_common(12):
        print(f"  {name}: {count / TRIGGERS:.2f}")
    print(f"Timers in the loop's schedule: {timers:,} ({cancelled:,} cancelled)")
    assert polls >= TRIGGERS * 2
