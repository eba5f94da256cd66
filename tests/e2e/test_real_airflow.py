"""End to end: the quickstart example DAG through a real Airflow 3 deployment and the emulator.

One module-scoped scenario starts ``api-server``, ``scheduler`` (LocalExecutor), ``dag-processor``
and ``triggerer`` on a fresh SQLite metadata DB, points ``rivya_default`` at an emulator with a
distinctive API key, triggers ``rivya_quickstart`` through the REST API, watches the task
instance (and the ``trigger`` table) while it runs, collects what the REST API serves, stops
Airflow and dumps its DB. Each test then checks one claim on that record:

1. the run succeeds;
2. the task deferred and was resumed through the triggerer, in the same try;
3. the "Rivya result" extra link is served by the REST API and downloads the image;
4. exactly one generation was created and charged, and its image was copied;
5. the API key is in no log, process output, XCom, trigger row or metadata DB row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from rivya_provider.emulator import RunningEmulator, run_emulator
from rivya_provider.emulator.state import DEFAULT_ACCOUNT
from rivya_provider.outputs import folder_name
from tests.e2e.airflow_processes import AirflowDeployment, AirflowNotReadyError, run_airflow
from tests.emulator_fixtures import connection_json

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "rivya_quickstart"
TASK_ID = "generate"
RUN_ID = "e2e_quickstart"
TRIGGER_CLASSPATH = "rivya_provider.triggers.generation.RivyaGenerationTrigger"
LINK_NAME = "Rivya result"
LINK_XCOM_KEY = "_link_RivyaResultLink"
#: Distinctive, so that finding it anywhere can only mean a leak.
API_KEY_SECRET = secrets.token_hex(20)
API_KEY = f"rvya_sk_e2e_{API_KEY_SECRET}"
START_CREDITS = 1000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Generous waits: these bound a hang, they are not assertions on speed.
DAG_PARSE_TIMEOUT = 90.0
RUN_TIMEOUT = 240.0

TI_PATH = f"/api/v2/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances/{TASK_ID}"
RUN_PATH = f"/api/v2/dags/{DAG_ID}/dagRuns/{RUN_ID}"


@dataclass
class Sighting:
    """What the REST API said about the task instance at one moment of the run."""

    state: str | None
    try_number: int
    trigger_classpath: str | None
    triggerer_job_id: int | None


@dataclass
class RunRecord:
    """Everything collected from one DAG run; Airflow is stopped when tests read it."""

    deployment: AirflowDeployment
    output_dir: Path
    ds: str
    dag_run: dict[str, Any] = field(repr=False)
    task_instance: dict[str, Any] = field(repr=False)
    tries: dict[str, Any] = field(repr=False)
    sightings: list[Sighting]
    #: ``trigger`` rows (kwargs decoded) and ``task_instance.next_*`` read while deferred.
    trigger_rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    deferred_ti_rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    links: dict[str, Any] = field(default_factory=dict)
    xcom_values: dict[str, Any] = field(default_factory=dict, repr=False)
    rest_log: str = field(default="", repr=False)
    counters: dict[str, Any] = field(default_factory=dict)
    db_dump: str = field(default="", repr=False)

    @property
    def log_dir(self) -> Path:
        return (
            self.deployment.home
            / "logs"
            / f"dag_id={DAG_ID}"
            / f"run_id={RUN_ID}"
            / f"task_id={TASK_ID}"
        )

    @property
    def manifest(self) -> dict[str, Any]:
        value = self.xcom_values["return_value"]
        assert isinstance(value, dict), value
        return value

    @property
    def generation_id(self) -> str:
        generation_id = self.manifest["generation_id"]
        assert isinstance(generation_id, str)
        assert generation_id.startswith("task_"), generation_id
        return generation_id

    def explain(self) -> str:
        """Process output tails and the task logs, for assertion messages."""
        logs = [
            f"----- {path.name} -----\n{path.read_text(errors='replace')}"
            for path in sorted(self.log_dir.glob("attempt=*"))
        ]
        return "\n".join([self.deployment.diagnostics(), *logs])


# -- the scenario --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    """Each generation takes 7.5 s: the deferred state lasts two trigger polls.

    That is also longer than Airflow needs to finish the deferring workload, which avoids a race
    of Airflow 3.3.2 (see ``MIN_HEARTBEAT_INTERVAL`` in ``airflow_processes``).
    """
    with run_emulator(
        api_key=API_KEY, credits=START_CREDITS, queued_seconds=0.5, processing_seconds=7.0
    ) as running:
        yield running


@pytest.fixture(scope="module")
def record(
    emulator: RunningEmulator,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[RunRecord]:
    base = tmp_path_factory.mktemp("e2e")
    root, output_dir = base / "deployment", base / "output"
    root.mkdir()
    # The run's conf names the output folder: it must win over the param's default (/tmp).
    env = {"AIRFLOW_CONN_RIVYA_DEFAULT": connection_json(emulator)}
    with run_airflow(root, dags_folder=REPO / "dags_examples", extra_env=env) as deployment:
        # A failure here reaches run_airflow, which prints the processes' output tails.
        result = _run_quickstart(deployment, output_dir)
        result.counters = emulator.counters()
    # Stopped: every process has flushed its logs and nothing writes to the DB any more.
    result.db_dump = _dump_db(deployment.db_path)
    failed_before = request.session.testsfailed
    yield result
    if request.session.testsfailed > failed_before:
        sys.stderr.write(
            f"\nAirflow end-to-end diagnostics (all files kept in {base}):\n{result.explain()}\n"
        )


def _run_quickstart(deployment: AirflowDeployment, output_dir: Path) -> RunRecord:
    api = deployment.api

    def parsed_dag() -> dict[str, Any] | None:
        response = api.get(f"/api/v2/dags/{DAG_ID}")
        return _json(response) if response.status_code == 200 else None

    try:
        deployment.wait_for("the DAG to be parsed", parsed_dag, timeout=DAG_PARSE_TIMEOUT)
    except AirflowNotReadyError as exc:
        errors = api.get("/api/v2/importErrors").text
        raise AirflowNotReadyError(f"{exc}; import errors: {errors}") from None
    _check(api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}))

    logical_date = datetime.now(timezone.utc)
    _check(
        api.post(
            f"/api/v2/dags/{DAG_ID}/dagRuns",
            json={
                "dag_run_id": RUN_ID,
                "logical_date": logical_date.isoformat(),
                "conf": {"output_dir": str(output_dir)},
            },
        )
    )
    record = RunRecord(
        deployment=deployment,
        output_dir=output_dir,
        ds=logical_date.strftime("%Y-%m-%d"),
        dag_run={},
        task_instance={},
        tries={},
        sightings=[],
    )
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        deployment.check_alive()
        response = api.get(TI_PATH)
        if response.status_code == 200:
            _note(record, _json(response))
        record.dag_run = _json(_check(api.get(RUN_PATH)))
        if record.dag_run["state"] in {"success", "failed"}:
            break
        if record.sightings and record.sightings[-1].state == "up_for_retry":
            # The first try failed: report now instead of waiting for the DAG's retry.
            raise AirflowNotReadyError(f"the first try failed: {record.sightings}")
        if time.monotonic() > deadline:
            raise AirflowNotReadyError(
                f"the run is still {record.dag_run['state']} after {RUN_TIMEOUT}s"
            )
        time.sleep(0.25)

    record.task_instance = _json(_check(api.get(TI_PATH)))
    record.tries = _json(_check(api.get(f"{TI_PATH}/tries")))
    record.links = _json(_check(api.get(f"{TI_PATH}/links")))
    entries = _json(_check(api.get(f"{TI_PATH}/xcomEntries")))["xcom_entries"]
    for entry in entries:
        value = _json(_check(api.get(f"{TI_PATH}/xcomEntries/{entry['key']}")))
        record.xcom_values[entry["key"]] = value["value"]
    record.rest_log = _check(
        api.get(
            f"{TI_PATH}/logs/1",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
    ).text
    return record


def _note(record: RunRecord, ti: dict[str, Any]) -> None:
    """Remember a new state of the task instance; while deferred, read its trigger row too."""
    sighting = Sighting(
        state=ti.get("state"),
        try_number=ti.get("try_number", 0),
        trigger_classpath=(ti.get("trigger") or {}).get("classpath"),
        triggerer_job_id=(ti.get("triggerer_job") or {}).get("id"),
    )
    if record.sightings and record.sightings[-1] == sighting:
        return
    record.sightings.append(sighting)
    if sighting.state == "deferred":
        trigger_rows, ti_rows = _deferred_rows(record.deployment)
        record.trigger_rows += trigger_rows
        record.deferred_ti_rows += ti_rows


def _deferred_rows(
    deployment: AirflowDeployment,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``trigger`` rows, kwargs decoded, and the task's ``next_method``/``next_kwargs``.

    Trigger kwargs written through the Execution API are stored as plain JSON in Airflow 3.3
    (they are only Fernet-encrypted when created inside the scheduler), so both forms are read.
    """
    db = sqlite3.connect(f"file:{deployment.db_path}?mode=ro", uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        triggers = db.execute("SELECT id, classpath, kwargs, triggerer_id FROM trigger").fetchall()
        tis = db.execute(
            "SELECT state, try_number, next_method, next_kwargs, trigger_id FROM task_instance"
            " WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            (DAG_ID, RUN_ID, TASK_ID),
        ).fetchall()
    finally:
        db.close()
    decoded = []
    for row in triggers:
        stored: str = row["kwargs"]
        plain = stored if stored.startswith("{") else deployment.fernet.decrypt(stored).decode()
        decoded.append({**dict(row), "kwargs": json.loads(plain), "stored_kwargs": stored})
    return decoded, [dict(row) for row in tis]


def _dump_db(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def _check(response: httpx.Response) -> httpx.Response:
    assert response.is_success, f"{response.request.method} {response.url}: {response.text}"
    return response


def _json(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, dict), body
    return body


def _read_log(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of an Airflow task or trigger log file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _events(path: Path) -> list[str]:
    return [str(line.get("event", "")) for line in _read_log(path)]


def _index_of(events: list[str], prefix: str) -> int:
    matches = [i for i, event in enumerate(events) if event.startswith(prefix)]
    assert matches, f"no log line starts with {prefix!r}: {events}"
    return matches[0]


# -- 1. the run ----------------------------------------------------------------------------------


def test_run_succeeds_through_the_real_scheduler(record: RunRecord) -> None:
    assert record.dag_run["state"] == "success", record.explain()
    ti = record.task_instance
    assert ti["state"] == "success", record.explain()
    assert ti["operator"] == "RivyaGenerateOperator"
    assert record.manifest["status"] == "succeeded"
    assert record.manifest["origin"] == "submitted"


# -- 2. deferral and resume through the triggerer -----------------------------------------------


def test_task_deferred_and_resumed_by_the_triggerer(record: RunRecord) -> None:
    generation_id = record.generation_id
    states = [s.state for s in record.sightings]
    # Seen by the REST API: queued -> (running) -> deferred -> queued again -> success.
    assert "deferred" in states, f"{record.sightings}\n{record.explain()}"
    first_deferred = states.index("deferred")
    assert "success" in states[first_deferred:], record.sightings
    deferred = [s for s in record.sightings if s.state == "deferred"]
    assert {s.trigger_classpath for s in deferred} == {TRIGGER_CLASSPATH}
    picked_up = [s.triggerer_job_id for s in deferred if s.triggerer_job_id is not None]
    assert picked_up, f"no triggerer took the trigger: {record.sightings}"
    triggerer_job_id = picked_up[-1]

    # The trigger row the deferral created waits for this very generation.
    ours = [row for row in record.trigger_rows if row["classpath"] == TRIGGER_CLASSPATH]
    assert ours, record.trigger_rows
    assert {row["kwargs"]["generation_id"] for row in ours} == {generation_id}
    assert any(row["triggerer_id"] == triggerer_job_id for row in ours), ours
    assert {row["next_method"] for row in record.deferred_ti_rows} == {"execute_complete"}

    # Resumed, not retried: one try, which both deferred and finished.
    assert record.task_instance["try_number"] == 1
    assert record.tries["total_entries"] == 1, record.tries
    assert {s.try_number for s in record.sightings if s.state} == {1}
    task_events = _events(record.log_dir / "attempt=1.log")
    deferring = _index_of(task_events, f"Deferring: generation {generation_id} is ")
    paused = _index_of(task_events, "Pausing task as DEFERRED")
    finished = _index_of(task_events, "Generation succeeded: ")
    assert deferring < paused < finished, task_events
    said = task_events[finished]
    assert "credits charged by this try; 1 file written to " in said, said
    assert f"(generation {generation_id}; files: " in said, said

    # The triggerer ran the provider's trigger for this task instance and it fired the event.
    trigger_log = record.log_dir / f"attempt=1.log.trigger.{triggerer_job_id}.log"
    assert trigger_log.is_file(), sorted(p.name for p in record.log_dir.iterdir())
    trigger_lines = _read_log(trigger_log)
    ti_id = record.task_instance["id"]
    ours_said = [
        line["event"]
        for line in trigger_lines
        if line.get("logger") == TRIGGER_CLASSPATH and line.get("ti_id") == ti_id
    ]
    assert f"Generation {generation_id}: success" in ours_said, trigger_lines
    fired = [line for line in trigger_lines if line.get("event") == "Trigger fired event"]
    assert len(fired) == 1, trigger_lines
    assert generation_id in fired[0]["result"]
    # ...by polling the emulator itself (the worker never polls when deferrable).
    assert record.counters["requests"].get("GET /api/v1/generations/{taskId}", 0) >= 1

    # The API server serves both parts of the story as the try's log.
    assert f"Deferring: generation {generation_id}" in record.rest_log
    assert "Trigger fired event" in record.rest_log
    assert "Generation succeeded: " in record.rest_log
    assert f"(generation {generation_id}; files: " in record.rest_log


# -- 3. the extra link ---------------------------------------------------------------------------


def test_extra_link_is_served_and_downloads_the_image(
    record: RunRecord, emulator: RunningEmulator
) -> None:
    generation_id = record.generation_id
    assert record.links["extra_links"] == {LINK_NAME: record.manifest["primary_url"]}
    url = record.links["extra_links"][LINK_NAME]
    assert url.startswith(f"{emulator.base_url}/cdn/results/{generation_id}/"), url
    assert record.xcom_values[LINK_XCOM_KEY] == url

    image = httpx.get(url, timeout=30)
    assert image.status_code == 200, image.text
    assert image.content.startswith(PNG_MAGIC) or image.content.startswith(b"\xff\xd8\xff")
    assert hashlib.sha256(image.content).hexdigest() == record.manifest["files"][0]["sha256"]


# -- 4. one paid generation, copied --------------------------------------------------------------


def test_one_generation_is_charged_and_its_image_copied(
    record: RunRecord, emulator: RunningEmulator
) -> None:
    counters = record.counters
    assert counters["tasks_created"] == 1, counters
    assert counters["requests"].get("POST /api/v1/generations") == 1, counters
    assert counters["idempotent_replays"] == 0, counters
    assert counters["credits_refunded"] == 0, counters
    charged = record.manifest["charged_credits"]
    assert charged > 0
    assert counters["credits_charged"] == charged, counters
    assert emulator.state.balance(DEFAULT_ACCOUNT) == START_CREDITS - charged

    files = record.manifest["files"]
    assert len(files) == 1, files
    copy = Path(files[0]["path"])
    assert copy.parent == record.output_dir / record.ds / folder_name(RUN_ID)
    assert copy.name.startswith(f"{record.generation_id}-")
    data = copy.read_bytes()
    assert data.startswith(PNG_MAGIC) or data.startswith(b"\xff\xd8\xff")
    assert len(data) == files[0]["size_bytes"]
    assert hashlib.sha256(data).hexdigest() == files[0]["sha256"]
    assert sorted(p.name for p in record.output_dir.rglob("*") if p.is_file()) == [copy.name]


# -- 5. the API key is nowhere -------------------------------------------------------------------


def _sources(record: RunRecord) -> dict[str, bytes]:
    """Every place the key could leak to, by name."""
    deployment = record.deployment
    sources = {
        str(path.relative_to(deployment.root)): path.read_bytes()
        for path in sorted(deployment.root.rglob("*"))
        if path.is_file()
    }
    as_text = {
        "trigger rows while deferred": json.dumps(record.trigger_rows, default=str),
        "task_instance rows while deferred": json.dumps(record.deferred_ti_rows, default=str),
        "REST task log": record.rest_log,
        "REST task instance": json.dumps(record.task_instance),
        "REST DAG run": json.dumps(record.dag_run),
        "REST extra links": json.dumps(record.links),
        "metadata DB dump": record.db_dump,
        **{f"REST XCom {key}": json.dumps(value) for key, value in record.xcom_values.items()},
    }
    sources.update({name: text.encode() for name, text in as_text.items()})
    return sources


def _containing(sources: Mapping[str, bytes], needle: str) -> set[str]:
    return {name for name, content in sources.items() if needle.encode() in content}


def test_api_key_appears_nowhere(record: RunRecord) -> None:
    sources = _sources(record)
    log_dir = str(record.log_dir.relative_to(record.deployment.root))
    task_log = f"{log_dir}/attempt=1.log"
    trigger_logs = {name for name in sources if name.startswith(f"{task_log}.trigger.")}
    # The scan reads what it should: the generation id is where it must be.
    found = _containing(sources, record.generation_id)
    scanned = sorted(sources)
    # SQLite runs in WAL mode: recent rows may still be in the -wal file, not in the DB file.
    assert found & {"airflow-home/airflow.db", "airflow-home/airflow.db-wal"}, scanned
    expected = {
        task_log,
        *trigger_logs,
        "scheduler.out",
        "trigger rows while deferred",
        "REST task log",
        "metadata DB dump",
        f"REST XCom {LINK_XCOM_KEY}",
        "REST XCom return_value",
    }
    assert trigger_logs, scanned
    assert expected <= found, f"the generation id is not in {expected - found}"
    assert {"api-server.out", "triggerer.out", "dag-processor.out"} <= set(scanned), scanned
    # The key was really in use: the emulator accepts no other, and both the worker (submit)
    # and the triggerer (polls) authenticated with it.
    assert record.counters["responses"].get("401", 0) == 0

    leaks = _containing(sources, API_KEY) | _containing(sources, API_KEY_SECRET)
    assert not leaks, f"the API key leaked into: {sorted(leaks)}"
