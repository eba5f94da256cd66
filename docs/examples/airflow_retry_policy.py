"""A retry policy (Airflow 3.3+) that tells Rivya's retryable failures apart.

Invalid input and a bad API key never reach a retry policy: they raise ``RivyaInputError`` /
``RivyaAuthError``, which are ``AirflowFailException`` subclasses. Everything else follows the
task's ``retries``; this policy refines that by exception type. Retrying never pays twice: each
try finds the generation of the earlier one (see docs/reliability.md).

Needs the Airflow Connection ``rivya_default``. Run by
tests/integration/test_doc_examples_airflow.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, ExceptionRetryPolicy, RetryAction, RetryRule

from rivya_provider.client import (
    GenerationFailedError,
    InsufficientCreditsError,
    RateLimitedError,
    ServiceUnavailableError,
)
from rivya_provider.operators.generate import RivyaGenerateOperator

# --8<-- [start:policy]
RIVYA_RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=InsufficientCreditsError,
            action=RetryAction.FAIL,
            reason="Top up the Rivya wallet, then clear the task",
        ),
        RetryRule(
            exception=[RateLimitedError, ServiceUnavailableError],
            action=RetryAction.RETRY,
            retry_delay=timedelta(minutes=10),
            reason="Rivya is busy or paused; try again later",
        ),
        RetryRule(
            exception=GenerationFailedError,
            action=RetryAction.RETRY,
            retry_delay=timedelta(seconds=30),
            reason="A failed generation costs nothing; the retry generates anew",
        ),
    ],
)
# --8<-- [end:policy]

with DAG(
    dag_id="rivya_retry_policy",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["rivya", "example"],
) as dag:
    RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="A lighthouse on a cliff at dawn, watercolour",
        retries=3,
        retry_delay=timedelta(minutes=1),
        retry_policy=RIVYA_RETRY_POLICY,
    )
