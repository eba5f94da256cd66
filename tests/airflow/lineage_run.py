"""Run one DAG with ``dag.test()`` in this fresh process and print its task states as JSON.

The OpenLineage provider reads its configuration once and registers its listener when Airflow
first loads plugins: a test that configures a transport runs the DAG here, in a new interpreter
with that configuration in its environment (``python -m tests.airflow.lineage_run FILE DAG CONF``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.airflow.examples import run_example, task_states


def main(argv: list[str]) -> int:
    """Run the DAG; print ``RESULT {"run_id", "state", "tasks"}`` on a line of its own."""
    path, dag_id, conf = Path(argv[0]), argv[1], json.loads(argv[2])
    run = run_example(path, dag_id, run_conf=conf)
    tasks = {f"{task}[{index}]": state for (task, index), state in task_states(run).items()}
    print(
        "RESULT",
        json.dumps({"run_id": run.run_id, "state": str(run.state), "tasks": tasks}),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
