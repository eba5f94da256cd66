"""The async client many triggers share in one event loop: bounded requests in flight."""

from __future__ import annotations

import asyncio

import httpx

from rivya_provider.client import AsyncRivyaClient
from tests.unit.conftest import API_KEY, BASE_URL, TASK


async def test_requests_in_flight_are_bounded_and_all_answered() -> None:
    in_flight = 0
    most = 0

    async def slow_server(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=TASK)

    async with AsyncRivyaClient(
        api_key=API_KEY,
        base_url=BASE_URL,
        transport=httpx.MockTransport(slow_server),
        max_in_flight=3,
    ) as client:
        tasks = await asyncio.gather(*(client.aget_generation("task_abc") for _ in range(40)))
    assert [t.id for t in tasks] == ["task_abc"] * 40
    assert most == 3


async def test_the_default_bound_stays_below_the_connection_pool() -> None:
    async with AsyncRivyaClient(api_key=API_KEY, base_url=BASE_URL) as client:
        session = client._http._transport.get_client()  # type: ignore[attr-defined]
        try:
            assert client.MAX_IN_FLIGHT == 50
            # Every request in flight has a connection; aiohttp keeps every idle one alive
            # for the next poll (it has no separate keep-alive cap to size).
            assert session.connector.limit >= client.MAX_IN_FLIGHT
        finally:
            await session.close()
