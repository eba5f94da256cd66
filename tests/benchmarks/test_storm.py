"""The storm against a healthy Rivya: wall time, API requests and 429s per generation.

Run with ``make bench``. One real Airflow deployment (the e2e harness) runs the 20 mapped
generations of ``rivya_storm`` against an emulator: without faults, then with half of the API
requests answering 500 and the API allowing 2 requests/s, then that storm again through a
connection with client-side pacing. Prints the numbers; asserts only that every run succeeded
and created 20 generations.
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
SIZE = 20
RUN_TIMEOUT = 600.0
STORM = {"server_error_rate": 0.5, "rate_limit_per_second": 2}
#: Client-side pacing of the ``rivya_paced`` connection, per process (each worker and the
#: triggerer pace on their own).
PACED_RPS = 1.0
#: Name: (DAG, emulator faults).
RUNS: dict[str, tuple[str, dict[str, float]]] = {
    "healthy": ("rivya_storm", {}),
    "storm (50% 500, 2 req/s)": ("rivya_storm", STORM),
    f"storm, paced {PACED_RPS:g} req/s": ("rivya_storm_paced", STORM),
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
    env = {
        "AIRFLOW_CONN_RIVYA_DEFAULT": connection_json(counted[0]),
        "AIRFLOW_CONN_RIVYA_PACED": connection_json(counted[0], requests_per_second=PACED_RPS),
    }
    with run_airflow(root, dags_folder=DAGS, extra_env=env) as running:
        for dag_id, _ in RUNS.values():
            unpause(running, dag_id)
        yield running


def test_storm_against_a_healthy_run(
    deployment: AirflowDeployment,
    counted: tuple[RunningEmulator, Traffic],
    tmp_path: Path,
) -> None:
    emulator, traffic = counted
    print()
    print(
        f"{'run':<28} {'wall s':>7} {'req/gen':>8} {'429/gen':>8} {'500/gen':>8} "
        f"{'429 models/create/poll':>23} {'max tries':>9}"
    )
    for number, (name, (dag_id, faults)) in enumerate(RUNS.items()):
        emulator.reset()
        traffic.reset()
        emulator.set_faults(**faults)
        scenario = Scenario(
            deployment=deployment,
            dag_id=dag_id,
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
            f"{name:<28} {scenario.wall_seconds:>7.1f} {traffic.requests() / SIZE:>8.1f} "
            f"{traffic.status_count('429') / SIZE:>8.2f} "
            f"{traffic.status_count('500') / SIZE:>8.2f} {by_route:>23} {tries:>9}"
        )
