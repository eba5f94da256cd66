"""What a hostile server can make the client spend: prints peak memory of gzip bombs and the time
a one-byte-per-second drip takes to fail, against a raw-socket server on 127.0.0.1.

Run with ``make bench``.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest

from rivya_provider.client import AsyncRivyaClient, Limits, RetryPolicy, RivyaClient, RivyaError
from tests.hostile import HostileServer, answer, drip, gzip_bomb

pytestmark = pytest.mark.benchmark
KEY = "rvya_sk_benchmark_hostile_0123"
HEAD = b'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"id": "task_1", "status": "queued"}    '


@pytest.mark.parametrize("expanded_mib", [64, 1024, 4096])
def test_gzip_bomb_peak_memory(expanded_mib: int) -> None:
    bomb = gzip_bomb(expanded_mib * 1024 * 1024)
    with HostileServer(script=answer(200, bomb, Content_Encoding="gzip")).running() as server:
        tracemalloc.start()
        started = time.monotonic()
        with (
            RivyaClient(
                api_key=KEY, base_url=server.base_url, retry=RetryPolicy(max_attempts=1)
            ) as api,
            pytest.raises(RivyaError) as caught,
        ):
            api.get_generation("task_1")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(
        f"gzip bomb {len(bomb) / 1e6:.2f} MB on the wire -> {expanded_mib} MiB: "
        f"{type(caught.value).__name__} after {time.monotonic() - started:.2f}s, "
        f"peak {peak / 1e6:.1f} MB"
    )


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_one_byte_per_second_fails_at_the_deadline(flavour: str) -> None:
    limits = Limits(request_deadline=5.0)
    retry = RetryPolicy(max_attempts=1)
    with HostileServer(script=drip(HEAD, every=1.0, limit=120)).running() as server:
        started = time.monotonic()
        if flavour == "sync":
            with (
                RivyaClient(api_key=KEY, base_url=server.base_url, retry=retry, limits=limits) as c,
                pytest.raises(RivyaError) as caught,
            ):
                c.get_generation("task_1")
        else:

            async def run() -> None:
                async with AsyncRivyaClient(
                    api_key=KEY, base_url=server.base_url, retry=retry, limits=limits
                ) as c:
                    await c.aget_generation("task_1")

            with pytest.raises(RivyaError) as caught:
                asyncio.run(run())
    print(
        f"drip 1 B/s, {flavour}, request_deadline=5s: {type(caught.value).__name__} after "
        f"{time.monotonic() - started:.2f}s"
    )
