"""Real Airflow for integration tests: a SQLite metadata DB and ``dag.test()`` on test DAG files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.airflow_compat import dag_bag_class, reuse_in_process_execution_api
from tests.conftest import TEST_DAGS
from tests.emulator_fixtures import connection_json

RunDag = Callable[..., Any]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the metadata tables once per test session."""
    from airflow.utils import db

    db.resetdb()
    reuse_in_process_execution_api()


@pytest.fixture
def rivya_connection(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    """Point ``rivya_default`` at the test's emulator (one attempt per request: fast failures)."""
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", connection_json(emulator, max_attempts=2))
    return emulator


@pytest.fixture
def run_dag(airflow_db: None) -> RunDag:
    """Run a test DAG (from ``tests/airflow/dags``) with ``dag.test(**kwargs)``; return the run."""
    dag_bag = dag_bag_class()

    def run(dag_id: str, **kwargs: Any) -> Any:
        bag = dag_bag(str(TEST_DAGS))
        assert not bag.import_errors, bag.import_errors
        return bag.get_dag(dag_id).test(**kwargs)

    return run
