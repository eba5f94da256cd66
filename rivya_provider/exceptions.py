"""How Rivya errors reach Airflow: permanent ones fail the task without retries.

Retrying cannot fix invalid input, a bad or under-scoped API key, a task or file Rivya does not
know, an Idempotency-Key Rivya kept refusing, or any other 4xx error Rivya does not document
as retryable, so those become :class:`RivyaPermanentError` (an ``AirflowFailException``).
Everything else keeps its own type from :mod:`rivya_provider.client.errors`
(``InsufficientCreditsError``, ``RateLimitedError``, ``GenerationFailedError``,
``GenerationTimeoutError``, ...) and follows the task's ``retries``; a ``retry_policy`` can tell
them apart by type.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException

from rivya_provider.client import (
    AuthenticationError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    InvalidInputError,
    PermissionDeniedError,
    RivyaAPIError,
    RivyaError,
)


class RivyaPermanentError(AirflowFailException, RivyaError):
    """A Rivya error that retrying cannot fix; the task fails without using its retries.

    The original error is the ``__cause__``; its Rivya ``code`` and ``request_id`` are kept.
    """

    def __init__(self, message: str, code: str | None = None, request_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.request_id = request_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.code, self.request_id))


class RivyaInputError(RivyaPermanentError, InvalidInputError):
    """The inputs are invalid (checked locally, or ``validation_failed`` from Rivya)."""


class RivyaAuthError(RivyaPermanentError):
    """The API key is missing, unknown, revoked, expired, or lacks a scope."""


class RivyaBudgetExceededError(RivyaPermanentError):
    """A run (or one generation of it) would cost more credits than its budget or the balance.

    Raised before anything is submitted; retrying cannot make the budget larger, so the task
    fails at once. ``needed``, ``spent``, ``budget`` and ``balance`` are credits (``None``
    when not known or not set).
    """

    def __init__(
        self,
        message: str,
        needed: float = 0,
        spent: float = 0,
        budget: float | None = None,
        balance: float | None = None,
    ) -> None:
        super().__init__(message)
        self.needed = needed
        self.spent = spent
        self.budget = budget
        self.balance = balance

    def __reduce__(self) -> tuple[Any, ...]:
        args = (str(self), self.needed, self.spent, self.budget, self.balance)
        return (type(self), args)


class RivyaStorageError(RivyaError):
    """Reading a reference file or writing a result copy failed (the ``OSError`` is the cause).

    Kept retryable: a full disk or a storage hiccup may be gone on the next try.
    """


def permanent_failure(error: RivyaError, conn_id: str | None = None) -> RivyaPermanentError | None:
    """Return the fail-fast twin of ``error``, or ``None`` when retrying could help.

    :param conn_id: the Airflow connection the request used: a refused key names it.
    """
    code = getattr(error, "code", None)
    request_id = getattr(error, "request_id", None)
    if isinstance(error, RivyaPermanentError):
        return None
    if isinstance(error, InvalidInputError):
        return RivyaInputError(str(error), code, request_id)
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return RivyaAuthError(_naming_the_key(error, conn_id), code, request_id)
    if isinstance(error, IdempotencyConflictError):
        # The create already waited the conflict out. Only a conflict Rivya marked as in flight
        # (Retry-After) is worth another try; for the others the message names the key and says
        # that a generation may exist under it (below Airflow 3.3, re-uploaded reference files
        # also change the data sent under the key).
        if error.in_flight:
            return None
        return RivyaPermanentError(
            f"{error}. Set fresh_generation_on_retry=True to generate anew under a new key",
            code,
            request_id,
        )
    if isinstance(error, RivyaAPIError) and _is_permanent_4xx(error):
        return RivyaPermanentError(str(error), code, request_id)
    return None


def _naming_the_key(error: RivyaAPIError, conn_id: str | None) -> str:
    """The refusal, and where the key it refused lives (never the key itself)."""
    if conn_id is None:
        return str(error)
    if isinstance(error, PermissionDeniedError):
        return (
            f"{error}. The API key in the password of the Airflow connection {conn_id!r} may "
            "not do this: give it the scope, or use a key that has it"
        )
    return (
        f"{error}. Rivya refused the API key in the password of the Airflow connection "
        f"{conn_id!r}: set that password to a valid key (Admin > Connections, or the secrets "
        "backend or AIRFLOW_CONN_ variable that holds the connection)"
    )


def _is_permanent_4xx(error: RivyaAPIError) -> bool:
    # Insufficient credits can be fixed by topping the wallet up, so Airflow may retry it.
    return (
        400 <= error.status_code < 500
        and not error.retryable
        and not isinstance(error, InsufficientCreditsError)
    )


@contextmanager
def failing_fast(conn_id: str | None = None) -> Iterator[None]:
    """Turn permanent Rivya errors into fail-fast Airflow failures, and ``OSError`` into ours.

    :param conn_id: the Airflow connection the requests use: a refused key names it.
    """
    try:
        yield
    except RivyaError as exc:
        failure = permanent_failure(exc, conn_id)
        if failure is None:
            raise
        raise failure from exc
    except OSError as exc:
        # No raw library exception is a task's final error; the text is redacted like ours.
        raise RivyaStorageError(f"{type(exc).__name__}: {exc}") from exc
