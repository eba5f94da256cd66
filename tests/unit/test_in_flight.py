"""The adaptive limit on requests in flight, driven step by step on a clock the test sets."""

from __future__ import annotations

import asyncio

import pytest

from rivya_provider.client.flow.in_flight import BACK_OFF, BASE_WINDOW, AdaptiveLimit

pytestmark = pytest.mark.no_airflow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Load:
    """Requests queued at a gate; each round, everything in flight is answered at once."""

    def __init__(self, gate: AdaptiveLimit, clock: Clock, requests: int) -> None:
        self.gate = gate
        self.clock = clock
        self.pending = [asyncio.ensure_future(gate.acquire()) for _ in range(requests)]
        self.limits: list[int] = []  # the limit after each round
        self.most = gate.limit  # the highest limit the last round's admissions saw

    async def start(self) -> None:
        await asyncio.sleep(0)  # the first requests take their slots, the rest wait

    async def round(self, seconds: float, *, late: float = 0.0, refused: bool = False) -> None:
        """Answer what is in flight after ``seconds``; the woken run ``late`` seconds later."""
        taken = [p for p in self.pending if p.done()]
        assert len(taken) == self.gate.in_flight <= self.most
        self.pending = [p for p in self.pending if not p.done()]
        self.clock.now += seconds
        self.most = 0
        for slot in taken:
            self.gate.release(slot.result(), refused=refused)
            self.most = max(self.most, self.gate.limit)
        self.limits.append(self.gate.limit)
        self.clock.now += late
        for _ in range(3):
            await asyncio.sleep(0)


async def loaded(requests: int, *, floor: int = 2, ceiling: int = 20) -> Load:
    """A gate of ``floor`` to ``ceiling`` slots on a test clock, ``requests`` queued at it."""
    clock = Clock()
    load = Load(AdaptiveLimit(floor=floor, ceiling=ceiling, clock=clock), clock, requests)
    await load.start()
    return load


async def test_the_limit_rises_to_the_ceiling_while_requests_wait_and_answers_are_steady() -> None:
    load = await loaded(60, ceiling=6)
    gate = load.gate
    assert gate.in_flight == 2
    while load.pending:
        await load.round(1.0)
    assert load.limits[0] == 2
    assert max(load.limits) == 6  # and Load.round checked every round stayed within it
    assert load.limits == sorted(load.limits)


async def test_no_growth_without_requests_waiting() -> None:
    load = await loaded(14, ceiling=6)
    while load.pending:  # twelve wait their turn, so the loop's lateness is timed; all refused
        await load.round(1.0, refused=True)
    gate = load.gate
    assert (gate.in_flight, gate.limit) == (0, 2)
    for _ in range(50):  # then steady answers, one at a time: nobody waits for a slot
        taken = await gate.acquire()
        load.clock.now += 1.0
        gate.release(taken)
    assert gate.limit == 2


async def test_slow_answers_back_off_once_per_round_trip() -> None:
    load = await loaded(400)
    gate = load.gate
    while gate.limit < 20:
        await load.round(1.0)
    # The answers now take three times the fastest round trip (seen less than a window ago):
    # each round's answers come back together, and back the limit off once.
    for _ in range(3):
        await load.round(3.0)
    assert load.limits[-4:] == [int(20 * BACK_OFF**times) for times in range(4)]


@pytest.mark.parametrize("case", ["refused", "loop late"])
async def test_refused_answers_and_a_busy_loop_keep_the_limit_down(case: str) -> None:
    load = await loaded(200)
    for _ in range(30):
        if case == "refused":
            await load.round(1.0, refused=True)
        else:  # the answers are steady, but the loop runs each woken request 0.15 s late
            await load.round(1.0, late=0.15)
    assert max(load.limits) == 2


async def test_a_loop_late_from_the_start_never_lifts_the_limit() -> None:
    # Before any woken request has run, the loop's lateness is unknown: the limit must not
    # rise then, only once the lateness of enough woken requests has been timed.
    load = await loaded(2000, floor=10, ceiling=40)
    for _ in range(20):
        await load.round(1.0, late=0.15)
    assert max(load.limits) == 10


async def test_the_fastest_round_trip_is_forgotten_after_two_windows() -> None:
    load = await loaded(4000)
    gate = load.gate
    for _ in range(10):
        await load.round(0.1)  # a fast path
    grown = gate.limit
    for _ in range(3):
        await load.round(5.0)  # then one fifty times slower: slow against the fast one...
    assert gate.limit < grown
    for _ in range(int(2 * BASE_WINDOW / 5.0) + 10):
        await load.round(5.0)  # ...until it is the fastest of the last two windows: it grows
    assert gate.limit == 20


@pytest.mark.parametrize("woken", [False, True], ids=["before its turn", "after its turn came"])
async def test_a_cancelled_waiter_passes_its_turn_to_the_next(woken: bool) -> None:
    gate = AdaptiveLimit(floor=1, ceiling=1)
    first = await gate.acquire()
    second = asyncio.ensure_future(gate.acquire())
    third = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    if woken:
        gate.release(first)  # wakes the second, which is cancelled before it runs
        second.cancel()
    else:
        second.cancel()
        await asyncio.sleep(0)
        gate.release(first)
    for _ in range(2):
        await asyncio.sleep(0)
    assert second.cancelled()
    assert third.done()
    assert gate.in_flight == 1
    gate.release(third.result())
    assert gate.in_flight == 0
    assert (await gate.acquire()) >= 0  # and the gate is open again


@pytest.mark.parametrize(("floor", "ceiling"), [(0, 5), (6, 5)])
def test_a_floor_outside_one_to_the_ceiling_is_refused(floor: int, ceiling: int) -> None:
    with pytest.raises(ValueError, match=f"floor={floor} ceiling={ceiling}"):
        AdaptiveLimit(floor=floor, ceiling=ceiling)
