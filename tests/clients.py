"""Run one behavioural test against both the sync and the async client.

Test bodies are async and call ``await api("get_credits")``; for the async flavour that becomes
``await client.aget_credits()``. Pauses go to a fake clock so waits are asserted, not slept.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from rivya_provider.client import (
    AsyncRivyaClient,
    Limits,
    PollPolicy,
    RetryPolicy,
    RivyaClient,
    Timeouts,
)

FLAVOURS = ("sync", "async")


@dataclass
class FakeClock:
    """Monotonic time that moves by the pauses asked for; records every pause.

    ``real_sleep_cap`` really sleeps up to that many seconds per pause, so a server on the other
    side sees time pass (the emulator's task schedule) without tests waiting out long backoffs.
    """

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    real_sleep_cap: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.real_sleep_cap:
            time.sleep(min(seconds, self.real_sleep_cap))

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.real_sleep_cap:
            await asyncio.sleep(min(seconds, self.real_sleep_cap))


@dataclass
class Api:
    """A client of either flavour behind one awaitable call style."""

    client: RivyaClient | AsyncRivyaClient
    clock: FakeClock

    @property
    def sleeps(self) -> list[float]:
        return self.clock.sleeps

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.client, AsyncRivyaClient):
            return await getattr(self.client, f"a{method}")(*args, **kwargs)
        return getattr(self.client, method)(*args, **kwargs)

    async def close(self) -> None:
        if isinstance(self.client, AsyncRivyaClient):
            await self.client.aclose()
        else:
            self.client.close()


def make_api(
    flavour: str,
    *,
    api_key: str,
    base_url: str,
    handler: Any = None,
    retry: RetryPolicy | None = None,
    poll: PollPolicy | None = None,
    timeouts: Timeouts | None = None,
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    real_sleep_cap: float = 0.0,
    limits: Limits | None = None,
) -> Api:
    """Build a client of ``flavour``; with ``handler`` it talks to an ``httpx.MockTransport``."""
    clock = FakeClock(real_sleep_cap=real_sleep_cap)
    common: dict[str, Any] = {
        "api_key": api_key,
        "base_url": base_url,
        "retry": retry,
        "poll": poll,
        "timeouts": timeouts,
        "clock": clock,
        "limits": limits,
    }
    if handler:
        transport = httpx.MockTransport(handler)
    if flavour == "async":
        assert transport is None or isinstance(transport, httpx.AsyncBaseTransport)
        return Api(AsyncRivyaClient(transport=transport, sleep=clock.asleep, **common), clock)
    assert transport is None or isinstance(transport, httpx.BaseTransport)
    return Api(RivyaClient(transport=transport, sleep=clock.sleep, **common), clock)
