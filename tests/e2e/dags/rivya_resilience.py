"""DAGs of the resilience end-to-end tests (``tests/e2e/test_resilience.py``).

- ``rivya_storm``: 20 mapped deferrable generations, for a server that fails and rate limits;
  ``rivya_storm_paced`` is the same through the ``rivya_paced`` connection.
- ``rivya_single``: one deferrable generation, for crashes of the worker, triggerer or scheduler.

Both copy their images to ``{{ params.output_dir }}/<run id>`` (the test passes a folder in the
run's conf) and retry after 5 s, so a retry happens within the test's time.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param

from rivya_provider.operators.generate import RivyaGenerateOperator

STORM_SIZE = 20
OUTPUT_PARAM = Param(
    os.environ.get("RIVYA_OUTPUT_DIR", os.path.join(tempfile.gettempdir(), "rivya-e2e")),
    type="string",
)
#: Short waits: the emulator's generations take seconds, and a hang should fail the test early.
COMMON: dict[str, Any] = {
    "model": "flux-2-flex",
    "model_params": {"aspectRatio": "1:1"},
    "output_path": "{{ params.output_dir }}/{{ run_id }}",
    "deferrable": True,
    "poll_interval": 3.0,
    "generation_timeout": 300.0,
    "retry_delay": timedelta(seconds=5),
}

# The same storm through two connections: ``rivya_paced`` sets client-side pacing
# (``requests_per_second``) where it is defined (the benchmark compares both).
for dag_id, conn_id in (("rivya_storm", "rivya_default"), ("rivya_storm_paced", "rivya_paced")):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"output_dir": OUTPUT_PARAM},
    ):
        RivyaGenerateOperator.partial(
            task_id="generate", retries=2, rivya_conn_id=conn_id, **COMMON
        ).expand(prompt=[f"Storm poster number {n}, flat colours" for n in range(STORM_SIZE)])

with DAG(
    dag_id="rivya_single",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"output_dir": OUTPUT_PARAM},
):
    RivyaGenerateOperator(
        task_id="generate", prompt="A lighthouse in a storm, woodcut", retries=1, **COMMON
    )
