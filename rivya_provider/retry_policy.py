"""A ready-made ``retry_policy`` for Rivya tasks (Airflow 3.3+, where ``RetryAction`` came).

Importing this module works on every supported Airflow release; building the policy needs 3.3.
Input errors and a bad API key never reach a retry policy: they raise ``RivyaInputError`` /
``RivyaAuthError``, which are ``AirflowFailException`` subclasses. Retrying never pays twice:
each try finds the generation of the earlier one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from rivya_provider.client import (
    GenerationFailedError,
    InsufficientCreditsError,
    RateLimitedError,
    ServiceUnavailableError,
)

if TYPE_CHECKING:
    from airflow.sdk import ExceptionRetryPolicy

#: Why :func:`rivya_retry_policy` cannot build a policy on this Airflow release.
NEEDS_AIRFLOW_3_3 = "retry policies (ExceptionRetryPolicy, RetryAction) need Airflow 3.3+"


def rivya_retry_policy(
    *,
    busy_delay: timedelta = timedelta(minutes=10),
    failed_generation_delay: timedelta = timedelta(seconds=30),
) -> ExceptionRetryPolicy:
    """Return an ``ExceptionRetryPolicy`` that tells Rivya's failures apart.

    Rules, in order: ``InsufficientCreditsError`` fails the task at once (top up, then clear);
    ``RateLimitedError`` and ``ServiceUnavailableError`` retry after ``busy_delay``;
    ``GenerationFailedError`` (which costs nothing) retries after ``failed_generation_delay``.
    Any other exception follows the task's ``retries`` and ``retry_delay``. A policy never grants
    more tries than ``retries``.

    :param busy_delay: wait before retrying when Rivya is rate limiting or paused.
    :param failed_generation_delay: wait before generating anew after a failed generation.
    :raises ImportError: below Airflow 3.3.
    """
    try:
        from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
    except ImportError as exc:
        raise ImportError(NEEDS_AIRFLOW_3_3) from exc
    return ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=InsufficientCreditsError,
                action=RetryAction.FAIL,
                reason="Top up the Rivya wallet, then clear the task",
            ),
            RetryRule(
                exception=[RateLimitedError, ServiceUnavailableError],
                action=RetryAction.RETRY,
                retry_delay=busy_delay,
                reason="Rivya is busy or paused; try again later",
            ),
            RetryRule(
                exception=GenerationFailedError,
                action=RetryAction.RETRY,
                retry_delay=failed_generation_delay,
                reason="A failed generation costs nothing; the retry generates anew",
            ),
        ],
    )
