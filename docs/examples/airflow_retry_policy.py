"""The provider's retry policy (Airflow 3.3+) on a generation task.

``rivya_retry_policy()`` fails at once when the wallet is empty, retries later when Rivya is
busy, and generates anew soon after a failed generation (which costs nothing); see
docs/reliability.md. Retrying never pays twice: each try finds the generation of the earlier one.

Needs the Airflow Connection ``rivya_default``. Run by
tests/integration/test_doc_examples_airflow.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from rivya_provider.operators.generate import RivyaGenerateOperator

# --8<-- [start:policy]
from rivya_provider.retry_policy import rivya_retry_policy

# --8<-- [end:policy]

with DAG(
    dag_id="rivya_retry_policy",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["rivya", "example"],
) as dag:
    # --8<-- [start:task]
    RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="A lighthouse on a cliff at dawn, watercolour",
        retries=3,
        retry_delay=timedelta(minutes=1),
        retry_policy=rivya_retry_policy(busy_delay=timedelta(minutes=10)),
    )
    # --8<-- [end:task]
