"""The "Rivya result" link is the result once there is one, and never an API URL.

The API's status URL needs the API key: a browser opening it gets ``401 api_key_missing``. An
empty link is one Airflow's UI does not show (its REST API reports it as ``null``).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from rivya_provider.emulator import RunningEmulator
from rivya_provider.links import RivyaResultLink
from tests.airflow.conftest import RunDag
from tests.airflow.examples import task_states, xcom

pytestmark = pytest.mark.usefixtures("rivya_connection")

LINK_KEY = RivyaResultLink().xcom_key


@pytest.mark.parametrize("mode", ["deferred", "polling"])
def test_after_success_the_link_is_the_primary_result_and_opens(
    run_dag: RunDag, rivya_connection: RunningEmulator, mode: str
) -> None:
    run = run_dag(f"rivya_generate_{mode}")

    assert task_states(run) == {("generate", -1): ("success", 1)}
    link = xcom(run, "generate", key=LINK_KEY)
    assert link == xcom(run, "generate")["primary_url"]
    assert "/api/v1/" not in link
    opened = httpx.get(link, timeout=30)  # no API key: what a browser does
    assert opened.status_code == 200
    assert opened.headers["content-type"].startswith("image/")


def test_after_a_failed_generation_there_is_no_link(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    rivya_connection.set_faults(fail_next_tasks=3)

    run = run_dag("rivya_generate_deferred")

    assert task_states(run) == {("generate", -1): ("failed", 3)}
    assert xcom(run, "generate", key=LINK_KEY) == ""


def test_after_a_timeout_there_is_no_link(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    # generation_timeout=5 on this DAG; the generation takes far longer.
    rivya_connection.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=60.0)
    conf = {"out": str(tmp_path / "out"), "report": str(tmp_path / "report.jsonl")}

    run = run_dag("rivya_contract_deferred", run_conf=conf)

    assert task_states(run) == {("generate", -1): ("failed", 2)}
    tries = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    # Before Airflow 3.3 the callbacks get no exception to record.
    assert {t["error_type"] for t in tries} <= {"GenerationTimeoutError", None}
    assert xcom(run, "generate", key=LINK_KEY) == ""


def test_the_sensor_shows_no_link_while_it_waits_then_the_result(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    run = run_dag("rivya_submit_then_sense_poke")

    submitted = xcom(run, "submit")
    assert submitted["status"] in {"queued", "processing"}
    # The submitting task ended before the result existed: it shows no link at all.
    assert xcom(run, "submit", key=LINK_KEY) == ""
    assert xcom(run, "wait", key=LINK_KEY) == xcom(run, "wait")["primary_url"]
