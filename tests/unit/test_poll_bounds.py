"""A trigger's poll is bounded by the wait's deadline: a timer of its own when the deadline is
near (and always on Python 3.10), one sweep per event loop when it is far off
(``rivya_provider.client.bounded.before``); neither loses the triggerer's cancellation."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from rivya_provider.client import RivyaTransportError, bounded
from tests.loop_timers import record_timers


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds of a tenth of a second count as far off; the sweep runs every 50 ms."""
    monkeypatch.setattr(bounded, "LATE_POLL_SECONDS", 0.05)
    monkeypatch.setattr(bounded, "FAR_SECONDS", 0.1)
    monkeypatch.setattr(bounded, "SWEEP_SECONDS", 0.05)


@pytest.mark.parametrize("seconds", [0.08, 0.3], ids=["near: its own timer", "far: the sweep"])
async def test_a_poll_that_never_answers_is_cut_at_its_bound(quick: None, seconds: float) -> None:
    started = time.monotonic()
    with pytest.raises(RivyaTransportError, match="poll did not answer within"):
        await asyncio.wait_for(
            bounded.before(time.time() + seconds, asyncio.sleep(30), what="poll"), 5
        )
    # The sweep may cut a far bound up to one sweep late, never early.
    assert seconds - 0.02 <= time.monotonic() - started <= seconds + 1.0


async def test_a_far_bound_hands_back_the_answer_and_the_polls_own_error(quick: None) -> None:
    async def answer() -> str:
        await asyncio.sleep(0.01)
        return "done"

    async def fail() -> None:
        raise ValueError("the poll's own")

    assert await bounded.before(time.time() + 60, answer(), what="poll") == "done"
    with pytest.raises(ValueError, match="the poll's own"):
        await bounded.before(time.time() + 60, fail(), what="poll")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 gives each poll a timer")
async def test_far_bounds_schedule_one_sweep_not_a_timer_per_poll(
    quick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    scheduled = record_timers(monkeypatch)
    polls = [
        bounded.before(time.time() + 3600, asyncio.sleep(0.02), what="poll") for _ in range(200)
    ]
    await asyncio.gather(*polls)
    sweeps = [
        t for t in scheduled if getattr(t.callback, "__func__", None) is bounded._FarBounds._sweep
    ]
    assert len(scheduled) - len(sweeps) <= 200  # the sleeps' own timers only
    assert 1 <= len(sweeps) <= 3
    # With no poll left in progress, the next sweep is the last one.
    await asyncio.sleep(0.2)
    assert bounded._far_bounds[loop]._sweep_timer is None


@pytest.mark.parametrize("seconds", [30, 3600], ids=["near", "far"])
async def test_a_cancellation_that_comes_with_the_answer_is_not_lost(seconds: float) -> None:
    # The triggerer cancels a wait (task cleared, triggerer stopping) just as its poll's answer
    # lands: the wait must end there. asyncio.wait_for on Python 3.10 handed back the answer.
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def poll() -> str:
        return await answer

    wait = asyncio.ensure_future(bounded.before(time.time() + seconds, poll(), what="poll"))
    await asyncio.sleep(0)  # the poll is waiting for its answer
    answer.set_result("done")
    wait.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait
