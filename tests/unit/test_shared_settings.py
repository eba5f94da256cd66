"""One Connection lookup per event loop at a time, shared by every wait that starts together."""

from __future__ import annotations

import asyncio

import pytest

from rivya_provider.hooks._shared_settings import shared_lookup


class Lookups:
    """A lookup that counts its calls and answers when released."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.release = asyncio.Event()

    async def __call__(self) -> str:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("connection not found")
        return f"settings {self.calls}"


async def test_waits_starting_together_share_one_lookup() -> None:
    lookups = Lookups()
    waits = [asyncio.ensure_future(shared_lookup("conn_a", lookups)) for _ in range(500)]
    await asyncio.sleep(0)
    lookups.release.set()
    assert set(await asyncio.gather(*waits)) == {"settings 1"}
    assert lookups.calls == 1
    # Later waits reuse the answer; another Connection has its own.
    assert await shared_lookup("conn_a", lookups) == "settings 1"
    other = Lookups()
    other.release.set()
    assert await shared_lookup("conn_b", other) == "settings 1"
    assert (lookups.calls, other.calls) == (1, 1)


async def test_a_failed_lookup_is_not_reused() -> None:
    failing = Lookups(fail=True)
    failing.release.set()
    with pytest.raises(RuntimeError, match="not found"):
        await shared_lookup("conn_c", failing)
    working = Lookups()
    working.release.set()
    assert await shared_lookup("conn_c", working) == "settings 1"


async def test_a_cancelled_wait_does_not_cancel_the_others() -> None:
    lookups = Lookups()
    first = asyncio.ensure_future(shared_lookup("conn_d", lookups))
    second = asyncio.ensure_future(shared_lookup("conn_d", lookups))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    lookups.release.set()
    assert await second == "settings 1"
    assert first.cancelled()
    assert lookups.calls == 1


def test_each_event_loop_looks_up_on_its_own() -> None:
    answers = []
    for _ in range(2):
        lookups = Lookups()
        lookups.release.set()
        answers.append(asyncio.run(shared_lookup("conn_e", lookups)))
        assert lookups.calls == 1
    assert answers == ["settings 1", "settings 1"]
