"""The task log says, in plain words, what each try submitted, waited for, reused and paid.

Each test runs a real DAG with ``dag.test()`` against the emulator and reads every line the run
logged: the operator's and the trigger's (structlog on Airflow 3.3, captured with
``structlog.testing.capture_logs``) and the provider's module loggers (``caplog``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import structlog

from rivya_provider.emulator import RunningEmulator
from tests.airflow.conftest import RunDag
from tests.airflow.examples import task_states, xcom
from tests.airflow_compat import has_task_state_store
from tests.emulator_fixtures import connection_json

pytestmark = pytest.mark.usefixtures("rivya_connection")

Logged = Callable[[], list[str]]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Logged]:
    """Collect the run's log lines; call the fixture's value to read them (and start afresh)."""
    caplog.set_level(logging.INFO)
    with structlog.testing.capture_logs() as events:

        def read() -> list[str]:
            found = [str(event.get("event", "")) for event in events]
            found += [record.getMessage() for record in caplog.records]
            events.clear()
            caplog.clear()
            return found

        yield read


def having(lines: list[str], text: str) -> list[str]:
    return [line for line in lines if text in line]


def test_a_new_generation_logs_its_key_reservation_wait_and_charge(
    run_dag: RunDag, rivya_connection: RunningEmulator, logged: Logged
) -> None:
    # Slow enough that the triggerer sees it running at least once.
    rivya_connection.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=3.0)

    run = run_dag("rivya_generate_deferred")

    assert task_states(run) == {("generate", -1): ("success", 1)}
    manifest = xcom(run, "generate")
    gid, key = manifest["generation_id"], manifest["idempotency_key"]
    lines = logged()
    (submitted,) = having(lines, "Submitted: ")
    # What a person acts on first (credits, status, how long), the ids last.
    assert submitted.startswith("Submitted: 14 credits reserved, charged only if it succeeds; ")
    assert "waiting up to 30 min" in submitted, submitted
    assert submitted.endswith(f"(generation {gid}, Idempotency-Key {key})"), submitted
    waits = [w for w in having(lines, "Waiting: status ") if w.endswith(f"(generation {gid})")]
    assert waits, lines
    assert all(" since it was submitted, " in w and " left before the timeout " in w for w in waits)
    (done,) = having(lines, "Generation succeeded: ")
    assert done.startswith("Generation succeeded: 14 credits charged by this try; no files"), done
    assert done.endswith(f"(generation {gid})"), done
    assert not having(lines, "earlier try"), lines


def test_a_worker_wait_logs_elapsed_and_time_left(
    run_dag: RunDag, rivya_connection: RunningEmulator, logged: Logged
) -> None:
    rivya_connection.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=0.5)

    run = run_dag("rivya_generate_polling")

    gid = xcom(run, "generate")["generation_id"]
    lines = logged()
    (wait,) = having(lines, "Waiting in the worker: status ")
    assert wait.endswith(f" left before the timeout (generation {gid})"), wait
    assert having(lines, "Generation succeeded: 14 credits charged by this try; no files written")


def test_a_resumed_running_generation_is_waited_for_and_charged_once(
    run_dag: RunDag, rivya_connection: RunningEmulator, logged: Logged
) -> None:
    # The first try submits and is lost; the retry finds the generation still running (under
    # dag.test() a retry starts within a second or two, even on a busy machine).
    rivya_connection.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=8.0)

    run = run_dag("rivya_lost_after_submit")

    assert task_states(run) == {("generate", -1): ("success", 2)}
    manifest = xcom(run, "generate")
    gid, key = manifest["generation_id"], manifest["idempotency_key"]
    lines = logged()
    assert len(having(lines, f"(generation {gid}, Idempotency-Key {key})")) == 1
    (resumed,) = having(lines, "Resuming an earlier try's generation: ")
    # Airflow 3.3 remembers it in task_state_store; older lines find it by replaying the key.
    remembered = resumed.endswith(f"(generation {gid}, remembered for retries)")
    assert remembered is has_task_state_store(), resumed
    assert "waiting for it instead of submitting (and paying for) another" in resumed
    assert having(lines, "Generation succeeded: 14 credits charged by this try")
    assert rivya_connection.counters()["credits_charged"] == 14


def test_a_retry_after_success_reuses_it_at_no_new_charge(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path, logged: Logged
) -> None:
    # The generation succeeds and is paid, then copying its result fails; the retry reuses it.
    blocker = tmp_path / "blocked"
    rivya_connection.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=2.0)

    run = run_dag(
        "rivya_copy_fails_once", run_conf={"out": str(blocker / "out"), "blocker": str(blocker)}
    )

    assert task_states(run) == {("generate", -1): ("success", 2)}
    manifest = xcom(run, "generate")
    gid = manifest["generation_id"]
    lines = logged()
    # Airflow 3.3 runs the retry from execute(), which finds the paid generation again; 3.0
    # hands the retry the first try's trigger event instead (nothing to find, nothing to pay).
    reused = having(lines, "Reusing an earlier try's generation: ")
    assert len(reused) == 1 if has_task_state_store() else len(reused) <= 1
    assert all("it already succeeded; no new generation and no new charge" in r for r in reused)
    assert all(f"(generation {gid}, " in r for r in reused)
    (done,) = having(lines, "Generation succeeded: ")
    assert done.startswith("Generation succeeded: 0 credits charged by this try (an earlier try ")
    assert "(an earlier try paid 14 credits)" in done
    assert f"1 file written to {blocker / 'out'} " in done, done
    assert done.endswith(f"(generation {gid}; files: {manifest['files'][0]['path']})"), done
    assert not having(lines, "14 credits charged by this try"), lines
    assert rivya_connection.counters()["credits_charged"] == 14


def test_a_cleared_succeeded_task_logs_no_new_charge(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path, logged: Logged
) -> None:
    # Running the same logical date again clears the run: the succeeded task runs again.
    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    conf = {"marker": str(tmp_path / "marker")}
    first = run_dag("rivya_downstream_fails", logical_date=when, run_after=when, run_conf=conf)
    gid = xcom(first, "generate")["generation_id"]
    assert having(logged(), "Generation succeeded: 14 credits charged by this try")

    second = run_dag("rivya_downstream_fails", logical_date=when, run_after=when, run_conf=conf)

    assert xcom(second, "generate")["generation_id"] == gid
    lines = logged()
    (reused,) = having(lines, "Reusing an earlier try's generation: ")
    assert "no new charge" in reused
    assert f"(generation {gid}, " in reused
    (done,) = having(lines, "Generation succeeded: ")
    assert "0 credits charged by this try (an earlier try paid 14 credits)" in done
    assert not having(lines, "Submitted: "), lines
    assert rivya_connection.counters()["credits_charged"] == 14


def test_a_replayed_create_names_the_key_and_charges_once(
    run_dag: RunDag, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, logged: Logged
) -> None:
    # Rivya stores the create, then the answer is lost: the first try fails having recorded
    # nothing, and the retry's create is replayed. Slow, so the retry finds it still running.
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", connection_json(emulator, max_attempts=1))
    emulator.set_faults(drop_next_creates=1, slow_task_rate=1.0, slow_task_extra_seconds=8.0)

    run = run_dag("rivya_generate_polling")

    assert task_states(run) == {("generate", -1): ("success", 2)}
    manifest = xcom(run, "generate")
    gid, key = manifest["generation_id"], manifest["idempotency_key"]
    lines = logged()
    assert not having(lines, "Submitted: "), lines
    (replayed,) = having(lines, "Resuming an earlier try's generation: ")
    assert replayed.endswith(f"(generation {gid}, Rivya replayed Idempotency-Key {key})")
    assert having(lines, "Generation succeeded: 14 credits charged by this try")
    assert emulator.counters()["credits_charged"] == 14
