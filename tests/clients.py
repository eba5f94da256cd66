"""Run one behavioural test against both the sync and the async client.

Test bodies are async and call ``await api("get_credits")``; for the async flavour that becomes
``await client.aget_credits()``. Pauses go to a fake clock so waits are asserted, not slept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from rivya_provider.client import AsyncRivyaClient, PollPolicy, RetryPolicy, RivyaClient, Timeouts

FLAVOURS = ("sync", "async")


@dataclass
class FakeClock:
    """Monotonic time that only moves when someone sleeps; records every pause."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


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
) -> Api:
    """Build a client of ``flavour``; with ``handler`` it talks to an ``httpx.MockTransport``."""
    clock = FakeClock()
    common: dict[str, Any] = {
        "api_key": api_key,
        "base_url": base_url,
        "retry": retry,
        "poll": poll,
        "timeouts": timeouts,
        "clock": clock,
    }
    transport = httpx.MockTransport(handler) if handler else None
    if flavour == "async":
        return Api(AsyncRivyaClient(transport=transport, sleep=clock.asleep, **common), clock)
    return Api(RivyaClient(transport=transport, sleep=clock.sleep, **common), clock)
