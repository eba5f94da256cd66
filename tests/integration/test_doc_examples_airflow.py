"""The Airflow examples the docs quote run for real (``dag.test()``) against the emulator.

Also checks that every Python block of docs/airflow.md, and every Airflow block of README.md, is
copied verbatim from one of these example files, so the docs cannot drift from tested code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.integration.test_examples import load
from tests.media import write_image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "dags_examples" / "rivya_quickstart.py",
    ROOT / "docs" / "examples" / "airflow_submit_then_wait.py",
    ROOT / "docs" / "examples" / "airflow_retry_policy.py",
]
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """Create the metadata tables (SQLite in the private AIRFLOW_HOME of tests/conftest.py)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point ``rivya_default`` at an emulator, as the docs' environment variable does."""

    def to(emulator: RunningEmulator) -> None:
        conn = {"conn_type": "rivya", "host": emulator.base_url, "password": emulator.api_key}
        monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(conn))

    return to


def run_example(path: Path, dag_id: str, **kwargs: Any) -> Any:
    """Run ``dag_id`` from ``path`` with ``dag.test()``, its folder being the only DAG bundle."""
    from airflow.dag_processing.dagbag import DagBag

    bundle = {
        "name": f"examples-{path.parent.name}",
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(path.parent)},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
        bag = DagBag(str(path))
        assert not bag.import_errors, bag.import_errors
        return bag.get_dag(dag_id).test(**kwargs)


def task_states(run: Any) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}


def xcom(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value")
            .one()
        )
        return XComModel.deserialize_value(row)


@pytest.mark.usefixtures("airflow_db")
def test_quickstart_dag_copies_the_image(
    emulator: RunningEmulator, connect: Any, tmp_path: Path
) -> None:
    connect(emulator)

    run = run_example(EXAMPLES[0], "rivya_quickstart", run_conf={"output_dir": str(tmp_path)})

    assert task_states(run) == {"generate": ("success", 1)}
    manifest = xcom(run, "generate")
    assert manifest["origin"] == "submitted"
    (copied,) = manifest["files"]
    assert Path(copied["path"].removeprefix("file://")).is_file()
    assert emulator.counters()["credits_charged"] == 14


@pytest.mark.usefixtures("airflow_db")
def test_submit_then_wait_uses_the_sensor_and_trigger(
    emulator_factory: Any, connect: Any, tmp_path: Path
) -> None:
    # Slow enough that the sensor finds the generation still running and defers.
    emulator = emulator_factory(queued_seconds=0.2, processing_seconds=1.5)
    connect(emulator)
    reference = write_image(tmp_path / "product.png")

    run = run_example(EXAMPLES[1], "rivya_submit_then_wait", run_conf={"reference": str(reference)})

    assert set(task_states(run).values()) == {("success", 1)}
    submitted = xcom(run, "submit")
    assert submitted["status"] in {"queued", "processing"}
    waited = xcom(run, "wait")
    assert waited["status"] == "succeeded"
    assert waited["origin"] == "watched"
    assert waited["generation_id"] == submitted["generation_id"]
    assert xcom(run, "publish") == waited["result_urls"]
    handed_on = json.dumps([xcom(run, task) for task in ("upload", "submit", "wait")])
    assert emulator.api_key not in handed_on
    counters = emulator.counters()
    assert counters["tasks_created"] == 1
    assert counters["files_uploaded"] == 1
    assert counters["requests"]["GET /api/v1/generations/{taskId}"] >= 2


@pytest.mark.usefixtures("airflow_db")
def test_retry_policy_fails_at_once_on_insufficient_credits(
    emulator: RunningEmulator, connect: Any
) -> None:
    connect(emulator)
    emulator.set_credits(5)

    run = run_example(EXAMPLES[2], "rivya_retry_policy")

    # retries=3 on the task, yet one try: the policy's FAIL rule matched.
    assert task_states(run) == {"generate": ("failed", 1)}
    counters = emulator.counters()
    assert counters["requests"]["POST /api/v1/generations"] == 1
    assert counters["tasks_created"] == 0


def test_retry_policy_rules_pick_the_documented_actions() -> None:
    from airflow.sdk import RetryAction

    from rivya_provider.client import GenerationFailedError, RateLimitedError

    policy = load(EXAMPLES[2]).RIVYA_RETRY_POLICY
    limited = RateLimitedError(status_code=429, code="rate_limited", message="slow down")
    failed = GenerationFailedError(task_id="task_1", code="generation_failed", message="no")

    assert policy.evaluate(limited, 1, 4).action is RetryAction.RETRY
    assert policy.evaluate(limited, 1, 4).retry_delay.total_seconds() == 600
    assert policy.evaluate(failed, 1, 4).retry_delay.total_seconds() == 30
    assert policy.evaluate(RuntimeError("other"), 1, 4).action is RetryAction.DEFAULT


def _airflow_blocks() -> list[tuple[str, str]]:
    blocks = [("docs/airflow.md", b) for b in PYTHON_BLOCK.findall(_read("docs/airflow.md"))]
    blocks += [("README.md", b) for b in PYTHON_BLOCK.findall(_read("README.md")) if "airflow" in b]
    return blocks


def _read(relative: str) -> str:
    return (ROOT / relative).read_text()


@pytest.mark.parametrize(("doc", "block"), _airflow_blocks())
def test_doc_code_blocks_are_copied_from_tested_examples(doc: str, block: str) -> None:
    sources = [path.read_text() for path in EXAMPLES]
    assert any(block.strip() in source for source in sources), f"{doc} block drifted:\n{block}"
