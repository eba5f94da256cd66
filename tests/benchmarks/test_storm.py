"""The storm against a healthy Rivya: wall time, API requests and 429s per generation.

Run with ``make bench``. One real Airflow deployment (the e2e harness) runs the 20 mapped
generations of ``rivya_storm`` twice against an emulator: without faults, then with half of the
API requests answering 500 and the API allowing 2 requests/s. Prints the numbers; asserts only
that both runs succeeded and created 20 generations each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.e2e.airflow_processes import AirflowDeployment, run_airflow
from tests.e2e.resilience import CREATE, MODELS, POLL, Scenario, Traffic, counted_emulator, unpause
from tests.emulator_fixtures import connection_json

pytestmark = pytest.mark.benchmark

DAGS = Path(__file__).resolve().parents[1] / "e2e" / "dags"
DAG_ID = "rivya_storm"
SIZE = 20
RUN_TIMEOUT = 600.0
RUNS = {
    "healthy": {},
    "storm (50% 500, 2 req/s)": {"server_error_rate": 0.5, "rate_limit_per_second": 2},
}


@pytest.fixture(scope="module")
def counted() -> Iterator[tuple[RunningEmulator, Traffic]]:
    with counted_emulator(credits=100_000, queued_seconds=0.5, processing_seconds=3.0) as running:
        yield running


@pytest.fixture(scope="module")
def deployment(
    counted: tuple[RunningEmulator, Traffic], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowDeployment]:
    root = tmp_path_factory.mktemp("storm-bench") / "deployment"
    env = {"AIRFLOW_CONN_RIVYA_DEFAULT": connection_json(counted[0])}
    with run_airflow(root, dags_folder=DAGS, extra_env=env) as running:
        unpause(running, DAG_ID)
        yield running


def test_storm_against_a_healthy_run(
    deployment: AirflowDeployment,
    counted: tuple[RunningEmulator, Traffic],
    tmp_path: Path,
) -> None:
    emulator, traffic = counted
    print()
    print(
        f"{'run':<26} {'wall s':>7} {'req/gen':>8} {'429/gen':>8} {'500/gen':>8} "
        f"{'429 models/create/poll':>23} {'max tries':>9}"
    )
    for number, (name, faults) in enumerate(RUNS.items()):
        emulator.reset()
        traffic.reset()
        emulator.set_faults(**faults)
        scenario = Scenario(
            deployment=deployment,
            dag_id=DAG_ID,
            run_id=f"bench_{number}",
            output_dir=tmp_path / str(number),
        )
        scenario.trigger()
        scenario.wait(timeout=RUN_TIMEOUT)
        counters = emulator.counters()
        assert scenario.dag_run["state"] == "success", scenario.explain()
        assert counters["tasks_created"] == SIZE, counters
        by_route = "/".join(str(traffic.status_count("429", r)) for r in (MODELS, CREATE, POLL))
        tries = max(ti["try_number"] for ti in scenario.task_instances)
        print(
            f"{name:<26} {scenario.wall_seconds:>7.1f} {traffic.requests() / SIZE:>8.1f} "
            f"{traffic.status_count('429') / SIZE:>8.2f} "
            f"{traffic.status_count('500') / SIZE:>8.2f} {by_route:>23} {tries:>9}"
        )
