"""Adaptive polls against a real emulator: a finished image is noticed before a fixed tick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rivya_provider.client import AsyncRivyaClient, GenerationRequest
from rivya_provider.client.polling.estimates import ESTIMATES
from rivya_provider.emulator import RunningEmulator
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.links import RivyaResultLink
from rivya_provider.triggers.events import read_event
from rivya_provider.triggers.generation import RivyaGenerationTrigger
from tests.airflow_compat import import_string
from tests.emulator_fixtures import EmulatorFactory, connection_json
from tests.unit.airflow.conftest import DEFAULT_CONN_ENV
from tests.unit.airflow.test_idempotency import FakeTaskInstance

GET = "GET /api/v1/generations/{taskId}"
MODEL = "flux-2-flex"
#: The emulator's generation time (queued + processing), well under a fixed 5 s tick.
QUEUED, PROCESSING = 0.2, 1.0


@pytest.fixture
def quick(emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    running = emulator_factory(queued_seconds=QUEUED, processing_seconds=PROCESSING)
    monkeypatch.setenv(DEFAULT_CONN_ENV, connection_json(running, max_attempts=1))
    return running


@pytest.fixture
async def triggerer(quick: RunningEmulator) -> AsyncIterator[RunningEmulator]:
    """The emulator as ``rivya_default``; the loop's shared client is closed afterwards."""
    yield quick
    client = await RivyaHook().aget_client()
    await client.aclose()


async def _submit(emulator: RunningEmulator) -> str:
    async with AsyncRivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        task = await client.acreate_generation(GenerationRequest(model=MODEL, prompt="a kite"))
    return task.id


def _stored(trigger: RivyaGenerationTrigger) -> RivyaGenerationTrigger:
    """Store the trigger as Airflow does (trigger row kwargs) and rebuild it by its classpath."""
    from airflow.models.trigger import Trigger

    row = Trigger.from_object(trigger)
    rebuilt = import_string(row.classpath)(**row.kwargs)
    assert isinstance(rebuilt, RivyaGenerationTrigger)
    return rebuilt


async def _finish(name: str, trigger: RivyaGenerationTrigger, order: list[str]) -> str:
    payloads = [event.payload async for event in _stored(trigger).run()]
    order.append(name)
    (payload,) = payloads
    return read_event(payload).status


async def test_an_adaptive_wait_notices_a_finished_image_before_the_fixed_tick(
    triggerer: RunningEmulator,
) -> None:
    fixed_id, adaptive_id = await _submit(triggerer), await _submit(triggerer)
    submitted = time.time()
    deadline = submitted + 60
    # Two generations of the same model submitted together: one waited for on the fixed 5 s
    # tick, one adaptively with the generation time this process has learnt.
    fixed = RivyaGenerationTrigger(
        generation_id=fixed_id, deadline=deadline, poll_interval=5.0, first_delay=5.0
    )
    adaptive = RivyaGenerationTrigger(
        generation_id=adaptive_id,
        deadline=deadline,
        poll_interval=None,
        first_delay=0.8 * (QUEUED + PROCESSING),
        model=MODEL,
        expected_seconds=QUEUED + PROCESSING,
        submitted_at=submitted,
    )
    order: list[str] = []
    statuses = await asyncio.gather(
        _finish("fixed", fixed, order), _finish("adaptive", adaptive, order)
    )
    assert list(statuses) == ["success", "success"]
    assert order == ["adaptive", "fixed"]
    # The fixed wait polled once (at its first tick); the adaptive one a few times, not a flood.
    assert 2 <= triggerer.counters()["requests"][GET] <= 1 + 4
    # What the adaptive wait saw is learnt for the next waits of this model in the process.
    learnt = ESTIMATES.get(base_url=triggerer.base_url, model=MODEL)
    assert learnt is not None
    assert 0 < learnt < 5.0


async def test_a_wait_without_an_estimate_learns_one_from_the_triggerers_own_waits(
    triggerer: RunningEmulator,
) -> None:
    task_id = await _submit(triggerer)
    trigger = RivyaGenerationTrigger(
        generation_id=task_id,
        deadline=time.time() + 60,
        poll_interval=None,
        model=MODEL,
        submitted_at=time.time(),
    )
    order: list[str] = []
    assert await _finish("only", trigger, order) == "success"
    assert ESTIMATES.get(base_url=triggerer.base_url, model=MODEL) is not None


def _operator(**kwargs: Any) -> Any:
    from rivya_provider.operators.generate import RivyaGenerateOperator

    return RivyaGenerateOperator(
        task_id="generate", model=MODEL, prompt="a lighthouse at dawn", deferrable=True, **kwargs
    )


def _context() -> dict[str, Any]:
    return {"ti": FakeTaskInstance(try_number=1), "run_id": "manual__unit"}


def test_a_quick_model_finishes_in_the_worker_without_deferring(quick: RunningEmulator) -> None:
    ESTIMATES.observe(base_url=quick.base_url, model=MODEL, seconds=QUEUED + PROCESSING)
    context = _context()
    manifest = _operator().execute(context)
    assert manifest["status"] == "succeeded"
    # The first poll comes just before the expected end; at most a couple more after it.
    assert 1 <= quick.counters()["requests"][GET] <= 3
    # The link: empty until there is a result (a try that fails early shows none), then the
    # result; nothing pushed in between.
    link = RivyaResultLink().xcom_key
    assert [value for key, value in context["ti"].pushes if key == link] == [
        "",
        manifest["primary_url"],
    ]


def test_a_model_known_to_be_slow_defers_at_once_and_first_polls_near_its_end(
    quick: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    monkeypatch.setenv("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "5")

    quick.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=60)
    ESTIMATES.observe(base_url=quick.base_url, model=MODEL, seconds=40.0)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        _operator().execute(_context())
    _, kwargs = deferred.value.trigger.serialize()
    # No poll spent in the worker: the model takes longer than the worker may wait.
    assert quick.counters()["requests"].get(GET, 0) == 0
    assert 29.0 <= kwargs["first_delay"] <= 30.0  # 80 % of 40 s, capped at 30 s
    assert kwargs["poll_interval"] is None
    assert (kwargs["model"], kwargs["expected_seconds"]) == (MODEL, 40.0)
    assert before - 5 <= kwargs["submitted_at"] <= time.time()
    # Its first poll comes long after [workers] min_heartbeat_interval: nothing to hold back.
    assert kwargs["fire_not_before"] is None


def test_a_model_of_unknown_duration_gets_the_looks_of_its_first_seconds_in_the_worker(
    quick: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    from rivya_provider.client.polling.schedule import UNKNOWN_LOOK_MAX_SECONDS

    quick.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=60)
    operator = _operator()
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(_context())
    held = time.time() - before
    _, kwargs = deferred.value.trigger.serialize()
    # Polls at 2.5, 3.5 and 4.5 s, not every poll of the first 10 s: nothing says it is quick.
    assert quick.counters()["requests"][GET] == 3
    assert UNKNOWN_LOOK_MAX_SECONDS - 1 <= held <= UNKNOWN_LOOK_MAX_SECONDS + 1
    assert kwargs["expected_seconds"] is None
    assert 0 < kwargs["first_delay"] <= 1.5
    # The deferral names the status the last look saw, not the one the create answered (the
    # operator logs through Airflow's structlog, to standard output).
    (deferring,) = [line for line in capsys.readouterr().out.splitlines() if "Deferring" in line]
    assert " is processing; " in deferring, deferring


def test_an_unknown_model_that_ends_just_after_the_first_look_finishes_in_the_worker(
    quick: RunningEmulator,
) -> None:
    # 3 s in all: the look at 2.5 s finds it running, the one at 3.5 s finds it done.
    quick.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=3.0 - QUEUED - PROCESSING)
    manifest = _operator().execute(_context())
    assert manifest["status"] == "succeeded"
    assert quick.counters()["requests"][GET] == 2
    # What the worker saw is learnt: the next task of the model polls near its end.
    learnt = ESTIMATES.get(base_url=quick.base_url, model=MODEL)
    assert learnt is not None
    assert 2.5 <= learnt <= 4.0


def test_polls_count_from_the_creates_answer_and_the_deadline_from_its_first_attempt(
    quick: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    # The first attempt is refused (429, Retry-After 1 s): the generation begins a second later.
    monkeypatch.setenv(DEFAULT_CONN_ENV, connection_json(quick, max_attempts=3))
    quick.set_faults(rate_limited_next=1, slow_task_rate=1.0, slow_task_extra_seconds=60)
    ESTIMATES.observe(base_url=quick.base_url, model=MODEL, seconds=40.0)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        # validate=False: the create is the first request (no catalogue read to take the 429).
        _operator(generation_timeout=600, validate=False).execute(_context())
    _, kwargs = deferred.value.trigger.serialize()
    assert quick.counters()["requests"]["POST /api/v1/generations"] == 2
    # The trigger's schedule (and what it learns) starts when Rivya answered ...
    assert before + 1.0 <= kwargs["submitted_at"] <= time.time()
    # ... while the deadline still counts from the first attempt: a retry never extends it.
    assert before <= kwargs["deadline"] - 600 < before + 1.0
