"""When a failed request is sent again: transient failures within a time budget, nothing else.

Waits for a generation do not come here: each of their polls is one attempt, and
:mod:`rivya_provider.client.polling` decides when to poll again. No I/O.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from tenacity import RetryCallState, retry_if_exception, wait_random_exponential

from rivya_provider.client.config import RetryPolicy
from rivya_provider.client.endpoints import Call
from rivya_provider.client.errors import IdempotencyConflictError, RivyaAPIError, is_retryable

log = logging.getLogger("rivya_provider.client")


def retry_options(
    policy: RetryPolicy,
    call: Call,
    *,
    clock: Callable[[], float] = time.monotonic,
    started: float | None = None,
) -> dict[str, Any]:
    """tenacity options: retry what may succeed next time, within the policy's time budget.

    :param policy: the retry settings.
    :param call: the request (for its label and its own attempt cap).
    :param clock: monotonic seconds; the budget counts from the first attempt.
    :param started: when the first attempt began by ``clock`` (default: now).
    """
    backoff = wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max)
    if started is None:
        started = clock()
    max_attempts = call.max_attempts or policy.max_attempts
    # A call's own budget (a /models read) shortens the policy's, never lengthens it.
    budget = min(policy.time_budget, call.time_budget or policy.time_budget)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RivyaAPIError) and error.retry_after is not None:
            return policy.after_retry_after(error.retry_after, attempt=state.attempt_number)
        return float(backoff(state))

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= max_attempts:
            return True
        return clock() - started + (state.upcoming_sleep or 0.0) > budget

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "Rivya %s failed (%s); attempt %d, retrying in %.1fs (%.0fs of %.0fs spent)",
            call.label,
            error,
            state.attempt_number,
            state.upcoming_sleep,
            clock() - started,
            budget,
        )

    return {
        "stop": stop,
        "wait": wait,
        "retry": retry_if_exception(is_retryable),
        "before_sleep": before_sleep,
        "reraise": True,
    }


class ConflictWait:
    """How long a create keeps retrying an ``idempotency_conflict``, and how it backs off.

    :param budget: seconds to keep retrying.
    :param clock: the client's monotonic clock.
    :param key: the refused Idempotency-Key (named in the final error).
    :param client_request_id: the create's trace id (named in the final error).
    """

    _FIRST = 1.0
    _LONGEST = 30.0

    def __init__(
        self,
        *,
        budget: float,
        clock: Callable[[], float],
        key: str,
        client_request_id: str | None,
    ) -> None:
        self._clock = clock
        self._started = clock()
        self._budget = budget
        self._key = key
        self._client_request_id = client_request_id
        self._attempt = 0

    def next_delay(self, error: IdempotencyConflictError) -> float:
        """Return the pause before the next attempt, or raise ``error`` naming the key."""
        waited = self._clock() - self._started
        remaining = self._budget - waited
        if remaining <= 0:
            error.idempotency_key = self._key
            error.client_request_id = self._client_request_id
            error.waited_seconds = waited
            raise error
        self._attempt += 1
        backoff = random.uniform(0, min(self._LONGEST, self._FIRST * 2**self._attempt))  # noqa: S311
        delay = max(backoff, error.retry_after or 0.0)
        log.warning(
            "Rivya answered idempotency_conflict for key %s (%s); the first request may still be "
            "running: retrying in %.1fs (%.0fs left)",
            self._key,
            error.message,
            delay,
            remaining,
        )
        return min(delay, remaining)
