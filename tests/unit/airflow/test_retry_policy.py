"""``rivya_provider.retry_policy``: importable everywhere, a working policy on Airflow 3.3+."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rivya_provider import retry_policy
from rivya_provider.client import GenerationFailedError, RateLimitedError
from tests.airflow_compat import airflow_at_least, requires_airflow


@pytest.mark.skipif(
    airflow_at_least("3.3"), reason="Airflow 3.3+ has retry policies: nothing to refuse"
)
def test_below_3_3_building_the_policy_says_what_it_needs() -> None:
    with pytest.raises(ImportError, match=r"need Airflow 3\.3\+"):
        retry_policy.rivya_retry_policy()


@requires_airflow("3.3", "ExceptionRetryPolicy and RetryAction")
def test_the_delays_are_the_callers() -> None:
    from airflow.sdk import RetryAction

    policy = retry_policy.rivya_retry_policy(
        busy_delay=timedelta(minutes=3), failed_generation_delay=timedelta(seconds=7)
    )
    limited = RateLimitedError(status_code=429, code="rate_limited", message="slow down")
    failed = GenerationFailedError(task_id="task_1", code="generation_failed", message="no")

    assert policy.evaluate(limited, 1, 4).retry_delay == timedelta(minutes=3)
    assert policy.evaluate(failed, 1, 4).retry_delay == timedelta(seconds=7)
    assert policy.evaluate(failed, 1, 4).action is RetryAction.RETRY
