"""A request's total time follows the configured timeouts, not only the time between two bytes.

A server that sends one byte a second never lets a per-read timeout expire. Unless a longer
``request_deadline`` is asked for, one request (API call or download) must end within the
connect timeout plus the read timeout, with or without its answer. Each server below drips for
12 s, then holds the connection in silence: a request that is not bounded ends at its read
timeout after the drip, about 15 s in, far past the bound.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.client import (
    AsyncRivyaClient,
    Limits,
    RetryPolicy,
    RivyaClient,
    RivyaError,
    RivyaTransportError,
    Timeouts,
)
from tests.hostile import HostileServer, Script, Seen, drip

KEY = "rvya_sk_time_bounds_0123456789"
#: connect + read = 4 s: the bound of one request. The other two phases stay short.
TIMEOUTS = Timeouts(connect=1, read=3, write=3, pool=1)
#: The bound plus slack for a loaded machine; the unbounded drips below last 15 s.
BOUND = 6.0
#: One attempt: a retry would be a second request, with a bound of its own.
ONE_ATTEMPT = RetryPolicy(max_attempts=1)

CREDITS = b'{"current_credits": 7}'
TASK = json.dumps({"id": "task_1", "status": "queued"}).encode()


def head(body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()


def slow(at_once: bytes, dripped: bytes, *, every: float = 1.0, limit: float = 12) -> Script:
    """A script that sends ``at_once``, then ``dripped`` one byte every ``every`` seconds for at
    most ``limit`` seconds, then holds the connection open in silence until the server stops.

    The silence makes an unbounded client end at its read timeout after the drip (about 15 s
    in all), where a closed connection would let aiohttp send the request a second time.
    """
    body_drip = drip(dripped, every=every, limit=limit)

    async def script(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(at_once)
        await writer.drain()
        await body_drip(seen, writer)
        await asyncio.Event().wait()  # cancelled when the server stops

    return script


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer().running() as running:
        yield running


both_clients = pytest.mark.parametrize("flavour", ["sync", "async"])


async def call(
    server: HostileServer,
    flavour: str,
    method: str,
    *args: Any,
    timeouts: Timeouts = TIMEOUTS,
    limits: Limits | None = None,
) -> Any:
    """Call ``method`` (``aget_...`` for the async client) on a new client of ``flavour``."""
    options: dict[str, Any] = {
        "api_key": KEY,
        "base_url": server.base_url,
        "timeouts": timeouts,
        "retry": ONE_ATTEMPT,
        "limits": limits,
    }
    if flavour == "async":
        async with AsyncRivyaClient(**options) as aclient:
            return await getattr(aclient, f"a{method}")(*args)
    with RivyaClient(**options) as client:
        return getattr(client, method)(*args)


async def failure_time(attempt: Callable[[], Awaitable[Any]]) -> float:
    """Seconds ``attempt`` took to fail with a transport error (it must fail)."""
    started = time.monotonic()
    with pytest.raises(RivyaTransportError):
        await attempt()
    return time.monotonic() - started


@both_clients
async def test_a_dripping_status_line_ends_within_connect_plus_read(
    server: HostileServer, flavour: str
) -> None:
    server.script = slow(b"", head(CREDITS) + CREDITS)
    elapsed = await failure_time(lambda: call(server, flavour, "get_credits"))
    assert elapsed < BOUND


@both_clients
async def test_a_dripping_body_ends_within_connect_plus_read(
    server: HostileServer, flavour: str
) -> None:
    server.script = slow(head(TASK), TASK)
    elapsed = await failure_time(lambda: call(server, flavour, "get_generation", "task_1"))
    assert elapsed < BOUND


@both_clients
async def test_a_dripping_download_ends_within_connect_plus_read(
    server: HostileServer, flavour: str, tmp_path: Path
) -> None:
    image = b"\x89PNG\r\n\x1a\n" + bytes(200)
    server.script = slow(head(image, "image/png"), image)
    target = tmp_path / "result.png"
    elapsed = await failure_time(
        lambda: call(server, flavour, "download", server.url("/result.png"), target)
    )
    assert elapsed < BOUND
    assert list(tmp_path.iterdir()) == [], "a failed download leaves nothing behind"


def test_a_poke_against_a_dripping_server_ends_within_the_connection_timeouts(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rivya_provider.sensors.generation import RivyaGenerationSensor

    conn = {
        "conn_type": "rivya",
        "host": server.base_url,
        "password": KEY,
        "extra": {"timeout": 3, "connect_timeout": 1, "max_attempts": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DRIP", json.dumps(conn))
    server.script = slow(head(TASK), TASK)
    sensor = RivyaGenerationSensor(
        task_id="watch", generation_id="task_1", rivya_conn_id="rivya_drip", mode="poke"
    )
    started = time.monotonic()
    try:
        # A transient failure is "not yet" in poke mode: the sensor pokes again later.
        outcome: object = sensor.poke({"run_id": "r", "task_state_store": None})
    except RivyaError as exc:  # failing in time is as good: the bound is what is tested
        outcome = exc
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"the poke ended after {elapsed:.1f}s with {outcome!r}"
    assert outcome is False or isinstance(outcome, RivyaError)
    assert len(server.seen) == 1


def slow_but_complete() -> Script:
    """A complete, valid answer that takes about 5.5 s: headers at once, 22 bytes of body."""
    return slow(head(CREDITS), CREDITS, every=0.25, limit=15)


#: Bound of one request here: connect + read = 3 s.
SHORT_TIMEOUTS = Timeouts(connect=1, read=2, write=2, pool=1)


@both_clients
async def test_a_slow_complete_answer_fails_under_the_default_deadline(
    server: HostileServer, flavour: str
) -> None:
    server.script = slow_but_complete()
    elapsed = await failure_time(
        lambda: call(server, flavour, "get_credits", timeouts=SHORT_TIMEOUTS)
    )
    assert elapsed < 3 + 1.5


@both_clients
async def test_an_explicit_request_deadline_lets_a_slow_answer_finish(
    server: HostileServer, flavour: str
) -> None:
    server.script = slow_but_complete()
    credits = await call(
        server,
        flavour,
        "get_credits",
        timeouts=SHORT_TIMEOUTS,
        limits=Limits(request_deadline=10),
    )
    assert credits.current_credits == 7
