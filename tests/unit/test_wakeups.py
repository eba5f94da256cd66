"""Sleeps that end in the same slot share one timer (``rivya_provider.triggers.wakeups``)."""

from __future__ import annotations

import asyncio
import gc
import math
import weakref

import pytest

from rivya_provider.triggers import wakeups
from tests.loop_timers import record_timers

pytestmark = pytest.mark.no_airflow


async def test_a_sleep_is_due_after_its_time_and_at_most_one_slot_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    for seconds in (0.001, 0.013, 0.05):
        scheduled = record_timers(monkeypatch)
        started = loop.time()
        sleeping = wakeups.sleep(seconds)
        (timer,) = scheduled
        assert started + seconds <= timer.when <= loop.time() + seconds + wakeups.SLOT_SECONDS
        await sleeping
        # The loop may run a timer up to its clock resolution early, never more.
        assert loop.time() - started >= seconds - loop._clock_resolution  # type: ignore[attr-defined]


async def test_sleepers_ending_in_one_slot_share_a_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    # Aligned to the start of a slot, so that all 300 end in the fewest slots.
    slot = int(loop.time() / wakeups.SLOT_SECONDS) + 2
    await asyncio.sleep(slot * wakeups.SLOT_SECONDS - loop.time())
    scheduled = record_timers(monkeypatch)
    started = loop.time()
    sleepers = [asyncio.ensure_future(wakeups.sleep(0.2)) for _ in range(300)]
    # Starting them may take longer than a slot on a busy machine (a collector pass, say).
    spanned = math.ceil((loop.time() - started) / wakeups.SLOT_SECONDS) + 1
    await asyncio.gather(*sleepers)
    assert 1 <= len(scheduled) <= spanned  # a timer each would make 300
    # Each sleeper awaits a future of its own.
    assert len({id(s) for s in sleepers}) == 300


async def test_sleeps_ending_in_different_slots_each_get_a_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduled = record_timers(monkeypatch)
    await asyncio.gather(*(wakeups.sleep(0.05 * n) for n in range(1, 5)))
    assert len(scheduled) == 4


async def test_cancelling_one_sleeper_wakes_the_others_of_its_slot() -> None:
    async def sleeper(woken: list[int], n: int) -> None:
        await wakeups.sleep(0.1)
        woken.append(n)

    woken: list[int] = []
    tasks = [asyncio.ensure_future(sleeper(woken, n)) for n in range(5)]
    await asyncio.sleep(0.02)
    tasks[2].cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    assert isinstance(results[2], asyncio.CancelledError)
    assert sorted(woken) == [0, 1, 3, 4]


async def test_a_sleep_of_zero_or_less_lets_the_other_tasks_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduled = record_timers(monkeypatch)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    task = asyncio.ensure_future(other())
    await wakeups.sleep(-1)
    assert ran == ["other"]
    await wakeups.sleep(0)
    assert scheduled == []
    await task


def test_the_sleepers_of_a_finished_event_loop_go_with_it() -> None:
    async def nap() -> weakref.ref[asyncio.AbstractEventLoop]:
        await wakeups.sleep(0.01)
        loop = asyncio.get_running_loop()
        assert loop in wakeups._slots
        return weakref.ref(loop)

    loop = asyncio.run(nap())
    gc.collect()
    assert loop() is None  # nothing of the module's keeps the loop alive
