"""The scale and latency table (``make bench``): every ratio measured side by side in one run.

Sized for 2 cores. Servers run in their own processes, so the CPU of a client is its own:

- CPU per status poll in this process: ``RivyaGenerationTrigger`` (its async client runs on
  aiohttp's connections through ``httpx-aiohttp``), the same on httpx's own transport, a bare
  ``httpx.AsyncClient`` loop on each transport, a bare ``aiohttp`` session (also with each
  answer read into a ``GenerationTask``) and the HTTP provider's ``HttpSensorTrigger``; and the
  CPU of the ``httpx.Request`` and ``httpx.Response`` objects each poll of ours builds.
- 1,000 and 5,000 triggers in one event loop, polling every 5 s, each as it is and with
  ``[rivya] freeze_triggerer_heap`` on: loop lag, full garbage-collector passes, polls made
  against polls due, RSS per trigger, open sockets; then 5,000 against answers 100 ms late.
- The emulator's requests/s and CPU per request against a minimal FastAPI app with the same
  routes, with 0 and 5,000 generations stored.
- A 20-way mapped run through a real scheduler (api-server, scheduler, dag-processor,
  triggerer) against the emulator's generation time.
- The import cost of ``rivya_provider``'s operators against ``airflow.sdk``.

Prints the table with the goals next to the numbers; asserts only that each part ran.
"""

from __future__ import annotations

import asyncio
import compileall
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import rivya_provider
from rivya_provider.client import AsyncRivyaClient
from rivya_provider.client.bodies import read_response
from rivya_provider.client.endpoints import GENERATION
from rivya_provider.client.transports import async_transport
from rivya_provider.emulator.config import new_api_key
from tests.benchmarks import _loads as loads
from tests.benchmarks._servers import Served, serve

pytestmark = pytest.mark.benchmark

POLLERS = 20
POLL_SECONDS = 4.0
SCALE_SECONDS = float(os.environ.get("RIVYA_BENCH_SCALE_SECONDS", "20"))
SCALE_INTERVAL = 5.0
STORED = 5000
HAMMER_SECONDS = 4.0
#: Generation time of the emulator in the mapped run (queued + processing).
QUEUED, PROCESSING = 0.5, 3.0
IMPORT_RUNS = 7
#: Seconds the emulator adds to each answer in the last many-triggers run: a distant server.
LATE_ANSWER = 0.1
#: Airflow's default, the window a trigger may not fire in after deferring.
MIN_HEARTBEAT = 5.0

Row = tuple[str, str, str, str]


class Table:
    """Rows of the one table printed at the end."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, measure: str, value: str, ratio: str = "", goal: str = "") -> None:
        self.rows.append((measure, value, ratio, goal))
        print(f"  {measure}: {value} {ratio}", flush=True)

    def render(self) -> str:
        head: Row = ("measure", "value", "ratio", "goal")
        widths = [max(len(row[i]) for row in [head, *self.rows]) for i in range(4)]
        lines = [" | ".join(cell.ljust(w) for cell, w in zip(head, widths, strict=True))]
        lines.append("-|-".join("-" * w for w in widths))
        lines += [
            " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            for row in self.rows
        ]
        return "\n".join(lines)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Served]:
    with serve("emulator", new_api_key()) as served:
        yield served


@pytest.fixture(scope="module")
def minimal() -> Iterator[Served]:
    with serve("minimal", new_api_key()) as served:
        yield served


@pytest.fixture(autouse=True)
def _quiet_polls() -> Iterator[None]:
    """One log line per poll would flood the terminal: every poller is measured without it."""
    with loads.logs_at(logging.WARNING):
        yield


@contextmanager
def _answers_late(served: Served, seconds: float) -> Iterator[None]:
    """The emulator adds ``seconds`` to every API answer until the block ends."""
    faults = f"{served.base_url}/_emulator/faults"
    httpx.patch(faults, json={"latency_seconds": seconds}).raise_for_status()
    try:
        yield
    finally:
        httpx.patch(faults, json={"latency_seconds": 0.0}).raise_for_status()


def _server_cost(served: Served, path: str) -> tuple[float, float]:
    """Requests/s and server CPU µs per request of GET ``path``."""
    cpu = served.cpu_seconds()
    count = asyncio.run(loads.hammer(served.base_url, served.api_key, path, seconds=HAMMER_SECONDS))
    return count / HAMMER_SECONDS, (served.cpu_seconds() - cpu) / count * 1e6


def _servers(table: Table, emulator: Served, minimal: Served) -> list[str]:
    ids: dict[str, list[str]] = {}
    for name, served in (("emulator", emulator), ("minimal", minimal)):
        ids[name] = asyncio.run(loads.seed(served.base_url, served.api_key, 1))
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for stored in (0, STORED):
        if stored:
            for name, served in (("emulator", emulator), ("minimal", minimal)):
                cpu = served.cpu_seconds()
                ids[name] += asyncio.run(loads.seed(served.base_url, served.api_key, stored))
                per_create = (served.cpu_seconds() - cpu) / stored * 1e6
                results[(f"{name} create", stored)] = (0.0, per_create)
        for name, served in (("emulator", emulator), ("minimal", minimal)):
            path = f"/api/v1/generations/{ids[name][0]}"
            results[(name, stored)] = _server_cost(served, path)
    for stored in (0, STORED):
        rps, cpu = results[("emulator", stored)]
        floor_rps, floor_cpu = results[("minimal", stored)]
        table.add(
            f"emulator GET status, {stored:,} stored: req/s | CPU/req",
            f"{rps:,.0f} | {cpu:,.0f} µs",
            f"{rps / floor_rps:.2f}x | {cpu / floor_cpu:.2f}x minimal FastAPI "
            f"({floor_rps:,.0f} | {floor_cpu:,.0f} µs)",
            "CPU/req <= 2x minimal",
        )
    create, floor_create = results[("emulator create", STORED)], results[("minimal create", STORED)]
    table.add(
        f"emulator create ({STORED:,} in a row): CPU/req",
        f"{create[1]:,.0f} µs",
        f"{create[1] / floor_create[1]:.2f}x minimal ({floor_create[1]:,.0f} µs)",
        "independent of history",
    )
    return ids["emulator"]


def _connections(emulator: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "rivya", "host": emulator.base_url, "password": emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_HTTP_BENCH", emulator.base_url)


def _poll_cpu(table: Table, emulator: Served, task_id: str) -> None:
    from httpx_aiohttp import AiohttpTransport

    url, key = emulator.base_url, emulator.api_key
    kwargs: dict[str, Any] = {"pollers": POLLERS, "seconds": POLL_SECONDS}

    def count() -> int:
        return loads.polls_served(url)

    runs: dict[str, Any] = {
        "RivyaGenerationTrigger": lambda: loads.ours(url, task_id, **kwargs),
        "RivyaGenerationTrigger on httpx's own transport": lambda: _ours_on_httpx(url, task_id),
        "bare httpx + httpx-aiohttp transport": lambda: loads.bare_httpx(
            url, key, task_id, transport=AiohttpTransport(), **kwargs
        ),
        # The same loop on the transport our async client uses (aiohttp's ClientSession).
        "bare httpx + our aiohttp transport": lambda: loads.bare_httpx(
            url, key, task_id, transport=async_transport(pool_size=POLLERS), **kwargs
        ),
        "bare httpx.AsyncClient": lambda: loads.bare_httpx(url, key, task_id, **kwargs),
        "HttpSensorTrigger (http provider)": lambda: loads.http_sensor_trigger(key, **kwargs),
        "bare aiohttp session": lambda: loads.bare_aiohttp(url, key, task_id, **kwargs),
        # What a poll off httpx could reach at best: aiohttp, and the answer typed as ours is.
        "bare aiohttp session + GenerationTask": lambda: loads.bare_aiohttp(
            url, key, task_id, typed=True, **kwargs
        ),
    }
    measured = {}
    for name, run in runs.items():
        # HttpSensorTrigger's hook logs a warning at each try on the unknown task (thousands of
        # lines before the table); every poller is measured without its log lines.
        with loads.logs_at(logging.ERROR):
            measured[name] = loads.cpu_per_call(run, count)
    floor = measured["bare httpx + httpx-aiohttp transport"][0]
    ours_floor = measured["bare httpx + our aiohttp transport"][0]
    best = min(cpu for cpu, _ in measured.values())
    for name, (cpu, polls) in measured.items():
        table.add(
            f"CPU per status poll: {name}",
            f"{cpu:,.0f} µs ({polls:,} polls)",
            f"{cpu / floor:.2f}x | {cpu / ours_floor:.2f}x bare httpx on httpx-aiohttp | on "
            f"ours, {cpu / best:.2f}x best",
            "<= 0.75x bare httpx, <= 1.5x best" if name == "RivyaGenerationTrigger" else "",
        )
    objects = _httpx_objects_cpu(url, key, task_id)
    table.add(
        "CPU per status poll: its httpx Request and Response alone, no I/O",
        f"{objects:,.0f} µs",
        f"{objects / best:.2f}x best",
        "",
    )


def _httpx_objects_cpu(url: str, key: str, task_id: str, rounds: int = 20_000) -> float:
    """CPU µs to build one poll's ``httpx.Request`` and its read ``httpx.Response``, as ours do.

    What keeping httpx's API costs each poll, whatever the transport under it.
    """
    answer = httpx.get(f"{url}/api/v1/generations/{task_id}", headers=loads.headers(key))
    answer.raise_for_status()
    client = AsyncRivyaClient(api_key=key, base_url=url)
    call = GENERATION.call(path_id=task_id)
    started = time.process_time()
    for _ in range(rounds):
        request = client._build_request(call)
        read_response(200, answer.headers.raw, [answer.content], request=request, extensions={})
    cpu = time.process_time() - started
    asyncio.run(client.aclose())
    return cpu / rounds * 1e6


async def _ours_on_httpx(url: str, task_id: str) -> None:
    """Our trigger with its async client on httpx's own transport (the transport it had before)."""
    import httpx

    from rivya_provider.client import aio

    original = aio.async_transport  # type: ignore[attr-defined]
    aio.async_transport = lambda **_: httpx.AsyncHTTPTransport()  # type: ignore[attr-defined]
    try:
        await loads.ours(url, task_id, pollers=POLLERS, seconds=POLL_SECONDS)
    finally:
        aio.async_transport = original  # type: ignore[attr-defined]


def _scale(table: Table, emulator: Served, ids: list[str]) -> None:
    # Every full pass walks the whole process: what a pass costs before any trigger exists is
    # the floor of the lag it can cause.
    here, here_objects = loads.full_pass_ms()
    airflow, airflow_objects = loads.triggerer_full_pass_ms()
    table.add(
        "full GC pass before any trigger: this process | Airflow's triggerer alone",
        f"{here:.0f} ms | {airflow:.0f} ms",
        f"{here_objects:,} | {airflow_objects:,} tracked objects",
    )
    runs = [
        (1000, False, "p99 < 50 ms"),
        (1000, True, "p99 < 50 ms"),
        (5000, False, "p99 < 100 ms"),
        (5000, True, "p99 < 100 ms"),
    ]
    for size, freeze, goal in runs:
        result = loads.many_triggers(
            emulator.base_url,
            ids[:size],
            seconds=SCALE_SECONDS,
            interval=SCALE_INTERVAL,
            freeze=freeze,
        )
        name = f"{size:,} triggers{', heap frozen' if freeze else ''}"
        pauses = result.full_gc_ms
        table.add(
            f"{name}, one loop, {SCALE_SECONDS:.0f} s: lag p50/p99/max",
            f"{result.lag(0.5):.0f} / {result.lag(0.99):.0f} / {result.lag(1):.0f} ms",
            f"full GC passes: {len(pauses)}, longest {max(pauses, default=0):.0f} ms",
            goal,
        )
        table.add(
            f"{name}: polls made / due",
            f"{result.polls:,} / {result.due:,}",
            f"{result.polls / result.due:.0%}",
            ">= 95 %" if size == 5000 else "",
        )
        if not freeze:
            table.add(
                f"{name}: RSS per trigger | max open sockets",
                f"{result.rss_per_trigger_kb:.1f} KB | {result.max_sockets}",
            )
    # The emulator answers at once; Rivya across a network does not: the shared client then
    # sends more requests at once (docs/performance.md), and its sockets show how many. Any
    # warning of the waits (a failed poll, each logged) stays out of the table.
    with _answers_late(emulator, LATE_ANSWER), loads.logs_at(logging.ERROR):
        late = loads.many_triggers(
            emulator.base_url, ids[:5000], seconds=SCALE_SECONDS, interval=SCALE_INTERVAL
        )
    table.add(
        f"5,000 triggers, answers {LATE_ANSWER * 1000:.0f} ms late: polls made / due",
        f"{late.polls:,} / {late.due:,}",
        f"{late.polls / late.due:.0%}, lag p99 {late.lag(0.99):.0f} ms, {late.max_sockets} sockets",
    )


def _import_ms(module: str) -> float:
    """Milliseconds to import ``module`` in a new process that has imported ``airflow.sdk``.

    Timed inside the process: ``airflow.sdk`` alone varies by more than 100 ms from one start to
    the next, far more than a provider's modules cost, so two whole starts cannot be subtracted.
    """
    timed = (
        "import time, airflow.sdk; started = time.perf_counter(); "
        f"import {module}; print((time.perf_counter() - started) * 1000)"
    )
    times = []
    for _ in range(IMPORT_RUNS):
        out = subprocess.run(
            [sys.executable, "-c", timed], check=True, capture_output=True, text=True
        ).stdout
        times.append(float(out.split()[-1]))
    # The fastest run: the one least disturbed by whatever else the machine does.
    return min(times)


def _imports(table: Table) -> None:
    ours = _import_ms("rivya_provider.operators.generate")
    http = _import_ms("airflow.providers.http.operators.http")
    table.add(
        "import rivya_provider.operators.generate (after airflow.sdk)",
        f"{ours:.0f} ms",
        f"{ours / http:.2f}x the http provider's operator ({http:.0f} ms)",
        "keep it there",
    )


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _fanout(table: Table, tmp_path: Path) -> None:
    from tests.e2e.airflow_processes import run_airflow
    from tests.e2e.resilience import Scenario, counted_emulator, unpause
    from tests.emulator_fixtures import connection_json

    generation = QUEUED + PROCESSING
    dags = Path(__file__).parent / "dags"
    with counted_emulator(
        credits=100_000, queued_seconds=QUEUED, processing_seconds=PROCESSING
    ) as (emulator, _):
        env = {
            "AIRFLOW_CONN_RIVYA_DEFAULT": connection_json(emulator),
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": f"{MIN_HEARTBEAT:g}",
            # All 20 at once, as the goal's 20-way run means: 20 worker slots (the harness
            # default is 4), and all 20 queued in one scheduler loop (Airflow's default
            # max_tis_per_query of 16 leaves 4 for the next loop; 0 means [core] parallelism).
            "AIRFLOW__CORE__PARALLELISM": "20",
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "0",
        }
        with run_airflow(tmp_path / "deployment", dags_folder=dags, extra_env=env) as running:
            runs = (
                # Untimed: a deployment's first run pays for its own warm-up (cold imports, the
                # first parse), which would count against whichever schedule came first.
                ("rivya_fanout_fixed", "warm-up"),
                ("rivya_fanout", "adaptive polls"),
                ("rivya_fanout_fixed", "fixed 5 s polls"),
            )
            for number, (dag_id, label) in enumerate(runs):
                if number:
                    # Airflow's task supervisor can hold a worker slot for up to
                    # min_heartbeat_interval after its task process has exited (it waits out its
                    # select timeout): without the pause, the previous run's last slots would
                    # still be taken when this run's 20 tasks are queued.
                    time.sleep(MIN_HEARTBEAT + 1)
                unpause(running, dag_id)
                scenario = Scenario(
                    deployment=running,
                    dag_id=dag_id,
                    run_id=f"bench_{number}",
                    output_dir=tmp_path / str(number),
                )
                scenario.trigger()
                scenario.wait(timeout=600)
                assert scenario.dag_run["state"] == "success", scenario.explain()
                if label == "warm-up":
                    continue
                # As Airflow timed the run, from its creation to its end: this test reads the
                # run's state every 0.5 s, which would add up to that much.
                seconds = _seconds_between(
                    scenario.dag_run["queued_at"], scenario.dag_run["end_date"]
                )
                table.add(
                    f"20-way mapped run, real scheduler (parallelism 20), {label}",
                    f"{seconds:.1f} s",
                    f"{seconds / generation:.1f}x generation time ({generation:.1f} s)",
                    "<= 2.5x" if label == "adaptive polls" else "",
                )


def test_scale_table(
    emulator: Served, minimal: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = Table()
    print()
    started = time.monotonic()
    # Measure the provider as installed from its wheel, whose modules pip and uv compile on
    # install. An editable checkout has no bytecode, and where PYTHONDONTWRITEBYTECODE is set,
    # every Airflow process would compile every module again (about 70 ms per task process).
    compileall.compile_dir(Path(rivya_provider.__file__).parent, quiet=1)
    _connections(emulator, monkeypatch)
    ids = _servers(table, emulator, minimal)
    _poll_cpu(table, emulator, ids[0])
    _scale(table, emulator, ids)
    _imports(table)
    if not os.environ.get("RIVYA_BENCH_SKIP_FANOUT"):
        _fanout(table, tmp_path)
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(
        f"\nScale and latency ({os.cpu_count()} cores, load average {load}, "
        f"{time.monotonic() - started:.0f} s):"
    )
    print(table.render())
    assert len(table.rows) >= 10
