"""Test your own DAGs offline: run them with ``dag.test()`` against the Rivya emulator.

The emulator stands in for rivya.ai (no account, no credits spent) and counts what reached it,
so a test can assert how many generations a DAG submits and how many credits it would spend.
Here the quickstart DAG stands in for yours. Run it as any pytest module, with a scratch Airflow
home (``dag.test()`` needs a metadata database) and your DAG folder::

    AIRFLOW_HOME=$(mktemp -d) AIRFLOW__CORE__DAGS_FOLDER=dags_examples \
        AIRFLOW__CORE__LOAD_EXAMPLES=False pytest docs/examples/test_dags_with_emulator.py

(Airflow 3.0 loads its own example DAGs too unless told not to.)

Run by tests/integration/test_emulator_pytest_example.py.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.client import GenerationRequest, PollPolicy, RivyaClient
from rivya_provider.emulator import RunningEmulator, run_emulator


@pytest.fixture(scope="session")
def dagbag() -> Any:
    """Create the metadata tables in $AIRFLOW_HOME, then parse the configured DAG folder."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.3+
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 3.0 to 3.2

        # --8<-- [start:cache]
        # Airflow 3.0 to 3.2: dag.test() builds its in-process Execution API for every task
        # (2-3 s each); build it once per process, as 3.3 does (apache/airflow#65235).
        from airflow.sdk.execution_time import supervisor

        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(
            supervisor.in_process_api_server
        )
        # --8<-- [end:cache]
    from airflow.utils import db

    db.resetdb()
    bag = DagBag()  # the configured DAG folder
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def rivya(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulator]:
    """A fresh emulator behind the ``rivya_default`` Connection, for one test."""
    with run_emulator(credits=100, queued_seconds=0.1, processing_seconds=0.5) as emulator:
        connection = {"conn_type": "rivya", "host": emulator.base_url, "password": emulator.api_key}
        monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(connection))
        # dag.test() runs deferred waits in this process: no worker heartbeat to wait for.
        monkeypatch.setenv("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "0")
        yield emulator


def test_quickstart_pays_for_one_image(rivya: RunningEmulator, dagbag: Any, tmp_path: Path) -> None:
    run = dagbag.get_dag("rivya_quickstart").test(run_conf={"output_dir": str(tmp_path)})

    assert run.state == "success"
    counters = rivya.counters()
    assert counters["tasks_created"] == 1
    assert counters["credits_charged"] == 14  # flux-2-flex
    assert len(list(tmp_path.rglob("*.png"))) == 1


def test_quickstart_fails_fast_with_a_revoked_key(
    rivya: RunningEmulator, dagbag: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    revoked = rivya.add_key(status="revoked")
    connection = {"conn_type": "rivya", "host": rivya.base_url, "password": revoked}
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(connection))

    run = dagbag.get_dag("rivya_quickstart").test(run_conf={"output_dir": str(tmp_path)})

    assert run.state == "failed"
    (ti,) = run.get_task_instances()
    assert ti.try_number == 1  # a bad key fails at once, whatever the task's retries
    assert rivya.counters()["tasks_created"] == 0


def test_plain_python_code_against_the_emulator() -> None:
    with run_emulator(credits=100, queued_seconds=0.05, processing_seconds=0.1) as emulator:
        fast = PollPolicy(first_delay=0.05, interval=0.05)
        with RivyaClient(api_key=emulator.api_key, base_url=emulator.base_url, poll=fast) as client:
            request = GenerationRequest(model="flux-kontext-pro", prompt="A red bicycle, studio")
            task = client.create_generation(request, idempotency_key="bicycle-1")
            done = client.wait_for_generation(task.id)

        assert done.final_credits == 4
        assert emulator.counters()["tasks_created"] == 1
