"""A production-shaped Airflow deployment for end-to-end tests: PostgreSQL, CeleryExecutor with a
Redis broker, two Celery workers and two triggerers beside the scheduler, dag-processor and API
server, all on 127.0.0.1 (docs/production.md describes the same configuration).

Each worker and triggerer gets a HOME and a ``RIVYA_CACHE_DIR`` of its own, as a process on
another machine would: nothing the provider shares between the processes of one machine (the
model catalogue, the pace of requests) is shared between them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.e2e import services
from tests.e2e.airflow_processes import COMPONENTS, AirflowDeployment, run_airflow

WORKERS = ("worker-1", "worker-2")
#: Queues each worker serves besides ``default``: the object-storage DAG makes its images on the
#: first and reads them back on the second.
QUEUES = {"worker-1": "makers", "worker-2": "readers"}
TRIGGERERS = ("triggerer-1", "triggerer-2")
PRODUCTION_COMPONENTS = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)
#: Task slots per worker: most tasks defer within seconds, so few slots carry a wide fan-out.
WORKER_CONCURRENCY = 6


def production_env(*, database: str, broker: str) -> dict[str, str]:
    """Airflow settings of the deployment, for the database and broker URLs given."""
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "32",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        # Celery's own URL scheme: "db+" and the driver (with SQLAlchemy 2.1 a bare
        # "db+postgresql://" fails with a misleading "only available in Airflow >= 2.8.0").
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        # A worker that dies takes its task instances' heartbeats with it: they are failed (and
        # retried) this many seconds later (300 by default).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    }


def worker_command(name: str) -> tuple[str, ...]:
    return (
        "celery",
        "worker",
        "--celery-hostname",
        f"{name}@%h",
        "--concurrency",
        str(WORKER_CONCURRENCY),
        "--queues",
        f"default,{QUEUES[name]}",
        "--skip-serve-logs",
        "--without-gossip",
        "--without-mingle",
    )


def own_machine(root: Path, name: str) -> dict[str, str]:
    """The environment that makes a component look like it runs on a machine of its own."""
    home = root / "machines" / name
    (home / "cache").mkdir(parents=True)
    return {"HOME": str(home), "RIVYA_CACHE_DIR": str(home / "cache")}


@contextmanager
def run_production(
    root: Path, *, dags_folder: Path, extra_env: Mapping[str, str]
) -> Iterator[AirflowDeployment]:
    """Start PostgreSQL, Redis and the deployment; yield it when every part is healthy."""
    with ExitStack() as stack:
        database = stack.enter_context(services.postgres())
        broker = stack.enter_context(services.redis())
        env = {**production_env(database=database, broker=broker), **extra_env}
        commands = {name: worker_command(name) for name in WORKERS}
        commands.update({name: COMPONENTS["triggerer"] for name in TRIGGERERS})
        machines = {name: own_machine(root, name) for name in (*WORKERS, *TRIGGERERS)}
        yield stack.enter_context(
            run_airflow(
                root / "deployment",
                dags_folder=dags_folder,
                extra_env=env,
                components=PRODUCTION_COMPONENTS,
                commands=commands,
                component_env=machines,
            )
        )


def workloads_received(deployment: AirflowDeployment, worker: str) -> int:
    """How many task workloads a Celery worker has received so far (from its output)."""
    output = deployment.output_of(worker)
    text = output.read_text(errors="replace") if output.exists() else ""
    return len(re.findall(r"Task \S*execute_workload\[[^\]]+\] received", text))
