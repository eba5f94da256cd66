"""Run the example DAGs (``dags_examples/``, ``docs/examples/``) with ``dag.test()``.

Shared by every test that runs an example DAG against the emulator::

    connect_rivya_default(monkeypatch, emulator)
    run = run_example(EXAMPLE_DAGS_DIR / "rivya_quickstart.py", "rivya_quickstart")
    assert task_states(run) == {("generate", -1): ("success", 1)}
    manifest = xcom(run, "generate")

The metadata DB is the private SQLite one of tests/conftest.py; :func:`run_example` creates its
tables on first use, so callers need no fixture.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.airflow_compat import dag_bag_class, reuse_in_process_execution_api
from tests.emulator_fixtures import connection_json

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun

ROOT = Path(__file__).resolve().parents[2]
#: The folder of runnable example DAGs that the docs quote (and the e2e test deploys).
EXAMPLE_DAGS_DIR = ROOT / "dags_examples"


def example_dag_files() -> list[Path]:
    """Return every example DAG file, so a new example is tested as soon as it exists."""
    return sorted(EXAMPLE_DAGS_DIR.glob("*.py"))


@functools.cache
def ensure_airflow_db() -> None:
    """Create the metadata tables once per process, unless a fixture already did."""
    import sqlalchemy
    from airflow import settings
    from airflow.utils import db

    if not sqlalchemy.inspect(settings.engine).has_table("dag_run"):
        db.resetdb()
    reuse_in_process_execution_api()


def connect_rivya_default(
    monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator, **extra: Any
) -> None:
    """Point the ``rivya_default`` Connection at ``emulator``, as the docs' env variable does.

    :param extra: Connection extras, e.g. ``max_attempts=2``.
    """
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", connection_json(emulator, **extra))


def parse_example(path: Path) -> DagBag:
    """Parse one example file as the DAG processor would; import errors are in the bag."""
    bag: DagBag = dag_bag_class()(str(path))
    return bag


def run_example(path: Path, dag_id: str, **test_kwargs: Any) -> DagRun:
    """Run ``dag_id`` from the file ``path`` with ``dag.test(**test_kwargs)``; return the run.

    The file's folder is the only DAG bundle while it runs: ``dag.test()`` records the bundle
    with the DAG, and the in-process task runner parses the file from there again.
    """
    ensure_airflow_db()
    bundle = {
        "name": f"examples-{path.parent.name}",
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(path.parent)},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
        bag = parse_example(path)
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag(dag_id)
        assert dag is not None, f"{path.name} defines no DAG {dag_id!r}: {sorted(bag.dag_ids)}"
        run: DagRun = dag.test(**test_kwargs)
        return run


def task_states(run: DagRun) -> dict[tuple[str, int], tuple[str, int]]:
    """Return ``{(task_id, map_index): (state, try_number)}`` of a finished run."""
    return {
        (ti.task_id, ti.map_index): (str(ti.state), ti.try_number)
        for ti in run.get_task_instances()
    }


def assert_succeeded_first_try(run: DagRun) -> None:
    """Assert that the run and every one of its task instances succeeded without a retry."""
    states = task_states(run)
    assert states, f"{run.dag_id} ran no task"
    not_clean = {ti: state for ti, state in states.items() if state != ("success", 1)}
    assert not not_clean, f"{run.dag_id}: not a first-try success: {not_clean}"
    assert str(run.state) == "success", run.state


def xcom(run: DagRun, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """Return the XCom ``key`` that ``task_id`` (at ``map_index``) pushed in ``run``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=run.dag_id,
                run_id=run.run_id,
                task_id=task_id,
                key=key,
                map_index=map_index,
            )
            .one()
        )
        return XComModel.deserialize_value(row)
