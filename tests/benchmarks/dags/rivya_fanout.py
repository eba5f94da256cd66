"""DAGs of the scale benchmark (``tests/benchmarks/test_scale_table.py``).

``rivya_fanout``: 20 mapped deferrable generations with the default (adaptive) polls;
``rivya_fanout_fixed``: the same with a fixed 5 s poll interval and a 2.5 s first poll.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from rivya_provider.operators.generate import RivyaGenerateOperator

SIZE = 20
FIXED: dict[str, Any] = {"poll_interval": 5.0, "first_poll_delay": 2.5}

for dag_id, polls in (("rivya_fanout", {}), ("rivya_fanout_fixed", FIXED)):
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        RivyaGenerateOperator.partial(
            task_id="generate", model="flux-2-flex", deferrable=True, **polls
        ).expand(prompt=[f"Fan-out poster number {n}" for n in range(SIZE)])
