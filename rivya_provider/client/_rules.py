"""The rules both clients share: settings, URLs, headers, error mapping and the retry decision.

Only the send step differs between :class:`RivyaClient` and :class:`AsyncRivyaClient`; everything
that decides *what* is sent and *how an answer is read* lives here, so the two cannot drift apart.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from rivya_provider.client.errors import (
    FieldProblem,
    RequestValidationError,
    RivyaAPIError,
    RivyaTransportError,
    UnexpectedResponseError,
    error_class_for,
    is_retryable,
)
from rivya_provider.client.models import IDEMPOTENCY_KEY_MAX, ErrorEnvelope, GenerationTask

log = logging.getLogger("rivya_provider.client")

DEFAULT_BASE_URL = "https://rivya.ai"
API_PREFIX = "/api/v1"
_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _package_version() -> str:
    try:
        return version("airflow-provider-rivya")
    except PackageNotFoundError:  # running from a source tree that was never installed
        from rivya_provider import __version__

        return __version__


USER_AGENT = f"airflow-provider-rivya/{_package_version()}"


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried (connection errors, timeouts, 5xx, 429).

    :param max_attempts: attempts per request, the first included.
    :param backoff_initial: seconds; the exponential backoff's base (full jitter applied).
    :param backoff_max: seconds; the longest backoff between attempts.
    :param retry_after_cap: seconds; the longest ``Retry-After`` honoured.
    """

    max_attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("backoff_initial", "backoff_max", "retry_after_cap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of one HTTP request; always explicit."""

    connect: float = 10.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 10.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class PollPolicy:
    """How ``wait_for_generation`` polls, following Rivya's guidance for images.

    :param first_delay: seconds before the first poll (the docs say 2-3 s after submit).
    :param interval: seconds between later polls (the docs say 5-10 s for images).
    :param timeout: seconds after which waiting gives up (the task may still finish).
    """

    first_delay: float = 2.5
    interval: float = 5.0
    timeout: float = 1800.0


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to talk to Rivya. The key never appears in ``repr``."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll: PollPolicy = field(default_factory=PollPolicy)
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        key = (self.api_key or "").strip()
        if not key:
            raise ValueError("api_key is required (a Rivya key starts with 'rvya_sk_')")
        object.__setattr__(self, "api_key", key)
        object.__setattr__(self, "base_url", normalise_base_url(self.base_url))


def normalise_base_url(base_url: str) -> str:
    """Return ``scheme://host[:port][/prefix]`` without a trailing slash or ``/api/v1``."""
    url = (base_url or DEFAULT_BASE_URL).strip().rstrip("/")
    if "://" not in url:
        url = f"https://{url}"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    return url.removesuffix(API_PREFIX)


@dataclass(frozen=True)
class Call:
    """One API request, described independently of the client that sends it."""

    method: str
    path: str
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] | None = None
    #: Builds the multipart ``files`` afresh for each attempt (a stream must be rewound).
    files: Callable[[], Mapping[str, Any]] | None = None
    authenticated: bool = True

    @property
    def label(self) -> str:
        """How logs and errors name this call (never with headers, so never with the key)."""
        target = self.path if "://" in self.path else f"{API_PREFIX}{self.path}"
        return f"{self.method} {target}"


def build_request(http: httpx.Client | httpx.AsyncClient, config: ClientConfig, call: Call) -> Any:
    """Turn a :class:`Call` into an ``httpx.Request`` for this attempt."""
    headers = {"Accept": "application/json", **call.headers}
    if call.authenticated:
        headers["Authorization"] = f"Bearer {config.api_key}"
    return http.build_request(
        call.method,
        f"{config.base_url}{API_PREFIX}{call.path}",
        json=call.json,
        data=call.data,
        files=call.files() if call.files else None,
        headers=headers,
    )


def http_options(config: ClientConfig) -> dict[str, Any]:
    """Options shared by the sync and async ``httpx`` clients."""
    return {
        "timeout": config.timeouts.to_httpx(),
        "headers": {"User-Agent": config.user_agent},
        "follow_redirects": False,
    }


def transport_error(call: Call, exc: httpx.TransportError) -> RivyaTransportError:
    """Wrap an httpx transport failure; the message holds no header, so no key."""
    return RivyaTransportError(f"{call.label}: {type(exc).__name__}: {exc}")


def check_response(response: httpx.Response) -> httpx.Response:
    """Return a 2xx response or raise the typed error its envelope names."""
    if response.is_success:
        return response
    raise api_error(response)


def api_error(response: httpx.Response) -> RivyaAPIError:
    """Map a non-2xx response to the exception of its ``error.code``."""
    code, message, request_id = f"http_{response.status_code}", "", None
    try:
        body = ErrorEnvelope.model_validate_json(response.content).error
        code, message, request_id = body.code, body.message, body.request_id
    except ValidationError:
        message = response.text[:300].strip() or response.reason_phrase
    request_id = request_id or response.headers.get("x-request-id")
    cls = error_class_for(code, response.status_code)
    return cls(
        status_code=response.status_code,
        code=code,
        message=message,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read ``Retry-After`` as seconds (a number or an HTTP date); ``None`` when absent/garbled."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def parse(model: type[_ModelT], response: httpx.Response) -> _ModelT:
    """Read a 2xx body into ``model``, ignoring fields Rivya added later."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise UnexpectedResponseError(
            f"{response.request.method} {response.request.url.path} answered "
            f"HTTP {response.status_code} with a body that is not a {model.__name__}: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
        ) from exc


def parse_created_task(response: httpx.Response) -> GenerationTask:
    """Read a create answer, noting whether it replayed an earlier task for the same key."""
    task = parse(GenerationTask, response)
    task._replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
    return task


def retry_options(policy: RetryPolicy, call: Call) -> dict[str, Any]:
    """tenacity options: retry only what may succeed next time, honouring ``Retry-After``."""
    backoff = wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RivyaAPIError) and error.retry_after is not None:
            return min(error.retry_after, policy.retry_after_cap)
        return float(backoff(state))

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "Rivya %s failed (%s); attempt %d of %d, retrying in %.1fs",
            call.label,
            error,
            state.attempt_number,
            policy.max_attempts,
            state.upcoming_sleep,
        )

    return {
        "stop": stop_after_attempt(policy.max_attempts),
        "wait": wait,
        "retry": retry_if_exception(is_retryable),
        "before_sleep": before_sleep,
        "reraise": True,
    }


_IDEMPOTENCY_KEY = re.compile(rf"^[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}$")


def idempotency_key(key: str | None) -> str:
    """Check a caller's Idempotency-Key, or make a fresh one for a single create call."""
    if key is None:
        return f"rvy-{uuid.uuid4().hex}"
    if not _IDEMPOTENCY_KEY.match(key):
        problem = FieldProblem(
            "idempotency_key",
            f"must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters without spaces, "
            f"got {len(key)} characters",
        )
        raise RequestValidationError([problem])
    return key
