"""One exception tree for everything the Rivya client can raise.

API errors are keyed by Rivya's ``error.code`` (not the HTTP status); each carries the HTTP status,
code, message and ``requestId``. Exceptions never do I/O and never hold the API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rivya_provider.client.redaction import redact


class RivyaError(Exception):
    """Base class of every error raised by this package; its text never holds an API key."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class _KeywordArgsError(RivyaError):
    """Makes errors with keyword-only ``__init__`` picklable (Airflow ships exceptions around)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__.copy(), self.args))


def _rebuild(cls: type[RivyaError], state: dict[str, Any], args: tuple[Any, ...]) -> Any:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    error.args = args
    return error


class InvalidInputError(RivyaError):
    """The request is wrong and retrying cannot fix it (local check or ``validation_failed``)."""


@dataclass(frozen=True)
class FieldProblem:
    """One reason an input was rejected locally."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RequestValidationError(_KeywordArgsError, InvalidInputError, ValueError):
    """Input rejected locally, before any request or credit was spent."""

    def __init__(self, problems: list[FieldProblem], *, subject: str = "request") -> None:
        self.problems = problems
        lines = "; ".join(str(p) for p in problems)
        super().__init__(f"invalid {subject}: {lines}")

    @property
    def fields(self) -> list[str]:
        return [p.field for p in self.problems]


class RivyaTransportError(RivyaError):
    """The request did not get an HTTP answer (connection, timeout, protocol), after retries."""


class RequestNotSentError(RivyaTransportError):
    """A request was not sent: its turn in the process came later than it could wait."""


class RivyaAPIError(_KeywordArgsError):
    """Rivya answered with an error envelope (or a non-2xx status without one)."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        *,
        status_code: int,
        code: str,
        message: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = redact(code)[:100]
        self.message = redact(message)[:1000]
        self.request_id = redact(request_id)[:200] if request_id else None
        #: Seconds the server asked us to wait (``Retry-After``), if it said.
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        request = f" (requestId {self.request_id})" if self.request_id else ""
        return f"Rivya {self.code} [HTTP {self.status_code}]: {self.message}{request}"


class AuthenticationError(RivyaAPIError):
    """The API key is missing, unknown, revoked or expired (HTTP 401)."""


class PermissionDeniedError(RivyaAPIError):
    """The API key lacks the scope this endpoint needs (``api_scope_denied``)."""


class ValidationFailedError(RivyaAPIError, InvalidInputError):
    """Rivya rejected the body, model, prompt or params (``validation_failed``)."""


class NotFoundError(RivyaAPIError):
    """The task or file does not exist or belongs to another account (``not_found``)."""


class IdempotencyConflictError(RivyaAPIError):
    """Rivya refused an Idempotency-Key (HTTP 409 ``idempotency_conflict``).

    The docs do not say when: the first request with the key may still be running, the key may
    have been used with another body, or the server may refuse every repeat of a key. A create
    therefore waits such a conflict out for as long as it was told to (``conflict_wait``), then
    raises this error naming the key: a generation may exist under it.
    """

    #: The refused key and the create's ``client_request_id`` (set by ``create_generation``).
    idempotency_key: str | None = None
    client_request_id: str | None = None
    #: Seconds the create kept retrying before giving up.
    waited_seconds: float = 0.0

    @property
    def in_flight(self) -> bool:
        """True when Rivya said when to retry (``Retry-After``): the first request is running."""
        return self.retry_after is not None

    def __str__(self) -> str:
        text = super().__str__()
        if self.idempotency_key is None:
            return text
        return (
            f"{text}. Rivya refused Idempotency-Key {self.idempotency_key!r} (client_request_id "
            f"{self.client_request_id!r}) for {self.waited_seconds:.0f}s: a generation may exist "
            "under this key already (it is never charged twice), or an earlier request sent "
            "other data with it"
        )


class InsufficientCreditsError(RivyaAPIError):
    """The wallet holds fewer credits than the generation needs (``insufficient_credits``)."""


class RateLimitedError(RivyaAPIError):
    """Too many requests in the window (``rate_limited``); retry after a pause."""

    retryable = True


class ServiceUnavailableError(RivyaAPIError):
    """The Public API is switched off for now (``public_api_disabled``); retry later."""

    retryable = True


class ServerError(RivyaAPIError):
    """An unexpected 5xx answer; retried, as any unknown 5xx code."""

    retryable = True


_BY_CODE: dict[str, type[RivyaAPIError]] = {
    "api_key_missing": AuthenticationError,
    "api_key_invalid": AuthenticationError,
    "api_key_revoked": AuthenticationError,
    "api_key_expired": AuthenticationError,
    "api_scope_denied": PermissionDeniedError,
    "validation_failed": ValidationFailedError,
    "not_found": NotFoundError,
    "idempotency_conflict": IdempotencyConflictError,
    "insufficient_credits": InsufficientCreditsError,
    "rate_limited": RateLimitedError,
    "public_api_disabled": ServiceUnavailableError,
}


def error_class_for(code: str, status_code: int) -> type[RivyaAPIError]:
    """Pick the exception class for an error: by code, else unknown 5xx retryable, 4xx not."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status_code == 429:
        return RateLimitedError
    if status_code >= 500:
        return ServerError
    return RivyaAPIError


def is_retryable(error: BaseException) -> bool:
    """Tell whether one more attempt of the same request may succeed."""
    if isinstance(error, RivyaTransportError):
        return True
    if isinstance(error, IdempotencyConflictError):
        return error.in_flight
    return isinstance(error, RivyaAPIError) and error.retryable


class GenerationFailedError(_KeywordArgsError):
    """A generation task ended in ``failed``; no credits were charged for it."""

    def __init__(self, *, task_id: str, code: str, message: str) -> None:
        self.task_id = task_id
        self.code = redact(code)[:100]
        self.message = redact(message)[:1000]
        super().__init__(f"generation {task_id} failed: {self.code}: {self.message}")


class GenerationTimeoutError(_KeywordArgsError):
    """The deadline passed before the task reached a terminal status."""

    def __init__(self, *, task_id: str, last_status: str, waited_seconds: float) -> None:
        self.task_id = task_id
        self.last_status = last_status
        self.waited_seconds = waited_seconds
        super().__init__(
            f"generation {task_id} still {last_status} after {waited_seconds:.1f}s; "
            "it may still finish: wait for it again with the same task id"
        )


class DownloadTooLargeError(_KeywordArgsError):
    """A result download exceeded the size cap; nothing was left at the destination."""

    def __init__(self, *, url: str, limit_bytes: int) -> None:
        self.url = url
        self.limit_bytes = limit_bytes
        super().__init__(f"download of {url} exceeds the cap of {limit_bytes} bytes")


class UnexpectedResponseError(RivyaError):
    """A 2xx answer whose body does not match the documented shape."""


class UnsafeURLError(RivyaError):
    """A URL was refused by the URL policy (not http(s), or a private host not allowed)."""


class ResponseTooLargeError(RivyaError):
    """An API answer exceeded the size cap (counted after decompression)."""
