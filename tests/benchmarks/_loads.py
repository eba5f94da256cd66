"""Load generators of the scale benchmark: pollers, many triggers in one loop, a server hammer."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]

from rivya_provider.client.tasks import GenerationTask
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.triggers import heap
from rivya_provider.triggers.generation import RivyaGenerationTrigger

POLL_ROUTE = "GET /api/v1/generations/{taskId}"


def headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@contextmanager
def logs_at(level: int) -> Iterator[None]:
    """Log the pollers' loggers at ``level`` and above only, until the block ends."""
    names = ("rivya_provider", "airflow.providers.http", "httpx", "httpcore", "airflow.task")
    tables = []
    for module in ("airflow._shared.logging.structlog", "airflow.sdk._shared.logging.structlog"):
        try:
            # Airflow 3.3 filters structlog loggers by these levels.
            tables.append(importlib.import_module(module).PER_LOGGER_LEVELS)
        except (ImportError, AttributeError):
            continue
    saved = [dict(table) for table in tables]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(level)
        for table in tables:
            table[name] = level
    try:
        yield
    finally:
        for name, before_level in levels.items():
            logging.getLogger(name).setLevel(before_level)
        for table, before in zip(tables, saved, strict=True):
            table.clear()
            table.update(before)


def polls_served(base_url: str) -> int:
    """Status polls the emulator at ``base_url`` has answered so far."""
    counters = httpx.get(f"{base_url}/_emulator/counters").json()
    return int(counters["requests"].get(POLL_ROUTE, 0))


async def seed(base_url: str, api_key: str, count: int, *, concurrency: int = 32) -> list[str]:
    """Create ``count`` generations (each under its own Idempotency-Key); return their ids."""
    import aiohttp

    ids: list[str] = []
    numbers = iter(range(count))
    async with aiohttp.ClientSession(base_url=base_url, headers=headers(api_key)) as session:

        async def worker() -> None:
            for number in numbers:
                async with session.post(
                    "/api/v1/generations",
                    json={"model": "flux-2-flex", "prompt": f"poster {number}"},
                    headers={"Idempotency-Key": f"bench-{os.getpid()}-{number}-{time.time()}"},
                ) as answer:
                    answer.raise_for_status()
                    ids.append((await answer.json())["id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def hammer(
    base_url: str, api_key: str, path: str, *, seconds: float, concurrency: int = 16
) -> int:
    """GET ``path`` from ``concurrency`` loops for ``seconds``; return the requests made.

    aiohttp, the cheapest client measured here, so that the server is what runs out first.
    """
    import aiohttp

    count = 0
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        base_url=base_url, headers=headers(api_key), connector=connector
    ) as session:

        async def worker() -> None:
            nonlocal count
            while time.monotonic() < stop:
                async with session.get(path) as answer:
                    await answer.read()
                count += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count


# --- one poll's CPU ------------------------------------------------------------------------------


async def run_triggers(triggers: list[Any]) -> list[Any]:
    """Run triggers as the triggerer does (each to its first event), all in this loop."""

    async def first_event(trigger: Any) -> Any:
        async for event in trigger.run():
            return event
        return None

    return list(await asyncio.gather(*(first_event(t) for t in triggers)))


async def close_shared_client() -> None:
    client = await RivyaHook().aget_client()
    await client.aclose()


async def ours(base_url: str, task_id: str, *, pollers: int, seconds: float) -> None:
    deadline = time.time() + seconds
    triggers = [
        RivyaGenerationTrigger(generation_id=task_id, deadline=deadline, poll_interval=0.0)
        for _ in range(pollers)
    ]
    await run_triggers(triggers)
    await close_shared_client()


async def bare_httpx(
    base_url: str,
    api_key: str,
    task_id: str,
    *,
    pollers: int,
    seconds: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers(api_key), transport=transport
    ) as client:

        async def loop() -> None:
            while time.monotonic() < stop:
                (await client.get(f"/api/v1/generations/{task_id}")).json()

        await asyncio.gather(*(loop() for _ in range(pollers)))


async def bare_aiohttp(
    base_url: str,
    api_key: str,
    task_id: str,
    *,
    pollers: int,
    seconds: float,
    typed: bool = False,
) -> None:
    """An aiohttp session polling; ``typed`` reads each answer into a ``GenerationTask``."""
    import aiohttp

    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(base_url=base_url, headers=headers(api_key)) as session:

        async def loop() -> None:
            while time.monotonic() < stop:
                async with session.get(f"/api/v1/generations/{task_id}") as answer:
                    if typed:
                        GenerationTask.model_validate_json(await answer.read())
                    else:
                        await answer.json()

        await asyncio.gather(*(loop() for _ in range(pollers)))


async def http_sensor_trigger(api_key: str, *, pollers: int, seconds: float) -> None:
    """``HttpSensorTrigger`` polling a task id the server does not know (404: poke again)."""
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    triggers = [
        HttpSensorTrigger(
            endpoint="/api/v1/generations/task_unknown",
            http_conn_id="http_bench",
            method="GET",
            headers=headers(api_key),
            poke_interval=0.0,
        )
        for _ in range(pollers)
    ]
    tasks = [asyncio.ensure_future(run_triggers([t])) for t in triggers]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def cpu_per_call(
    run: Callable[[], Coroutine[Any, Any, None]], count: Callable[[], int]
) -> tuple[float, int]:
    """Run ``run`` in a fresh loop; return this process's CPU µs per counted call, and calls."""
    before_count, before_cpu = count(), time.process_time()
    asyncio.run(run())
    cpu = time.process_time() - before_cpu
    calls = count() - before_count
    return (cpu / calls * 1e6 if calls else float("nan")), calls


# --- many triggers in one loop ------------------------------------------------------------------


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


@dataclass
class ScaleResult:
    triggers: int
    seconds: float
    polls: int
    due: int
    lags_ms: list[float] = field(default_factory=list)
    rss_per_trigger_kb: float = 0.0
    max_sockets: int = 0
    #: How long each full (oldest-generation) pass of the garbage collector stopped the loop.
    full_gc_ms: list[float] = field(default_factory=list)

    def lag(self, quantile: float) -> float:
        if quantile >= 1:
            return max(self.lags_ms)
        return statistics.quantiles(self.lags_ms, n=100, method="inclusive")[
            round(quantile * 100) - 1
        ]


async def _watch_loop(result: ScaleResult, stop: asyncio.Event, tick: float = 0.05) -> None:
    """Measure how late the loop wakes a sleeper (its lag), and the sockets open."""
    last_sockets = 0.0
    while not stop.is_set():
        expected = time.monotonic() + tick
        await asyncio.sleep(tick)
        now = time.monotonic()
        result.lags_ms.append(max(0.0, now - expected) * 1000)
        if now - last_sockets >= 1.0:
            result.max_sockets = max(result.max_sockets, _open_sockets())
            last_sockets = now


@contextmanager
def _timing_full_collections(pauses_ms: list[float]) -> Iterator[None]:
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif info["generation"] == 2 and started:
            pauses_ms.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


@contextmanager
def _frozen_heap(freeze: bool) -> Iterator[None]:
    """Run with ``[rivya] freeze_triggerer_heap`` on (the first trigger freezes), then undo it."""
    if not freeze:
        yield
        return
    os.environ["AIRFLOW__RIVYA__FREEZE_TRIGGERER_HEAP"] = "True"
    heap._done = False
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        del os.environ["AIRFLOW__RIVYA__FREEZE_TRIGGERER_HEAP"]
        gc.unfreeze()
        gc.set_threshold(*thresholds)  # the runs without the option get Python's own


def full_pass_ms(runs: int = 3) -> tuple[float, int]:
    """The shortest of ``runs`` full collector passes of this process (ms), and its objects."""
    gc.collect()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    return min(times), len(gc.get_objects())


def triggerer_full_pass_ms() -> tuple[float, int]:
    """:func:`full_pass_ms` of a new process holding only Airflow's triggerer and this trigger.

    The floor of every full pass in a real triggerer, before any trigger runs.
    """
    code = (
        "import airflow.jobs.triggerer_job_runner, rivya_provider.triggers.generation; "
        "from tests.benchmarks._loads import full_pass_ms; print(*full_pass_ms())"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(answer[-2]), int(answer[-1])


#: The deadline of each wait of :func:`many_triggers`: the operator's default
#: ``generation_timeout``.
WAIT_SECONDS = 1800.0


def many_triggers(
    base_url: str, ids: list[str], *, seconds: float, interval: float, freeze: bool = False
) -> ScaleResult:
    """Run one trigger per id in one loop, polling every ``interval``, for ``seconds`` of due polls.

    The run lasts half an interval longer, so that the last due polls are made.

    :param freeze: with ``[rivya] freeze_triggerer_heap`` on.
    """
    process = psutil.Process()
    before_rss = process.memory_info().rss
    result = ScaleResult(
        triggers=len(ids),
        seconds=seconds,
        polls=0,
        # Each polls at once, then every interval (+-10 %) until the run ends.
        due=len(ids) * (1 + int(seconds / interval)),
    )
    start_polls = polls_served(base_url)

    async def main() -> None:
        stop = asyncio.Event()
        # As in a triggerer, each wait's deadline is far off (the provider bounds polls near
        # their deadline differently); the run ends by cancelling the waits, half an interval
        # after the last poll counted as due.
        deadline = time.time() + WAIT_SECONDS
        triggers = [
            RivyaGenerationTrigger(generation_id=i, deadline=deadline, poll_interval=interval)
            for i in ids
        ]
        watcher = asyncio.ensure_future(_watch_loop(result, stop))
        rss_peak = 0

        async def sample_rss() -> None:
            nonlocal rss_peak
            while not stop.is_set():
                rss_peak = max(rss_peak, process.memory_info().rss)
                await asyncio.sleep(1.0)

        sampler = asyncio.ensure_future(sample_rss())
        waits = asyncio.ensure_future(run_triggers(triggers))
        await asyncio.sleep(seconds + interval / 2)
        waits.cancel()
        await asyncio.gather(waits, return_exceptions=True)
        stop.set()
        await asyncio.gather(watcher, sampler)
        result.rss_per_trigger_kb = (rss_peak - before_rss) / 1024 / len(ids)
        await close_shared_client()

    with _frozen_heap(freeze), _timing_full_collections(result.full_gc_ms):
        asyncio.run(main())
    result.polls = polls_served(base_url) - start_polls
    return result
