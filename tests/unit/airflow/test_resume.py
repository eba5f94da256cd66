"""Task memory and submit-or-resume, against a real emulator: one paid generation per instance."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from rivya_provider.client import (
    GenerationRequest,
    RetryPolicy,
    RivyaClient,
    TaskStatus,
)
from rivya_provider.client.rules.replays import SENT_KEYS
from rivya_provider.emulator import RunningEmulator
from rivya_provider.idempotency import KeyChain, input_fingerprint
from rivya_provider.resume import (
    GENERATION_KEY,
    UPLOADS_KEY,
    StoredGeneration,
    TaskMemory,
    submit_or_resume,
)
from tests.emulator_fixtures import EmulatorFactory
from tests.unit.airflow.conftest import FakeStateStore

CREATE = "POST /api/v1/generations"
GET = "GET /api/v1/generations/{taskId}"
REQUEST = GenerationRequest(model="flux-2-flex", prompt="a lighthouse at dawn")


def _chain(prompt: str = "a lighthouse at dawn") -> KeyChain:
    return KeyChain.for_task_instance(
        dag_id="unit",
        task_id="generate",
        run_id="manual__1",
        map_index=-1,
        fingerprint=input_fingerprint(model="flux-2-flex", prompt=prompt, params={}),
    )


CHAIN = _chain()


@pytest.fixture
def instant(emulator_factory: EmulatorFactory) -> RunningEmulator:
    """An emulator whose tasks end as soon as they are read."""
    return emulator_factory(queued_seconds=0, processing_seconds=0)


def _client(emulator: RunningEmulator) -> RivyaClient:
    return RivyaClient(
        api_key=emulator.api_key, base_url=emulator.base_url, retry=RetryPolicy(max_attempts=1)
    )


@pytest.fixture
def client(instant: RunningEmulator) -> Iterator[RivyaClient]:
    with _client(instant) as rivya:
        yield rivya


def _creates(emulator: RunningEmulator) -> int:
    count: int = emulator.counters()["requests"].get(CREATE, 0)
    return count


# --- TaskMemory --------------------------------------------------------------------------------


def test_memory_records_and_finds_the_generation_of_its_chain(
    state_store: FakeStateStore,
) -> None:
    memory = TaskMemory(state_store)
    assert memory.durable
    assert memory.generation(CHAIN) is None
    memory.remember_generation(CHAIN, 2, "task_abc", 1778457600.5)
    assert memory.generation(CHAIN) == StoredGeneration(
        chain_id=CHAIN.chain_id, link=2, task_id="task_abc", submitted_at=1778457600.5
    )
    assert state_store.get(GENERATION_KEY) == {
        "chain_id": CHAIN.chain_id,
        "link": 2,
        "task_id": "task_abc",
        "submitted_at": 1778457600.5,
    }
    # A later try with other inputs does not pick up this record.
    assert memory.generation(_chain("another prompt")) is None
    # A new TaskMemory over the same store (the next try) finds it.
    assert TaskMemory(state_store).generation(CHAIN) is not None


@pytest.mark.parametrize("garbage", ["task_abc", {"chain_id": "x"}, {"link": "first"}, [1, 2]])
def test_memory_ignores_an_unreadable_record(
    state_store: FakeStateStore, caplog: pytest.LogCaptureFixture, garbage: object
) -> None:
    state_store.set(GENERATION_KEY, garbage)
    with caplog.at_level(logging.WARNING, logger="rivya_provider.resume"):
        assert TaskMemory(state_store).generation(CHAIN) is None
    assert GENERATION_KEY in caplog.text


def test_memory_keeps_uploads_by_content_hash(state_store: FakeStateStore) -> None:
    memory = TaskMemory(state_store)
    assert memory.uploads() == {}
    first = {"url": "https://cdn.example/a.png", "kind": "image"}
    second = {"url": "https://cdn.example/b.png", "kind": "image"}
    memory.remember_upload("a" * 64, first)
    memory.remember_upload("b" * 64, second)
    assert TaskMemory(state_store).uploads() == {"a" * 64: first, "b" * 64: second}


def test_memory_ignores_a_non_dict_uploads_record(state_store: FakeStateStore) -> None:
    state_store.set(UPLOADS_KEY, ["not", "a", "mapping"])
    assert TaskMemory(state_store).uploads() == {}


def test_memory_without_a_store_forgets_everything() -> None:
    memory = TaskMemory(None)
    assert not memory.durable
    memory.remember_generation(CHAIN, 0, "task_abc")
    memory.remember_upload("a" * 64, {"url": "u", "kind": "image"})
    assert memory.generation(CHAIN) is None
    assert memory.uploads() == {}


# --- submit_or_resume --------------------------------------------------------------------------


def test_first_call_submits_and_records(
    client: RivyaClient, instant: RunningEmulator, state_store: FakeStateStore
) -> None:
    submission = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    assert submission.origin == "submitted"
    assert submission.is_new
    assert submission.link == 0
    assert submission.idempotency_key == CHAIN.key(0)
    assert state_store.get(GENERATION_KEY) == {
        "chain_id": CHAIN.chain_id,
        "link": 0,
        "task_id": submission.task.id,
        # Local time of the submission: the wait deadline counts from here on every try.
        "submitted_at": submission.started_at,
    }
    assert instant.counters()["tasks_created"] == 1


def test_second_call_with_the_record_resumes_without_a_create(
    client: RivyaClient, instant: RunningEmulator, state_store: FakeStateStore
) -> None:
    first = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    again = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    assert again.origin == "resumed"
    assert not again.is_new
    assert again.task.id == first.task.id
    assert again.task.status is TaskStatus.SUCCEEDED
    assert again.idempotency_key == first.idempotency_key
    counters = instant.counters()
    assert counters["requests"][CREATE] == 1
    assert counters["tasks_created"] == 1
    assert counters["credits_charged"] == 14  # one flux-2-flex generation, paid once


def test_a_running_generation_is_reattached_not_resubmitted(
    emulator_factory: EmulatorFactory, state_store: FakeStateStore
) -> None:
    slow = emulator_factory(queued_seconds=0, processing_seconds=60)
    with _client(slow) as rivya:
        first = submit_or_resume(rivya, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
        again = submit_or_resume(rivya, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    assert again.origin == "resumed"
    assert again.task.id == first.task.id
    assert not again.task.status.is_terminal
    assert _creates(slow) == 1


def test_lost_record_is_replayed_by_the_key_chain(
    client: RivyaClient, instant: RunningEmulator, state_store: FakeStateStore
) -> None:
    first = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    fresh_store = FakeStateStore()  # e.g. a crash between submitting and recording
    again = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(fresh_store))
    assert again.origin == "replayed"
    assert again.task.id == first.task.id
    assert again.link == 0
    assert again.task.status is TaskStatus.SUCCEEDED  # read again after the replay
    counters = instant.counters()
    assert counters["tasks_created"] == 1
    assert counters["idempotent_replays"] == 1
    assert counters["credits_charged"] == 14
    # The replay is recorded, so the next try resumes without another create.
    assert TaskMemory(fresh_store).generation(CHAIN) == StoredGeneration(
        chain_id=CHAIN.chain_id, link=0, task_id=first.task.id, submitted_at=again.started_at
    )


def test_without_memory_every_call_replays_the_same_task(
    client: RivyaClient, instant: RunningEmulator
) -> None:
    first = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(None))
    again = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(None))
    assert (first.origin, again.origin) == ("submitted", "replayed")
    assert again.task.id == first.task.id
    assert instant.counters()["tasks_created"] == 1


def test_a_failed_recorded_generation_moves_to_the_next_link(
    client: RivyaClient, instant: RunningEmulator, state_store: FakeStateStore
) -> None:
    instant.set_faults(fail_next_tasks=1)
    failed = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    assert client.get_generation(failed.task.id).status is TaskStatus.FAILED

    retried = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    assert retried.origin == "submitted"
    assert retried.link == 1
    assert retried.idempotency_key == CHAIN.key(1)
    assert retried.task.id != failed.task.id
    assert TaskMemory(state_store).generation(CHAIN) == StoredGeneration(
        chain_id=CHAIN.chain_id, link=1, task_id=retried.task.id, submitted_at=retried.started_at
    )
    counters = instant.counters()
    assert counters["tasks_created"] == 2
    assert counters["credits_charged"] == 14  # the failed one cost nothing

    # The next try resumes link 1; it does not walk on.
    third = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    assert (third.origin, third.link, third.task.id) == ("resumed", 1, retried.task.id)
    assert instant.counters()["tasks_created"] == 2


def test_without_memory_the_chain_walks_past_a_failed_link(
    client: RivyaClient, instant: RunningEmulator
) -> None:
    instant.set_faults(fail_next_tasks=1)
    failed = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(None))
    assert client.get_generation(failed.task.id).status is TaskStatus.FAILED

    retried = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(None))
    assert (retried.origin, retried.link) == ("submitted", 1)
    assert retried.idempotency_key == CHAIN.key(1)
    assert instant.counters()["tasks_created"] == 2

    # A third try replays link 0 (failed), then link 1 (succeeded): nothing new is paid for.
    third = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(None))
    assert (third.origin, third.link, third.task.id) == ("replayed", 1, retried.task.id)
    counters = instant.counters()
    assert counters["tasks_created"] == 2
    assert counters["credits_charged"] == 14


def test_a_retry_in_another_process_walks_past_a_failure_rivya_replays_silently(
    emulator_factory: EmulatorFactory,
) -> None:
    # Below Airflow 3.3 each try is a new process with no record, and the docs promise no replay
    # header: the failed generation key 0 made comes back as if new. A create is answered queued,
    # so a failed answer that Rivya's clock does not show as new is walked past.
    silent = emulator_factory(queued_seconds=0, processing_seconds=0)
    silent.set_profile("no-replay-header")
    silent.set_faults(fail_next_tasks=1)
    with _client(silent) as rivya:
        failed = submit_or_resume(rivya, REQUEST, chain=CHAIN, memory=TaskMemory(None))
        assert rivya.get_generation(failed.task.id).status is TaskStatus.FAILED
    SENT_KEYS.clear()  # the next try's process knows nothing of key 0
    time.sleep(3.2)  # older than the margin on Rivya's clock (its Date header has whole seconds)
    with _client(silent) as rivya:
        retried = submit_or_resume(rivya, REQUEST, chain=CHAIN, memory=TaskMemory(None))
    assert (retried.origin, retried.link) == ("submitted", 1)
    assert retried.task.id != failed.task.id
    assert silent.counters()["tasks_created"] == 2


def test_a_record_of_other_inputs_is_ignored(
    client: RivyaClient, instant: RunningEmulator, state_store: FakeStateStore
) -> None:
    first = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    changed = GenerationRequest(model="flux-2-flex", prompt="a lighthouse at dusk")
    other_chain = _chain("a lighthouse at dusk")
    second = submit_or_resume(client, changed, chain=other_chain, memory=TaskMemory(state_store))
    assert second.origin == "submitted"
    assert second.task.id != first.task.id
    assert second.idempotency_key == other_chain.key(0)
    assert instant.counters()["tasks_created"] == 2
    assert TaskMemory(state_store).generation(other_chain) is not None
    assert TaskMemory(state_store).generation(CHAIN) is None


def test_a_record_of_a_task_rivya_does_not_know_falls_back_to_the_chain(
    client: RivyaClient, instant: RunningEmulator, state_store: FakeStateStore
) -> None:
    TaskMemory(state_store).remember_generation(CHAIN, 0, "task_from_another_account")
    submission = submit_or_resume(client, REQUEST, chain=CHAIN, memory=TaskMemory(state_store))
    assert submission.task.id != "task_from_another_account"
    assert instant.counters()["tasks_created"] == 1
