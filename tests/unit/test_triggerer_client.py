"""The async client many triggers share in one event loop: bounded requests in flight."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from rivya_provider.client import AsyncRivyaClient
from tests.unit.conftest import API_KEY, BASE_URL, TASK

pytestmark = pytest.mark.no_airflow


def _server(seconds: float) -> tuple[httpx.MockTransport, list[int]]:
    """A server answering after ``seconds``; records the most requests it had in flight."""
    in_flight = 0
    most = [0]

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight
        in_flight += 1
        most[0] = max(most[0], in_flight)
        await asyncio.sleep(seconds)
        in_flight -= 1
        return httpx.Response(200, json=TASK)

    return httpx.MockTransport(answer), most


async def _most_at_once(*, answer_after: float, polls: int, max_in_flight: int) -> int:
    """Poll ``polls`` times at once through a client; the most requests the server had at once."""
    transport, most = _server(answer_after)
    async with AsyncRivyaClient(
        api_key=API_KEY, base_url=BASE_URL, transport=transport, max_in_flight=max_in_flight
    ) as client:
        tasks = await asyncio.gather(*(client.aget_generation("task_abc") for _ in range(polls)))
    assert [t.id for t in tasks] == ["task_abc"] * polls
    return most[0]


async def test_requests_in_flight_are_bounded_and_all_answered() -> None:
    assert await _most_at_once(answer_after=0.01, polls=40, max_in_flight=3) == 3


async def test_a_distant_server_gets_more_requests_at_once_up_to_the_ceiling() -> None:
    # The network's wait, the same for every request; long enough that a loaded machine's
    # scheduling noise stays well within a tenth of it. How the limit moves on every other
    # kind of answer: tests/unit/test_in_flight.py, on a clock the test sets.
    most = await _most_at_once(answer_after=0.2, polls=600, max_in_flight=120)
    assert 50 < most <= 120  # 50: the fixed limit the client once had


def test_a_ceiling_below_one_request_is_refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight must be a whole number >= 1, got 0"):
        AsyncRivyaClient(api_key=API_KEY, base_url=BASE_URL, max_in_flight=0)


async def test_the_default_bound_stays_below_the_connection_pool() -> None:
    async with AsyncRivyaClient(api_key=API_KEY, base_url=BASE_URL) as client:
        assert (client.MIN_IN_FLIGHT, client.MAX_IN_FLIGHT) == (4, 200)
        # Every request in flight has a connection; aiohttp keeps every idle one alive for the
        # next poll (it has no separate keep-alive cap to size).
        assert client.pool_size is not None
        assert client.pool_size >= client.MAX_IN_FLIGHT
