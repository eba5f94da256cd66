"""The retry-policy example the docs quote runs for real (``dag.test()``) against the emulator.

The example DAGs of dags_examples/ are run by tests/airflow/test_example_dags.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.airflow.examples import connect_rivya_default, run_example, task_states
from tests.airflow_compat import requires_airflow
from tests.integration.test_examples import load

# ExceptionRetryPolicy, RetryRule and RetryAction came with Airflow 3.3.
pytestmark = requires_airflow("3.3", "ExceptionRetryPolicy")

RETRY_POLICY = Path(__file__).resolve().parents[2] / "docs" / "examples" / "airflow_retry_policy.py"


def test_retry_policy_fails_at_once_on_insufficient_credits(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    emulator.set_credits(5)

    run = run_example(RETRY_POLICY, "rivya_retry_policy")

    # retries=3 on the task, yet one try: the policy's FAIL rule matched.
    assert task_states(run) == {("generate", -1): ("failed", 1)}
    counters = emulator.counters()
    assert counters["requests"]["POST /api/v1/generations"] == 1
    assert counters["tasks_created"] == 0


def test_retry_policy_rules_pick_the_documented_actions() -> None:
    from airflow.sdk import RetryAction

    from rivya_provider.client import (
        GenerationFailedError,
        InsufficientCreditsError,
        RateLimitedError,
        ServiceUnavailableError,
    )

    (task,) = load(RETRY_POLICY).dag.tasks
    policy = task.retry_policy
    limited = RateLimitedError(status_code=429, code="rate_limited", message="slow down")
    paused = ServiceUnavailableError(status_code=503, code="api_disabled", message="paused")
    broke = InsufficientCreditsError(status_code=402, code="insufficient_credits", message="0")
    failed = GenerationFailedError(task_id="task_1", code="generation_failed", message="no")

    assert policy.evaluate(broke, 1, 4).action is RetryAction.FAIL
    assert policy.evaluate(limited, 1, 4).action is RetryAction.RETRY
    assert policy.evaluate(limited, 1, 4).retry_delay.total_seconds() == 600
    assert policy.evaluate(paused, 1, 4).retry_delay.total_seconds() == 600
    assert policy.evaluate(failed, 1, 4).retry_delay.total_seconds() == 30
    assert policy.evaluate(RuntimeError("other"), 1, 4).action is RetryAction.DEFAULT
