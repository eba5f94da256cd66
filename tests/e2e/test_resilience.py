"""End to end: generations survive a failing, rate-limited Rivya and crashing Airflow processes.

One real deployment (``api-server``, ``scheduler`` with LocalExecutor, ``dag-processor``,
``triggerer``) serves the DAGs of ``tests/e2e/dags`` for the whole module; the emulator is reset
before each scenario:

a. the storm: 20 mapped deferrable generations while half of all API requests answer 500 and
   the API allows 2 requests/s: every task succeeds on its first or second try, 20 generations
   are created and each paid one belongs to a successful task instance;
b. (``slow_e2e``; ``make test`` kills a Celery worker holding several such creates in
   ``tests/e2e/test_production.py``) the worker running a task is SIGKILLed while its create is
   held for 15 s: the retry waits the in-flight conflicts out, gets the first create replayed
   and succeeds on one charge;
c. (``slow_e2e``) the triggerer is SIGKILLed while it waits for a generation and started again:
   the new one picks the trigger up and the same try succeeds;
d. (``slow_e2e``) the scheduler is SIGKILLed while a task is deferred and started again: the
   run still succeeds on one charge.

Each scenario prints its wall time and the emulator's counters.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.e2e.airflow_processes import AirflowDeployment, run_airflow
from tests.e2e.resilience import (
    CREATE,
    MODELS,
    POLL,
    RECOVERY_ENV,
    Scenario,
    Traffic,
    counted_emulator,
    paid_generations,
    report,
    task_pid,
    unpause,
)
from tests.emulator_fixtures import connection_json

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).resolve().parent / "dags"
STORM_DAG = "rivya_storm"
SINGLE_DAG = "rivya_single"
STORM_SIZE = 20
START_CREDITS = 100_000
#: Bounds on hangs, not assertions on speed.
RUN_TIMEOUT = 300.0
#: The storm's goal for the API's answers: at most this many 429s per generation.
GOAL_429_PER_GENERATION = 2


@pytest.fixture(scope="module")
def counted() -> Iterator[tuple[RunningEmulator, Traffic]]:
    with counted_emulator(
        credits=START_CREDITS, queued_seconds=0.5, processing_seconds=3.0
    ) as running:
        yield running


@pytest.fixture(scope="module")
def deployment(
    counted: tuple[RunningEmulator, Traffic], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowDeployment]:
    emulator, _ = counted
    root = tmp_path_factory.mktemp("resilience")
    env = {"AIRFLOW_CONN_RIVYA_DEFAULT": connection_json(emulator), **RECOVERY_ENV}
    with run_airflow(root / "deployment", dags_folder=DAGS, extra_env=env) as running:
        unpause(running, STORM_DAG)
        unpause(running, SINGLE_DAG)
        yield running


@pytest.fixture
def fresh(counted: tuple[RunningEmulator, Traffic]) -> tuple[RunningEmulator, Traffic]:
    """The module's emulator, reset: no tasks, counters, faults or traffic from other tests."""
    emulator, traffic = counted
    emulator.reset()
    traffic.reset()
    return emulator, traffic


# -- a. the storm --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storm(
    deployment: AirflowDeployment,
    counted: tuple[RunningEmulator, Traffic],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Scenario, dict[str, object]]:
    emulator, traffic = counted
    emulator.reset()
    traffic.reset()
    emulator.set_faults(server_error_rate=0.5, rate_limit_per_second=2)
    scenario = Scenario(
        deployment=deployment,
        dag_id=STORM_DAG,
        run_id="storm",
        output_dir=tmp_path_factory.mktemp("storm-output"),
    )
    scenario.trigger()
    scenario.wait(timeout=RUN_TIMEOUT)
    report("storm", scenario, emulator, traffic)
    manifests = {ti["map_index"]: scenario.manifest(ti) for ti in scenario.task_instances}
    paid = paid_generations(emulator, traffic)
    return scenario, {
        "counters": emulator.counters(),
        "manifests": manifests,
        "paid": paid,
        "traffic": traffic,
        "rate_429": traffic.status_count("429") / STORM_SIZE,
    }


def storm_traffic(storm: tuple[Scenario, dict[str, object]]) -> Traffic:
    """What the storm's requests met, route by route."""
    traffic = storm[1]["traffic"]
    assert isinstance(traffic, Traffic)
    return traffic


def test_storm_every_generation_succeeds_on_its_first_or_second_try(
    storm: tuple[Scenario, dict[str, object]],
) -> None:
    scenario, _ = storm
    tis = scenario.task_instances
    assert len(tis) == STORM_SIZE, scenario.explain()
    states = {ti["map_index"]: (ti["state"], ti["try_number"]) for ti in tis}
    assert all(state == "success" for state, _ in states.values()), states
    assert all(tries <= 2 for _, tries in states.values()), states
    assert scenario.dag_run["state"] == "success", scenario.explain()


def test_storm_pays_each_generation_once_and_only_for_successful_tasks(
    storm: tuple[Scenario, dict[str, object]],
) -> None:
    scenario, record = storm
    counters = record["counters"]
    assert isinstance(counters, dict)
    assert counters["tasks_created"] == STORM_SIZE, counters
    manifests = record["manifests"]
    assert isinstance(manifests, dict)
    succeeded = {ti["map_index"] for ti in scenario.task_instances if ti["state"] == "success"}
    delivered = {
        m["generation_id"]: m["charged_credits"]
        for index, m in manifests.items()
        if index in succeeded and m is not None
    }
    # No generation succeeded and was charged behind a failed task instance.
    assert record["paid"] == delivered, (record["paid"], delivered)
    assert counters["credits_charged"] == sum(delivered.values()), counters
    for manifest in manifests.values():
        assert manifest is not None
        assert len(manifest["files"]) == 1, manifest
        assert Path(manifest["files"][0]["path"]).is_file()


def test_storm_reads_the_catalogue_once_for_all_its_tasks(
    storm: tuple[Scenario, dict[str, object]],
) -> None:
    # Twenty task processes start together: one reads /models, the others wait for its copy. A
    # second read is allowed for a read that failed (its fallback is shared for a minute only);
    # a read retries a 429 or 5xx for up to 10 s, so one read may take a few requests.
    traffic = storm_traffic(storm)
    assert 1 <= traffic.status_count("200", MODELS) <= 2, traffic.table()
    assert traffic.requests(MODELS) <= 8, traffic.table()  # one read per task would be 20


def test_storm_stays_within_the_429_goal(storm: tuple[Scenario, dict[str, object]]) -> None:
    _, record = storm
    traffic = storm_traffic(storm)
    # The faults were really in force.
    assert traffic.status_count("500") > 0, traffic.table()
    assert traffic.status_count("429") > 0, traffic.table()
    rate = record["rate_429"]
    assert isinstance(rate, float)
    by_route = {
        route: traffic.status_count("429", route) / STORM_SIZE for route in (MODELS, CREATE, POLL)
    }
    assert rate <= GOAL_429_PER_GENERATION, f"{rate:.2f} 429s per generation: {by_route}"


# -- b. the worker killed during a held create ---------------------------------------------------


@pytest.mark.slow_e2e  # `make test` runs it 20-wide on Celery: tests/e2e/test_production.py
def test_worker_killed_during_a_held_create_reattaches_on_retry(
    deployment: AirflowDeployment,
    fresh: tuple[RunningEmulator, Traffic],
    tmp_path: Path,
) -> None:
    emulator, traffic = fresh
    emulator.set_faults(create_delay_seconds=15)
    scenario = Scenario(
        deployment=deployment, dag_id=SINGLE_DAG, run_id="held_create", output_dir=tmp_path
    )
    scenario.trigger()

    def create_held(current: Scenario) -> bool:
        running = [ti for ti in current.task_instances if ti["state"] == "running"]
        return (
            traffic.creates_in_flight > 0
            and bool(running)
            and task_pid(deployment, running[0]) is not None
        )

    scenario.wait(timeout=RUN_TIMEOUT, until=create_held)
    ti = scenario.task_instances[0]
    pid = task_pid(deployment, ti)
    assert pid is not None, ti
    os.kill(pid, signal.SIGKILL)
    scenario.wait(timeout=RUN_TIMEOUT)
    report("worker killed during a held create", scenario, emulator, traffic)

    ti = scenario.task_instances[0]
    assert ti["state"] == "success", scenario.explain()
    assert ti["try_number"] == 2, scenario.explain()
    first = scenario.tries(ti)[0]
    assert first["state"] in {"failed", "up_for_retry"}, first
    counters = emulator.counters()
    assert counters["tasks_created"] == 1, counters
    assert counters["idempotent_replays"] == 1, counters
    creates = traffic.creates_by_key
    assert len(creates) == 1, dict(creates)
    statuses = next(iter(creates.values()))
    # The killed try's create, then the retry's: conflicts while the first is held, a replay.
    assert statuses["409"] >= 1, statuses
    manifest = scenario.manifest(ti)
    assert manifest is not None
    assert manifest["charged_credits"] > 0
    assert counters["credits_charged"] == manifest["charged_credits"], counters


# -- c. the triggerer killed mid-wait ------------------------------------------------------------


def _long_generation(emulator: RunningEmulator, seconds: float) -> None:
    """Make every new generation take ``seconds`` longer, so a crash lands mid-wait."""
    emulator.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=seconds)


def _deferred_and_polled(traffic: Traffic) -> Callable[[Scenario], bool]:
    def check(current: Scenario) -> bool:
        ti = current.task_instances[0] if current.task_instances else {}
        picked_up = (ti.get("triggerer_job") or {}).get("id") is not None
        return ti.get("state") == "deferred" and picked_up and traffic.requests(POLL) > 0

    return check


def _assert_one_paid_try(
    scenario: Scenario, emulator: RunningEmulator, traffic: Traffic
) -> dict[str, Any]:
    ti = scenario.task_instances[0]
    assert ti["state"] == "success", scenario.explain()
    assert ti["try_number"] == 1, scenario.explain()
    counters = emulator.counters()
    assert counters["tasks_created"] == 1, counters
    assert traffic.requests(CREATE) == 1, traffic.table()
    manifest = scenario.manifest(ti)
    assert manifest is not None
    assert manifest["status"] == "succeeded", manifest
    assert counters["credits_charged"] == manifest["charged_credits"] > 0, counters
    return manifest


@pytest.mark.slow_e2e
def test_triggerer_killed_mid_wait_and_restarted(
    deployment: AirflowDeployment,
    fresh: tuple[RunningEmulator, Traffic],
    tmp_path: Path,
) -> None:
    emulator, traffic = fresh
    _long_generation(emulator, 25)
    scenario = Scenario(
        deployment=deployment, dag_id=SINGLE_DAG, run_id="triggerer_killed", output_dir=tmp_path
    )
    scenario.trigger()
    scenario.wait(timeout=RUN_TIMEOUT, until=_deferred_and_polled(traffic))
    first_triggerer = scenario.task_instances[0]["triggerer_job"]["id"]
    deployment.kill_component("triggerer")
    polls_before = traffic.requests(POLL)
    deployment.start_component("triggerer")
    scenario.wait(timeout=RUN_TIMEOUT)
    report("triggerer killed mid-wait", scenario, emulator, traffic)

    _assert_one_paid_try(scenario, emulator, traffic)
    # The restarted triggerer (a new job) took the trigger over and polled to the end.
    assert traffic.requests(POLL) > polls_before, traffic.table()
    log_dir = (
        deployment.home
        / "logs"
        / f"dag_id={SINGLE_DAG}"
        / "run_id=triggerer_killed"
        / "task_id=generate"
    )
    trigger_logs = sorted(p.name for p in log_dir.glob("attempt=1.log.trigger.*.log"))
    assert f"attempt=1.log.trigger.{first_triggerer}.log" in trigger_logs, trigger_logs
    assert len(trigger_logs) >= 2, trigger_logs


# -- d. the scheduler killed and restarted -------------------------------------------------------


@pytest.mark.slow_e2e
def test_scheduler_killed_while_deferred_and_restarted(
    deployment: AirflowDeployment,
    fresh: tuple[RunningEmulator, Traffic],
    tmp_path: Path,
) -> None:
    emulator, traffic = fresh
    _long_generation(emulator, 15)
    scenario = Scenario(
        deployment=deployment, dag_id=SINGLE_DAG, run_id="scheduler_killed", output_dir=tmp_path
    )
    scenario.trigger()
    scenario.wait(timeout=RUN_TIMEOUT, until=_deferred_and_polled(traffic))
    deployment.kill_component("scheduler")
    deployment.start_component("scheduler")
    scenario.wait(timeout=RUN_TIMEOUT)
    report("scheduler killed while deferred", scenario, emulator, traffic)

    manifest = _assert_one_paid_try(scenario, emulator, traffic)
    assert manifest["origin"] == "submitted", manifest
    assert emulator.counters()["idempotent_replays"] == 0
