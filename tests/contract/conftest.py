"""Fixtures of the contract suite: a started target per test, and clients of both flavours."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from rivya_provider.client import PollPolicy, RetryPolicy
from tests.clients import FLAVOURS, Api, make_api
from tests.contract.targets import TARGETS, Target, start_target

#: Quick retries so a fault costs milliseconds, not seconds.
RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05, retry_after_cap=5)
#: Polls every 0.02 s of fake time, each pause really sleeping as long: a task that never ends
#: costs 5 s, one that ends costs the server's schedule.
POLL = PollPolicy(first_delay=0.02, interval=0.02, timeout=5)
REAL_SLEEP_CAP = 0.02

ApiFactory = Callable[..., Api]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A started emulator profile or docs-server variant, stopped when the test ends."""
    with start_target(str(request.param)) as started:
        yield started


#: Mark a test ``@BOTH_FLAVOURS`` to run it with the async client too; the rest run sync only,
#: which keeps the suite short (both clients share one set of rules).
BOTH_FLAVOURS = pytest.mark.parametrize("flavour", FLAVOURS, indirect=True)


@pytest.fixture(params=["sync"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def api_for(flavour: str, target: Target) -> AsyncIterator[ApiFactory]:
    """Build clients of ``flavour`` for ``target``; each closes when the test ends."""
    made: list[Api] = []

    def factory(**overrides: Any) -> Api:
        options: dict[str, Any] = {
            "api_key": target.api_key,
            "base_url": target.base_url,
            "retry": RETRY,
            "poll": POLL,
            "real_sleep_cap": REAL_SLEEP_CAP,
            **overrides,
        }
        api = make_api(flavour, **options)
        made.append(api)
        return api

    yield factory
    for api in made:
        await api.close()


@pytest.fixture
def api(api_for: ApiFactory) -> Api:
    """A client of the test's flavour with quick retries and polls."""
    return api_for()
