"""Run one DAG with ``dag.test()`` in this fresh process and write its task states as JSON.

The OpenLineage provider reads its configuration once and registers its listener when Airflow
first loads plugins: a test that configures a transport runs the DAG here, in a new interpreter
with that configuration in its environment
(``python -m tests.airflow.lineage_run FILE DAG CONF RESULT_FILE``). The result goes to a file of
its own: on stdout, Airflow's log lines may run into it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.airflow.examples import run_example, task_states


def main(argv: list[str]) -> int:
    """Run the DAG; write ``{"run_id", "state", "tasks"}`` to the result file."""
    path, dag_id, conf, result = Path(argv[0]), argv[1], json.loads(argv[2]), Path(argv[3])
    run = run_example(path, dag_id, run_conf=conf)
    tasks = {f"{task}[{index}]": state for (task, index), state in task_states(run).items()}
    result.write_text(json.dumps({"run_id": run.run_id, "state": str(run.state), "tasks": tasks}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
