"""The deferrable wait: trigger serialisation, a real run against the emulator, and its event."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest

from rivya_provider.client import (
    AsyncRivyaClient,
    AuthenticationError,
    GenerationFailedError,
    GenerationRequest,
    GenerationTask,
    GenerationTimeoutError,
    InsufficientCreditsError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RivyaAPIError,
    ServerError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    ValidationFailedError,
)
from rivya_provider.emulator import RunningEmulator
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.triggers import heap, wakeups
from rivya_provider.triggers.events import GenerationEvent, read_event
from rivya_provider.triggers.generation import RivyaGenerationTrigger
from tests.airflow_compat import import_string
from tests.emulator_fixtures import EmulatorFactory, connection_json
from tests.loop_timers import record_timers
from tests.unit.airflow.conftest import DEFAULT_CONN_ENV

TRIGGER_PATH = "rivya_provider.triggers.generation.RivyaGenerationTrigger"
GET = "GET /api/v1/generations/{taskId}"
REQUEST = GenerationRequest(model="flux-2-flex", prompt="a lighthouse at dawn")
TASK_JSON: dict[str, Any] = {
    "id": "task_abc",
    "status": "succeeded",
    "model": "flux-2-flex",
    "reserved_credits": 14,
    "final_credits": 14,
    "created_at": "2026-05-11T00:00:00.000Z",
    "updated_at": "2026-05-11T00:00:04.000Z",
    "result": {"primary_url": "https://cdn.example/a.png", "urls": ["https://cdn.example/a.png"]},
    "error": None,
}


@pytest.fixture
async def triggerer(rivya_default: RunningEmulator) -> AsyncIterator[RunningEmulator]:
    """``rivya_default`` points at the emulator; the loop's shared client is closed afterwards."""
    yield rivya_default
    client = await RivyaHook().aget_client()
    await client.aclose()


async def _submit(emulator: RunningEmulator) -> str:
    async with AsyncRivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        task = await client.acreate_generation(REQUEST)
    return task.id


def _trigger(generation_id: str, **kwargs: Any) -> RivyaGenerationTrigger:
    # The operator's default deadline: its polls are bounded by the loop's sweep, as in a
    # triggerer (a deadline within a minute gives each poll a timer of its own).
    settings: dict[str, Any] = {"deadline": time.time() + 1800, "poll_interval": 0.02}
    return RivyaGenerationTrigger(generation_id=generation_id, **{**settings, **kwargs})


def _as_the_triggerer_sees_it(trigger: RivyaGenerationTrigger) -> RivyaGenerationTrigger:
    """Store the trigger as Airflow does (trigger row kwargs) and rebuild it by its classpath."""
    from airflow.models.trigger import Trigger

    row = Trigger.from_object(trigger)
    rebuilt = import_string(row.classpath)(**row.kwargs)
    assert isinstance(rebuilt, RivyaGenerationTrigger)
    return rebuilt


async def _events(trigger: RivyaGenerationTrigger) -> list[dict[str, Any]]:
    """Run the trigger as the triggerer does; collect every event until the generator ends."""
    return [event.payload async for event in _as_the_triggerer_sees_it(trigger).run()]


async def _one_event(trigger: RivyaGenerationTrigger) -> GenerationEvent:
    payloads = await _events(trigger)
    assert len(payloads) == 1, payloads
    (payload,) = payloads
    json.dumps(payload)  # plain JSON, as the triggerer stores it
    return read_event(payload)


def _gets(emulator: RunningEmulator) -> int:
    count: int = emulator.counters()["requests"].get(GET, 0)
    return count


def _is_plain_json(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain_json(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


# --- serialisation -----------------------------------------------------------------------------


def test_serialize_gives_the_dotted_path_and_plain_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "rvya_sk_trigger_secret_42"
    monkeypatch.setenv(
        DEFAULT_CONN_ENV, json.dumps({"conn_type": "rivya", "host": "x", "password": secret})
    )
    carry = {"request": {"model": "flux-2-flex", "params": {"aspectRatio": "16:9"}}}
    trigger = RivyaGenerationTrigger(generation_id="task_abc", deadline=1_800_000_000, carry=carry)
    path, kwargs = trigger.serialize()
    assert path == TRIGGER_PATH
    assert kwargs == {
        "generation_id": "task_abc",
        "deadline": 1_800_000_000.0,
        "rivya_conn_id": "rivya_default",
        "poll_interval": 5.0,
        "first_delay": 0.0,
        "carry": carry,
        "fire_not_before": None,
        "model": None,
        "expected_seconds": None,
        "submitted_at": None,
    }
    assert _is_plain_json(kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert secret not in json.dumps(kwargs)
    assert secret not in repr(trigger)


def test_the_stored_trigger_row_holds_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.models.trigger import Trigger

    secret = "rvya_sk_trigger_secret_43"
    monkeypatch.setenv(
        DEFAULT_CONN_ENV, json.dumps({"conn_type": "rivya", "host": "x", "password": secret})
    )
    row = Trigger.from_object(_trigger("task_abc"))
    assert secret not in json.dumps(row.kwargs)
    assert secret not in row.encrypted_kwargs


def test_the_rebuilt_trigger_serialises_the_same() -> None:
    trigger = _trigger("task_abc", carry={"origin": "submitted"}, first_delay=2.5)
    rebuilt = _as_the_triggerer_sees_it(trigger)
    assert rebuilt is not trigger
    assert rebuilt.serialize() == trigger.serialize()


# --- running the re-created trigger against the emulator ---------------------------------------


async def test_success_event_carries_the_task(triggerer: RunningEmulator) -> None:
    task_id = await _submit(triggerer)
    carry = {"origin": "submitted", "idempotency_key": "k-0"}
    event = await _one_event(_trigger(task_id, carry=carry))
    assert event.status == "success"
    assert event.generation_id == task_id
    assert event.carry == carry
    task = event.result()
    assert isinstance(task, GenerationTask)
    assert task.id == task_id
    assert task.status == "succeeded"
    assert task.result_urls
    assert _gets(triggerer) >= 1


@pytest.fixture
def fresh_heap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's heap as if no trigger had frozen it yet; unfrozen afterwards."""
    monkeypatch.setattr(heap, "_done", False)
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_the_heap_is_left_alone_by_default(
    triggerer: RunningEmulator, fresh_heap: None
) -> None:
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    event = await _one_event(_trigger(await _submit(triggerer)))
    assert event.status == "success"
    assert (gc.get_freeze_count(), gc.get_threshold()) == (frozen, thresholds)


async def test_the_first_trigger_freezes_the_heap_once_when_asked(
    triggerer: RunningEmulator, fresh_heap: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__RIVYA__FREEZE_TRIGGERER_HEAP", "True")
    task_id = await _submit(triggerer)
    assert (await _one_event(_trigger(task_id))).status == "success"
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # Airflow and the provider, loaded before the first trigger ran
    assert gc.get_threshold()[2] == heap.OLDEST_THRESHOLD  # full passes ten times rarer
    assert (await _one_event(_trigger(task_id))).status == "success"
    # Once per process: a second freeze would take in everything made since. (The count may
    # drop: a frozen object is still freed once nothing refers to it.)
    assert gc.get_freeze_count() <= frozen


async def test_first_delay_is_waited_before_the_first_poll(triggerer: RunningEmulator) -> None:
    task_id = await _submit(triggerer)
    started = time.monotonic()
    event = await _one_event(_trigger(task_id, first_delay=0.3))
    assert event.status == "success"
    assert time.monotonic() - started >= 0.3
    # By then the task had ended: a single poll was enough.
    assert _gets(triggerer) == 1


async def test_failed_generation_gives_a_failed_event(triggerer: RunningEmulator) -> None:
    triggerer.set_faults(fail_next_tasks=1)
    task_id = await _submit(triggerer)
    event = await _one_event(_trigger(task_id))
    assert event.status == "failed"
    assert event.code == "generation_failed"
    assert event.message
    with pytest.raises(GenerationFailedError) as caught:
        event.result()
    assert caught.value.task_id == task_id
    assert caught.value.code == "generation_failed"


async def test_a_passed_deadline_times_out_at_once(triggerer: RunningEmulator) -> None:
    # Still processing when the trigger polls, however slowly the Connection is read.
    triggerer.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=600)
    task_id = await _submit(triggerer)
    started = time.monotonic()
    event = await _one_event(_trigger(task_id, deadline=time.time() - 1, first_delay=120))
    # The first delay is cut by the deadline too. The margin is wide: on Airflow 3.0 the
    # Connection is read in a thread, which takes seconds on a busy machine.
    assert time.monotonic() - started < 60
    assert event.status == "timeout"
    assert event.generation_id == task_id
    with pytest.raises(GenerationTimeoutError) as caught:
        event.result()
    assert caught.value.task_id == task_id


async def test_a_generation_that_ended_before_a_passed_deadline_is_not_a_timeout(
    emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # E.g. the triggerer was down past the deadline while the generation finished (and was paid).
    instant = emulator_factory(queued_seconds=0, processing_seconds=0)
    monkeypatch.setenv(DEFAULT_CONN_ENV, connection_json(instant))
    task_id = await _submit(instant)
    event = await _one_event(_trigger(task_id, deadline=time.time() - 60))
    assert event.status == "success"
    assert event.result().id == task_id
    await (await RivyaHook().aget_client()).aclose()


async def test_the_deadline_ends_a_long_wait(
    emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = emulator_factory(queued_seconds=0, processing_seconds=60)
    monkeypatch.setenv(DEFAULT_CONN_ENV, connection_json(slow, max_attempts=1))
    task_id = await _submit(slow)
    started = time.monotonic()
    event = await _one_event(_trigger(task_id, deadline=time.time() + 0.4, poll_interval=10))
    elapsed = time.monotonic() - started
    # The 10 s poll interval is cut short by the deadline.
    assert 0.3 < elapsed < 5
    assert event.status == "timeout"
    assert event.last_status == "processing"
    assert event.waited_seconds is not None
    assert event.waited_seconds >= 0.3
    with pytest.raises(GenerationTimeoutError) as caught:
        event.result()
    assert caught.value.last_status == "processing"
    await (await RivyaHook().aget_client()).aclose()


async def test_a_sleeping_wait_keeps_no_answer_of_its_polls(
    emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thousands of waits sleep in one triggerer: what each keeps, every full pass of the
    # collector walks.
    slow = emulator_factory(queued_seconds=0, processing_seconds=60)
    monkeypatch.setenv(DEFAULT_CONN_ENV, connection_json(slow))
    pauses: list[float] = []
    asleep = asyncio.Event()
    sleep = wakeups.sleep

    def noted_sleep(seconds: float) -> Awaitable[None]:
        pauses.append(seconds)
        if len(pauses) == 2:  # the first is the (zero) first delay, the second follows a poll
            asleep.set()
        return sleep(seconds)

    monkeypatch.setattr(wakeups, "sleep", noted_sleep)
    task_id = await _submit(slow)
    waiting = asyncio.ensure_future(_one_event(_trigger(task_id, poll_interval=30)))
    try:
        await asyncio.wait_for(asleep.wait(), 10)
        assert _gets(slow) == 1
        gc.collect()
        # type(), not isinstance(): that asks some of Airflow's lazy objects their __class__,
        # which imports modules (Airflow 3.0 and 3.1).
        kept = [o for o in gc.get_objects() if type(o) is GenerationTask and o.id == task_id]
        assert kept == []
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await (await RivyaHook().aget_client()).aclose()


async def test_waits_polling_in_one_loop_share_their_wake_up_timers(
    emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A timer per sleep between polls, with its copy of the task's context, is what thousands
    # of waits kept alive into the collector's oldest generation.
    slow = emulator_factory(queued_seconds=0, processing_seconds=60)
    monkeypatch.setenv(DEFAULT_CONN_ENV, connection_json(slow))
    timers = record_timers(monkeypatch)
    task_id = await _submit(slow)
    waits = [
        asyncio.ensure_future(_one_event(_trigger(task_id, poll_interval=0.2))) for _ in range(40)
    ]
    try:
        await asyncio.sleep(1.5)
        # Counted before the waits are cancelled: on Python 3.10 a cancellation can be lost in
        # asyncio.wait_for, and that wait then goes on polling alone.
        polls = _gets(slow)
        slots = [t for t in timers if getattr(t.callback, "__func__", None) is wakeups._Slots._wake]
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        await (await RivyaHook().aget_client()).aclose()
    assert polls >= 40 * 2  # each polled, slept and polled again
    # Sleeps ending within the same 10 ms share one timer (test_wakeups.py counts how many).
    assert 0 < len(slots) < polls


async def test_unknown_task_gives_an_error_with_code_and_request_id(
    triggerer: RunningEmulator,
) -> None:
    event = await _one_event(_trigger("task_does_not_exist"))
    assert event.status == "error"
    assert event.code == "not_found"
    assert event.http_status == 404
    assert event.request_id is not None
    assert event.request_id.startswith("req_")
    assert _gets(triggerer) == 1  # a 404 is not worth a second poll
    with pytest.raises(NotFoundError) as caught:
        event.result()
    assert caught.value.code == "not_found"
    assert caught.value.request_id == event.request_id


async def test_transient_errors_never_end_the_wait_before_the_deadline(
    triggerer: RunningEmulator,
) -> None:
    task_id = await _submit(triggerer)
    triggerer.set_faults(server_errors_next=6)
    event = await _one_event(_trigger(task_id))
    assert event.status == "success"
    assert _gets(triggerer) >= 7  # with max_attempts=1 in the connection: one request per poll


async def test_transient_errors_until_the_deadline_end_in_a_timeout_naming_them(
    triggerer: RunningEmulator,
) -> None:
    task_id = await _submit(triggerer)
    triggerer.set_faults(server_error_rate=1.0)
    event = await _one_event(_trigger(task_id, deadline=time.time() + 0.5))
    assert event.status == "timeout"
    assert event.last_status is not None
    assert "last poll failed" in event.last_status
    assert "internal_error" in event.last_status
    # A timeout is retried by Airflow: the next try re-attaches to the (maybe paid) generation.
    with pytest.raises(GenerationTimeoutError):
        event.result()


async def test_a_rate_limited_poll_waits_out_retry_after(triggerer: RunningEmulator) -> None:
    task_id = await _submit(triggerer)
    triggerer.set_faults(rate_limited_next=1, retry_after_seconds=1)
    started = time.monotonic()
    event = await _one_event(_trigger(task_id, poll_interval=0.01))
    assert event.status == "success"
    assert time.monotonic() - started >= 0.95


async def test_an_unreachable_server_is_polled_until_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(
        DEFAULT_CONN_ENV,
        json.dumps(
            {
                "conn_type": "rivya",
                "host": f"127.0.0.1:{port}",
                "password": "rvya_sk_x",
                "extra": {"max_attempts": 1},
            }
        ),
    )
    event = await _one_event(_trigger("task_abc", deadline=time.time() + 0.5))
    assert event.status == "timeout"
    assert event.last_status is not None
    assert "ConnectError" in event.last_status
    await (await RivyaHook().aget_client()).aclose()


async def test_a_connection_without_key_ends_with_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DEFAULT_CONN_ENV, json.dumps({"conn_type": "rivya", "host": "x"}))
    event = await _one_event(_trigger("task_abc"))
    assert event.status == "error"
    assert event.message is not None
    assert "password" in event.message
    assert event.code == "invalid_input"
    # Retrying cannot fix the Connection: the resumed task fails without using its retries.
    with pytest.raises(InvalidInputError, match="password"):
        event.result()


# --- the event contract --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "success", ["success"], 42])
def test_read_event_rejects_non_dicts(raw: Any) -> None:
    with pytest.raises(UnexpectedResponseError, match="expected a Rivya generation event"):
        read_event(raw)


def test_read_event_rejects_unknown_fields() -> None:
    raw = {"status": "success", "generation_id": "task_abc", "task": TASK_JSON, "surprise": 1}
    with pytest.raises(UnexpectedResponseError, match="surprise"):
        read_event(raw)


@pytest.mark.parametrize(
    "raw",
    [
        {"status": "exploded", "generation_id": "task_abc"},
        {"status": "success"},
        {"status": "error", "generation_id": "task_abc", "http_status": "many"},
    ],
)
def test_read_event_rejects_malformed_events(raw: dict[str, Any]) -> None:
    with pytest.raises(UnexpectedResponseError, match="not a Rivya generation event"):
        read_event(raw)


def test_read_event_round_trips_and_accepts_an_event() -> None:
    event = GenerationEvent(
        status="timeout", generation_id="task_abc", last_status="queued", waited_seconds=3.5
    )
    assert read_event(event.model_dump(mode="json")) == event
    assert read_event(event) is event


def test_success_result_returns_the_task() -> None:
    task = GenerationEvent(status="success", generation_id="task_abc", task=TASK_JSON).result()
    assert isinstance(task, GenerationTask)
    assert task.id == "task_abc"
    assert task.final_credits == 14


def test_success_without_a_task_is_not_a_result() -> None:
    with pytest.raises(UnexpectedResponseError, match="task_abc"):
        GenerationEvent(status="success", generation_id="task_abc").result()


def test_failed_result_raises_with_code_and_message() -> None:
    event = GenerationEvent(
        status="failed", generation_id="task_abc", code="nsfw_blocked", message="not allowed"
    )
    with pytest.raises(GenerationFailedError) as caught:
        event.result()
    assert (caught.value.task_id, caught.value.code, caught.value.message) == (
        "task_abc",
        "nsfw_blocked",
        "not allowed",
    )


def test_finished_describes_a_failure_without_details() -> None:
    failed = GenerationTask.model_validate(
        {**TASK_JSON, "status": "failed", "result": None, "final_credits": 0}
    )
    event = GenerationEvent.finished(failed)
    assert (event.status, event.code) == ("failed", "generation_failed")
    assert event.message


def test_timeout_result_raises_with_last_status() -> None:
    event = GenerationEvent(
        status="timeout", generation_id="task_abc", last_status="queued", waited_seconds=12.0
    )
    with pytest.raises(GenerationTimeoutError) as caught:
        event.result()
    assert (caught.value.last_status, caught.value.waited_seconds) == ("queued", 12.0)


@pytest.mark.parametrize(
    ("code", "http_status", "error_class"),
    [
        ("api_key_invalid", 401, AuthenticationError),
        ("api_key_revoked", 401, AuthenticationError),
        ("api_scope_denied", 403, PermissionDeniedError),
        ("validation_failed", 400, ValidationFailedError),
        ("not_found", 404, NotFoundError),
        ("insufficient_credits", 402, InsufficientCreditsError),
        ("rate_limited", 429, RateLimitedError),
        ("public_api_disabled", 503, ServiceUnavailableError),
        ("internal_error", 500, ServerError),
        ("brand_new_code", 418, RivyaAPIError),
    ],
)
def test_error_result_raises_the_class_of_its_code(
    code: str, http_status: int, error_class: type[RivyaAPIError]
) -> None:
    event = GenerationEvent(
        status="error",
        generation_id="task_abc",
        code=code,
        message="nope",
        request_id="req_123",
        http_status=http_status,
    )
    with pytest.raises(RivyaAPIError) as caught:
        event.result()
    assert type(caught.value) is error_class
    assert caught.value.code == code
    assert caught.value.request_id == "req_123"
    assert caught.value.status_code == http_status
    assert "req_123" in str(caught.value)


def test_error_without_http_status_raises_unexpected_response_with_its_code() -> None:
    event = GenerationEvent(
        status="error", generation_id="task_abc", code="SomethingOdd", message="odd"
    )
    with pytest.raises(UnexpectedResponseError, match="SomethingOdd: odd"):
        event.result()


def test_events_are_frozen() -> None:
    event = GenerationEvent(status="success", generation_id="task_abc", task=TASK_JSON)
    with pytest.raises(ValueError, match="frozen"):
        event.status = "failed"  # type: ignore[misc]


async def test_a_result_found_early_is_held_back_only_for_the_rest_of_the_window(
    triggerer: RunningEmulator,
) -> None:
    task_id = await _submit(triggerer)
    await asyncio.sleep(0.3)  # the fast schedule has finished it by now
    started = time.monotonic()
    trigger = _trigger(task_id, fire_not_before=time.time() + 0.5)
    event = await _one_event(trigger)
    held = time.monotonic() - started
    assert event.status == "success"
    assert held >= 0.45  # Airflow 3.3: no event within min_heartbeat_interval of deferring
    assert _gets(triggerer) == 1  # polled at once, not after the window
