"""The operator in real Airflow runs (``dag.test()``) against every target: nothing paid twice."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.examples import run_example, task_states, xcom
from tests.airflow_compat import has_task_state_store, skip_where_callbacks_get_no_exception
from tests.conftest import TEST_DAGS
from tests.contract.targets import Target

DAG_FILE = TEST_DAGS / "rivya_contract.py"


def connect(monkeypatch: pytest.MonkeyPatch, target: Target, **extra: Any) -> None:
    """Point the ``rivya_default`` Connection at ``target``."""
    conn: dict[str, Any] = {"conn_type": "rivya", "host": target.base_url}
    conn |= {"password": target.api_key, "extra": {"backoff_max": 0.05, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(conn))


def reports(path: Path) -> list[dict[str, Any]]:
    """Return what the failure and retry callbacks recorded, one dict per try.

    Where Airflow's ``dag.test()`` passes callbacks no exception (before 3.3), the rest of the
    test, which reads the exceptions, is skipped: callers check states and charges first.
    """
    found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if any(entry["error_type"] is None for entry in found):
        skip_where_callbacks_get_no_exception()
    return found


def run(mode: str, tmp_path: Path, **test_kwargs: Any) -> Any:
    conf = {"out": str(tmp_path / "out"), "report": str(tmp_path / "report.jsonl")}
    return run_example(DAG_FILE, f"rivya_contract_{mode}", run_conf=conf, **test_kwargs)


def assert_copied(manifest: dict[str, Any]) -> None:
    assert manifest["files"], "the results were copied"
    for copied in manifest["files"]:
        assert Path(copied["path"].removeprefix("file://")).stat().st_size > 0


def assert_conflict_named(failures: list[dict[str, Any]]) -> None:
    """A same-key 409 is reported, naming what the user needs to look the generation up."""
    assert failures
    for failed in failures:
        assert failed["code"] == "idempotency_conflict"
        assert "Idempotency-Key" in failed["error"]
        assert "client_request_id" in failed["error"]
        assert "a generation may exist" in failed["error"]


def test_a_failed_generation_is_retried_then_a_clear_reuses_the_success(
    target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if target.repeat_conflict and not has_task_state_store():
        pytest.skip(
            "below Airflow 3.3 nothing records the failed generation and this server refuses its "
            "key again, so the retry cannot move to the next key (docs/reliability.md)"
        )
    connect(monkeypatch, target)
    target.fault("fail_next_tasks")
    when = datetime(2026, 3, 1, tzinfo=timezone.utc)

    first = run("polling", tmp_path, logical_date=when, run_after=when)
    # Read the first run now: running the same logical date again replaces it.
    first_states = task_states(first)
    first_manifest = xcom(first, "generate")
    second = run("polling", tmp_path, logical_date=when, run_after=when)

    assert first_states == {("generate", -1): ("success", 2)}
    assert first_manifest["idempotency_key"].endswith("-1"), "the retry moved to the next key"
    assert_copied(first_manifest)
    assert target.counters() == {"tasks_created": 2, "credits_charged": 14}
    tries = reports(tmp_path / "report.jsonl")
    assert tries[0]["error_type"] == "GenerationFailedError"
    if target.repeat_conflict:
        # The cleared run repeats key 0, which this server answers with 409 whatever it made.
        assert task_states(second)[("generate", -1)][0] == "failed"
        assert_conflict_named(tries[1:])
    else:
        assert task_states(second) == {("generate", -1): ("success", 1)}
        reused = xcom(second, "generate")
        assert reused["generation_id"] == first_manifest["generation_id"]
        assert reused["origin"] in {"replayed", "resumed"}
    assert target.counters() == {"tasks_created": 2, "credits_charged": 14}


def test_a_lost_create_answer_is_replayed_with_one_charge(
    target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Deferred this time. One attempt per request: the try whose create answer is lost fails,
    # and the retry repeats the create with the same key.
    connect(monkeypatch, target, max_attempts=1)
    target.fault("drop_next_creates")

    dag_run = run("deferred", tmp_path)

    assert target.counters() == {"tasks_created": 1, "credits_charged": 14}
    tries = reports(tmp_path / "report.jsonl")
    assert tries[0]["error_type"] == "RivyaTransportError"
    if target.repeat_conflict:
        # Nothing tells the retry which task its key made: it stops and says why.
        assert task_states(dag_run) == {("generate", -1): ("failed", 2)}
        assert_conflict_named(tries[1:])
    else:
        assert task_states(dag_run) == {("generate", -1): ("success", 2)}
        manifest = xcom(dag_run, "generate")
        # An earlier try made it: only a server that says so lets the retry know (the docs
        # promise no replay header, and the lost answer left no record).
        assert manifest["origin"] == ("replayed" if target.says_replayed else "submitted")
        assert manifest["idempotency_key"].endswith("-0")
        assert_copied(manifest)
    assert target.counters() == {"tasks_created": 1, "credits_charged": 14}
