"""DAGs of the scale benchmark (``tests/benchmarks/test_scale_table.py``).

``rivya_fanout``: 20 mapped deferrable generations with the default (adaptive) polls;
``rivya_fanout_fixed``: the same with a fixed 5 s poll interval and a 2.5 s first poll.

Each task retries once, a second later: on Airflow 3.3 a trigger that fires right at the end of
the guard window can still lose a task instance to the early-trigger race under load, and the
retry picks its generation up at no charge (as a production DAG with ``retries`` would).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from rivya_provider.operators.generate import RivyaGenerateOperator

SIZE = 20
FIXED: dict[str, Any] = {"poll_interval": 5.0, "first_poll_delay": 2.5}

for dag_id, polls in (("rivya_fanout", {}), ("rivya_fanout_fixed", FIXED)):
    # All 20 at once: Airflow's default [core] max_active_tasks_per_dag is 16.
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_tasks=SIZE,
    ):
        RivyaGenerateOperator.partial(
            task_id="generate",
            model="flux-2-flex",
            deferrable=True,
            retries=1,
            retry_delay=timedelta(seconds=1),
            **polls,
        ).expand(prompt=[f"Fan-out poster number {n}" for n in range(SIZE)])
