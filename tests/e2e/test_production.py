"""End to end on a production-shaped deployment: PostgreSQL, CeleryExecutor with a Redis broker,
two Celery workers and two triggerers, each with a HOME and cache folder of its own
(``tests/e2e/production.py``; docs/production.md describes the same configuration).

The module's 20-way mapped deferrable DAG (``rivya_storm``) runs through five scenarios, in order:

a. healthy: 20 generations, each paid once, the work spread over both workers;
b. the same run cleared: every task instance finds its generation again, nothing new is paid;
c. the triggerer holding every trigger is SIGKILLed: the other one adopts them all, and each
   task instance succeeds on its first try;
d. a worker is SIGKILLed while its creates are held by Rivya: its task instances are failed by
   their heartbeat timeout, retried, and get their generations back by replay;
e. the storm (half of all API requests answer 500, 2 requests/s allowed): at most 2 429s per
   generation;
f. results on an object store (moto's S3 API): 20 generations made on the first worker copy
   their images to a bucket, and a downstream task on the second worker reads every file the
   manifests list (size and SHA-256 checked); the Rivya view shows and serves them from the
   bucket; lineage names the ``s3://`` datasets.

Each asserts one generation per task instance, credits equal to what the manifests say, and
origin labels that are true (``replayed`` exactly as often as the emulator replayed a create).
Each prints its wall time and the emulator's counters.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.emulator import RunningEmulator
from rivya_provider.lineage import path_dataset
from tests.e2e import services
from tests.e2e.airflow_processes import AirflowDeployment
from tests.e2e.production import TRIGGERERS, WORKERS, run_production, workloads_received
from tests.e2e.resilience import (
    CREATE,
    POLL,
    RECOVERY_ENV,
    Scenario,
    Traffic,
    check,
    counted_emulator,
    descends_from,
    paid_generations,
    report,
    unpause,
)
from tests.emulator_fixtures import connection_json

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(services.missing() is not None, reason=services.missing() or ""),
]

DAGS = Path(__file__).resolve().parent / "dags"
DAG = "rivya_storm"
OBJECT_STORE_DAG = "rivya_object_store"
BUCKET = "results"
SIZE = 20
#: Bounds on hangs, not assertions on speed.
RUN_TIMEOUT = 300.0
GOAL_429_PER_GENERATION = 2


@pytest.fixture(scope="module")
def counted() -> Iterator[tuple[RunningEmulator, Traffic]]:
    with counted_emulator(credits=100_000, queued_seconds=0.5, processing_seconds=3.0) as running:
        yield running


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with services.s3() as endpoint:
        services.s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture(scope="module")
def deployment(
    counted: tuple[RunningEmulator, Traffic],
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AirflowDeployment]:
    emulator, _ = counted
    env = {
        "AIRFLOW_CONN_RIVYA_DEFAULT": connection_json(emulator),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(services.aws_connection(s3_endpoint)),
        **RECOVERY_ENV,
    }
    root = tmp_path_factory.mktemp("production")
    with run_production(root, dags_folder=DAGS, extra_env=env) as running:
        unpause(running, DAG)
        unpause(running, OBJECT_STORE_DAG)
        yield running


def fresh(counted: tuple[RunningEmulator, Traffic]) -> tuple[RunningEmulator, Traffic]:
    """The module's emulator, reset: no tasks, counters, faults or traffic from earlier runs."""
    emulator, traffic = counted
    emulator.reset()
    traffic.reset()
    return emulator, traffic


def run(deployment: AirflowDeployment, run_id: str, output: Path) -> Scenario:
    scenario = Scenario(deployment=deployment, dag_id=DAG, run_id=run_id, output_dir=output)
    scenario.trigger()
    return scenario


def manifests(scenario: Scenario) -> dict[int, dict[str, Any]]:
    found = {ti["map_index"]: scenario.manifest(ti) for ti in scenario.task_instances}
    missing = sorted(index for index, manifest in found.items() if manifest is None)
    assert not missing, f"no manifest for {missing}: {scenario.explain()}"
    return {index: manifest for index, manifest in found.items() if manifest is not None}


def assert_one_generation_each(
    scenario: Scenario, emulator: RunningEmulator, traffic: Traffic, *, created: int = SIZE
) -> dict[int, dict[str, Any]]:
    """Every task instance succeeded with a generation of its own; credits match the manifests;
    ``replayed`` labels exactly the creates the emulator replayed. Return the manifests."""
    assert scenario.dag_run["state"] == "success", scenario.explain()
    assert len(scenario.task_instances) == SIZE, scenario.explain()
    assert all(ti["state"] == "success" for ti in scenario.task_instances), scenario.explain()
    found = manifests(scenario)
    counters = emulator.counters()
    assert counters["tasks_created"] == created, counters
    ids = [m["generation_id"] for m in found.values()]
    assert len(set(ids)) == SIZE, Counter(ids).most_common(3)
    # What was paid is what the manifests say, for generations this scenario created.
    paid = paid_generations(emulator, traffic)
    assert paid == {m["generation_id"]: m["charged_credits"] for m in found.values()}, paid
    assert counters["credits_charged"] == sum(paid.values()), (counters, paid)
    origins = Counter(m["origin"] for m in found.values())
    assert origins["replayed"] == counters["idempotent_replays"], (origins, counters)
    for manifest in found.values():
        assert len(manifest["files"]) == 1, manifest
        assert Path(manifest["files"][0]["path"]).is_file(), manifest
    return found


# -- a. healthy, b. cleared ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy(
    deployment: AirflowDeployment,
    counted: tuple[RunningEmulator, Traffic],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Scenario, dict[str, int]]:
    """The healthy run, and how many workloads each worker received during it."""
    emulator, traffic = fresh(counted)
    before = {worker: workloads_received(deployment, worker) for worker in WORKERS}
    scenario = run(deployment, "healthy", tmp_path_factory.mktemp("healthy"))
    scenario.wait(timeout=RUN_TIMEOUT)
    report("production healthy", scenario, emulator, traffic)
    received = {w: workloads_received(deployment, w) - before[w] for w in WORKERS}
    return scenario, received


def test_healthy_fan_out_pays_each_generation_once_on_both_workers(
    healthy: tuple[Scenario, dict[str, int]], counted: tuple[RunningEmulator, Traffic]
) -> None:
    emulator, traffic = counted
    scenario, received = healthy
    found = assert_one_generation_each(scenario, emulator, traffic)
    assert {m["origin"] for m in found.values()} == {"submitted"}
    assert all(ti["try_number"] == 1 for ti in scenario.task_instances), scenario.explain()
    assert all(count > 0 for count in received.values()), received


def test_a_cleared_run_finds_every_generation_again_and_pays_nothing(
    healthy: tuple[Scenario, dict[str, int]], counted: tuple[RunningEmulator, Traffic]
) -> None:
    emulator, traffic = counted
    scenario, _ = healthy
    credits_before = emulator.counters()["credits_charged"]
    first = manifests(scenario)
    deployment = scenario.deployment
    scenario.started = time.monotonic()
    check(
        deployment.api.post(
            f"/api/v2/dags/{DAG}/clearTaskInstances",
            json={
                "dry_run": False,
                "dag_run_id": scenario.run_id,
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )
    )
    scenario.wait(timeout=RUN_TIMEOUT, until=lambda s: s.dag_run.get("state") != "success")
    scenario.wait(timeout=RUN_TIMEOUT)
    report("production cleared", scenario, emulator, traffic)
    again = manifests(scenario)
    assert all(ti["state"] == "success" for ti in scenario.task_instances), scenario.explain()
    assert all(ti["try_number"] == 2 for ti in scenario.task_instances), scenario.explain()
    counters = emulator.counters()
    assert counters["tasks_created"] == SIZE, counters
    assert counters["credits_charged"] == credits_before, counters
    assert traffic.requests(CREATE) == SIZE, traffic.table()  # the first run's creates only
    for index, manifest in again.items():
        assert manifest["origin"] == "resumed", manifest
        assert manifest["generation_id"] == first[index]["generation_id"], (manifest, first[index])


# -- c. the triggerer holding every trigger killed -----------------------------------------------


def alive_triggerer_jobs(deployment: AirflowDeployment) -> set[int]:
    answer = check(
        deployment.api.get("/api/v2/jobs", params={"job_type": "TriggererJob", "is_alive": True})
    ).json()
    return {job["id"] for job in answer["jobs"]}


def holders(scenario: Scenario) -> Counter[int | None]:
    return Counter((ti.get("triggerer_job") or {}).get("id") for ti in scenario.task_instances)


def test_killed_triggerers_triggers_are_adopted_by_the_other(
    deployment: AirflowDeployment, counted: tuple[RunningEmulator, Traffic], tmp_path: Path
) -> None:
    emulator, traffic = fresh(counted)
    emulator.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=25)
    first, second = TRIGGERERS
    # One triggerer takes every trigger: the second is down while they are handed out.
    deployment.kill_component(second)
    try:
        scenario = run(deployment, "triggerer_killed", tmp_path)

        def all_held(current: Scenario) -> bool:
            held = holders(current)
            deferred = [ti for ti in current.task_instances if ti["state"] == "deferred"]
            return len(deferred) == SIZE and None not in held and traffic.requests(POLL) > 0

        scenario.wait(timeout=RUN_TIMEOUT, until=all_held, tolerate=lambda: None)
    finally:
        deployment.start_component(second)
    (killed_job,) = holders(scenario)
    assert killed_job is not None
    deployment.wait_for(
        f"{second} to heartbeat",
        lambda: (alive_triggerer_jobs(deployment) - {killed_job}) or None,
        timeout=60,
    )
    deployment.kill_component(first)
    killed_at = time.monotonic()
    try:
        scenario.wait(
            timeout=RUN_TIMEOUT,
            until=lambda s: killed_job not in holders(s) or s.dag_run.get("state") == "success",
            tolerate=lambda: None,
        )
        adopted_after = time.monotonic() - killed_at
        scenario.wait(timeout=RUN_TIMEOUT, tolerate=lambda: None)
    finally:
        deployment.start_component(first)
    report("production triggerer killed", scenario, emulator, traffic)
    print(f"[production triggerer killed] triggers adopted {adopted_after:.1f} s after the kill")
    found = assert_one_generation_each(scenario, emulator, traffic)
    assert {m["origin"] for m in found.values()} == {"submitted"}
    assert all(ti["try_number"] == 1 for ti in scenario.task_instances), scenario.explain()
    log_dir = deployment.home / "logs" / f"dag_id={DAG}" / "run_id=triggerer_killed"
    adopters = {
        path.name.rsplit(".", 2)[-2]
        for path in log_dir.glob("task_id=generate/map_index=*/attempt=1.log.trigger.*.log")
    }
    # Both triggerers' jobs wrote trigger logs: the killed one's waits went on in the other.
    assert str(killed_job) in adopters, adopters
    assert len(adopters) >= 2, adopters


# -- d. a worker killed while its creates are held -----------------------------------------------


def test_a_worker_killed_mid_create_is_retried_and_replayed_not_paid_twice(
    deployment: AirflowDeployment, counted: tuple[RunningEmulator, Traffic], tmp_path: Path
) -> None:
    emulator, traffic = fresh(counted)
    emulator.set_faults(create_delay_seconds=15)
    victim = WORKERS[0]
    scenario = run(deployment, "worker_killed", tmp_path)

    def on_victim(current: Scenario) -> list[int]:
        leader = deployment.processes[victim].pid
        return [
            ti["map_index"]
            for ti in current.task_instances
            if ti["state"] == "running"
            and isinstance(ti.get("pid"), int)
            and descends_from(ti["pid"], leader)
        ]

    scenario.wait(
        timeout=RUN_TIMEOUT,
        until=lambda s: traffic.creates_in_flight >= 2 and len(on_victim(s)) >= 2,
    )
    killed = on_victim(scenario)
    deployment.kill_component(victim)
    try:
        scenario.wait(timeout=RUN_TIMEOUT, tolerate=lambda: None)
    finally:
        deployment.start_component(victim)
    report("production worker killed", scenario, emulator, traffic)
    found = assert_one_generation_each(scenario, emulator, traffic)
    retried = {ti["map_index"] for ti in scenario.task_instances if ti["try_number"] > 1}
    assert set(killed) <= retried, (killed, retried, scenario.explain())
    # The killed tries' creates were on Rivya's side: their retries got them back by replay.
    assert emulator.counters()["idempotent_replays"] >= 1, emulator.counters()
    replayed = {index for index, manifest in found.items() if manifest["origin"] == "replayed"}
    assert replayed <= retried, (replayed, retried)


# -- e. the storm --------------------------------------------------------------------------------


def test_storm_stays_within_the_429_goal_and_pays_once(
    deployment: AirflowDeployment, counted: tuple[RunningEmulator, Traffic], tmp_path: Path
) -> None:
    emulator, traffic = fresh(counted)
    emulator.set_faults(server_error_rate=0.5, rate_limit_per_second=2)
    scenario = run(deployment, "storm", tmp_path)
    scenario.wait(timeout=RUN_TIMEOUT)
    report("production storm", scenario, emulator, traffic)
    assert_one_generation_each(scenario, emulator, traffic)
    assert traffic.status_count("500") > 0, traffic.table()
    assert traffic.status_count("429") > 0, traffic.table()
    rate = traffic.status_count("429") / SIZE
    assert rate <= GOAL_429_PER_GENERATION, f"{rate:.2f} 429s per generation: {traffic.table()}"


# -- f. results on an object store ---------------------------------------------------------------


def test_results_on_an_object_store_are_read_by_a_task_on_the_other_worker(
    deployment: AirflowDeployment,
    counted: tuple[RunningEmulator, Traffic],
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    emulator, traffic = fresh(counted)
    scenario = Scenario(
        deployment=deployment, dag_id=OBJECT_STORE_DAG, run_id="object_store", output_dir=tmp_path
    )
    scenario.trigger()
    scenario.wait(timeout=RUN_TIMEOUT)
    report("production object store", scenario, emulator, traffic)
    assert scenario.dag_run["state"] == "success", scenario.explain()
    made = [ti for ti in scenario.task_instances if ti["task_id"] == "generate"]
    (reader,) = [ti for ti in scenario.task_instances if ti["task_id"] == "read_back"]
    assert len(made) == SIZE, scenario.explain()
    assert emulator.counters()["tasks_created"] == SIZE
    prefix = f"s3://aws_default@{BUCKET}/object_store/"
    listed = [m["files"][0] for m in (scenario.manifest(ti) or {"files": [{}]} for ti in made)]
    assert all(str(entry.get("path", "")).startswith(prefix) for entry in listed), listed
    # The downstream task ran on the other "machine" and found every file, byte for byte.
    read = scenario.manifest(reader)
    assert read is not None
    assert read["listed"] == SIZE, read
    assert read["matching"] == SIZE, read
    assert read["home"].endswith(f"machines/{WORKERS[1]}"), read
    # The objects are in the bucket (read from here, outside Airflow), and lineage names them.
    keys = _bucket_keys(s3_endpoint, "object_store/")
    assert {entry["path"].removeprefix(f"s3://aws_default@{BUCKET}/") for entry in listed} <= keys
    for entry in listed:
        dataset = path_dataset(entry["path"])
        assert dataset.namespace == f"s3://{BUCKET}", dataset
        assert dataset.name.startswith("object_store/"), dataset
    # The Rivya view shows the copies and serves them from the bucket, through the API server.
    view = f"/rivya/runs/{OBJECT_STORE_DAG}/object_store"
    page = check(deployment.api.get(view)).text
    assert page.count('<img class="shot" src="./object_store/files/') == SIZE, page[:2000]
    by_sha = {entry["sha256"] for entry in listed}
    for index in range(SIZE):
        image = check(deployment.api.get(f"{view}/files/{index}/0"))
        assert image.headers["content-type"] == "image/png"
        assert hashlib.sha256(image.content).hexdigest() in by_sha


def _bucket_keys(endpoint: str, prefix: str) -> set[str]:
    answer = services.s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"] for item in answer.get("Contents", [])}
