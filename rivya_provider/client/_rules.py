"""The rules both clients share: settings, URLs, headers, error mapping and the retry decision.

Only the send step differs between :class:`RivyaClient` and :class:`AsyncRivyaClient`; everything
that decides *what* is sent and *how an answer is read* lives here, so the two cannot drift apart.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, retry_if_exception, wait_random_exponential

from rivya_provider.client import safety
from rivya_provider.client.bounded import ACCEPT_ENCODING, Limits
from rivya_provider.client.errors import (
    FieldProblem,
    RequestValidationError,
    RivyaAPIError,
    RivyaError,
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

    A request is retried until its time budget is spent; the attempt count is only a safety cap.
    Pauses are jittered so many tasks that failed together do not retry together.

    :param max_attempts: attempts per request at most, the first included.
    :param backoff_initial: seconds; the exponential backoff's base (full jitter applied).
    :param backoff_max: seconds; the longest backoff between attempts.
    :param retry_after_cap: seconds; the longest ``Retry-After`` honoured.
    :param time_budget: seconds from a request's first attempt after which no new attempt starts.
    """

    max_attempts: int = 12
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0
    time_budget: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("backoff_initial", "backoff_max", "retry_after_cap", "time_budget"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")

    def capped(self, retry_after: float) -> float:
        """Return the part of a ``Retry-After`` (seconds) that is honoured."""
        return min(retry_after, self.retry_after_cap)

    def after_retry_after(self, seconds: float, *, attempt: int = 1) -> float:
        """Pause for a ``Retry-After``: never earlier, plus a random extra so clients spread out.

        The extra's range doubles with each attempt in a row (up to ``backoff_max``): clients
        that keep meeting a shared limit spread further apart.
        """
        base = self.capped(seconds)
        spread = min(self.backoff_max, max(1.0, base) * 2 ** max(0, attempt - 1))
        return base + random.uniform(0, spread)  # noqa: S311


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of one HTTP request; always explicit."""

    connect: float = 10.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 10.0

    def __post_init__(self) -> None:
        bad = [name for name in ("connect", "read", "write", "pool") if not getattr(self, name) > 0]
        if bad:
            problems = [FieldProblem(f"timeouts.{name}", "must be > 0 seconds") for name in bad]
            raise RequestValidationError(problems, subject="client settings")

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
    #: API requests per second at most, shared by every client of this key and base URL in the
    #: process (``None``: no pacing).
    requests_per_second: float | None = None
    limits: Limits = field(default_factory=Limits)
    #: Private hosts (``name`` or ``name:port``) results may come from besides the base URL's.
    allowed_hosts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        key = safety.check_api_key(self.api_key, field_name="api_key")
        safety.register_secret(key)
        object.__setattr__(self, "api_key", key)
        object.__setattr__(self, "base_url", normalise_base_url(self.base_url))


def normalise_base_url(base_url: str) -> str:
    """Return ``scheme://host[:port][/prefix]`` without a trailing slash or ``/api/v1``."""
    url = (base_url or DEFAULT_BASE_URL).strip().rstrip("/")
    if "://" not in url:
        url = f"https://{url}"
    if not safety.is_http_url(url):
        problem = FieldProblem("base_url", f"must be an http(s) URL, got {url[:100]!r}")
        raise RequestValidationError([problem], subject="client settings")
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
    #: Attempts for this call; ``None`` follows the :class:`RetryPolicy`.
    max_attempts: int | None = None

    @property
    def label(self) -> str:
        """How logs and errors name this call (never with headers, so never with the key)."""
        target = self.path if "://" in self.path else f"{API_PREFIX}{self.path}"
        return f"{self.method} {target}"


class RequestBuilder:
    """Turns a :class:`Call` into each attempt's ``httpx.Request``, as httpx's would.

    The client's headers, the key and the timeouts are merged once per client, not at every
    attempt: httpx merges headers by decoding each one to ``str`` and back, about a tenth of a
    status poll's CPU.
    """

    def __init__(self, http: httpx.Client | httpx.AsyncClient, config: ClientConfig) -> None:
        self._anonymous = httpx.Headers(http.headers)
        self._anonymous["Accept"] = "application/json"
        self._authenticated = self._anonymous.copy()
        self._authenticated["Authorization"] = f"Bearer {config.api_key}"
        self._cookies = http.cookies  # none for the API in practice; httpx would send any
        self._timeout = http.timeout.as_dict()
        self._base = f"{config.base_url}{API_PREFIX}"

    def __call__(self, call: Call) -> httpx.Request:
        headers = self._authenticated if call.authenticated else self._anonymous
        if call.headers:  # they may replace the client's, never the key
            headers = self._anonymous.copy()
            headers.update(call.headers)
            if call.authenticated:
                headers["Authorization"] = self._authenticated["Authorization"]
        return httpx.Request(
            call.method,
            _api_url(f"{self._base}{call.path}"),
            json=call.json,
            data=call.data,
            files=call.files() if call.files else None,
            headers=headers,
            cookies=self._cookies,
            extensions={"timeout": self._timeout},
        )


# httpx parses and checks every URL string it is given, each character in Python: about a
# tenth of a status poll's CPU. A triggerer polls the same URL of each wait every few seconds, so
# the parsed URLs are kept. 8,192 cover the waits of a triggerer at eight times Airflow's default
# capacity: with more waits than entries, every poll would replace one, and each replaced URL
# lives long enough to reach the garbage collector's oldest generation (5,000 waits made two such
# objects a poll with 1,024).
@functools.lru_cache(maxsize=8192)
def _api_url(url: str) -> httpx.URL:
    return httpx.URL(url)


def http_options(config: ClientConfig) -> dict[str, Any]:
    """Options shared by the sync and async ``httpx`` clients."""
    return {
        "timeout": config.timeouts.to_httpx(),
        "headers": {"User-Agent": config.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        "follow_redirects": False,
    }


def transport_error(call: Call, exc: httpx.RequestError) -> RivyaError:
    """Wrap an httpx failure (redacted); only transport failures are worth a retry."""
    text = f"{call.label}: {type(exc).__name__}: {safety.redact(str(exc))[:300]}"
    if isinstance(exc, httpx.TransportError):
        return RivyaTransportError(text)
    return UnexpectedResponseError(text)


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
        code, message, request_id = body.code or code, body.message, body.request_id
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
    when = _http_date(value)
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when - current)


def parse(model: type[_ModelT], response: httpx.Response) -> _ModelT:
    """Read a 2xx body into ``model``, ignoring fields Rivya added later."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        if _has_error_envelope(response):
            raise api_error(response) from None
        raise UnexpectedResponseError(
            f"{response.request.method} {response.request.url.path} answered "
            f"HTTP {response.status_code} with a body that is not a {model.__name__}: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
        ) from exc


def _has_error_envelope(response: httpx.Response) -> bool:
    """Tell whether a 2xx body is in fact Rivya's error envelope (keep its code and message)."""
    try:
        return ErrorEnvelope.model_validate_json(response.content).error.code is not None
    except ValidationError:
        return False


#: Seconds a replayed task's ``created_at`` must predate the request when Rivya's clock is known
#: from the answer's ``Date`` header (whole seconds), and when it is not.
REPLAY_MARGIN_WITH_DATE = 2.0
REPLAY_MARGIN_WITHOUT_DATE = 60.0


class SentKeys:
    """The Idempotency-Keys this process has sent, and the task each was answered with.

    Rivya's docs promise no replay header. A key this process sent before is answered with the
    same task again (a replay), unless Rivya forgot the key; a key whose earlier send got no
    usable answer (lost, 5xx, 409) may have made a task then, so its next answer is taken as a
    replay of it.
    """

    _UNANSWERED = ""

    def __init__(self, *, size: int = 4096) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[str, str], str] = OrderedDict()

    def note_unanswered(self, scope: str, key: str) -> None:
        """Record that a send of ``key`` may have reached Rivya without an answer."""
        self._put((scope, key), self._UNANSWERED)

    def answered(self, scope: str, key: str, task_id: str) -> bool:
        """Record the answer of ``key``; return True when it replays an earlier send."""
        with self._lock:
            prior = self._keys.get((scope, key))
        self._put((scope, key), task_id)
        return prior is not None and prior in (self._UNANSWERED, task_id)

    def clear(self) -> None:
        """Forget every key (tests start each case afresh)."""
        with self._lock:
            self._keys.clear()

    def _put(self, entry: tuple[str, str], value: str) -> None:
        with self._lock:
            self._keys[entry] = value
            self._keys.move_to_end(entry)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)


SENT_KEYS = SentKeys()


def note_attempt(config: ClientConfig, call: Call, response: httpx.Response | None) -> None:
    """Remember a create attempt that may have made a task without telling us its id."""
    key = call.headers.get("Idempotency-Key")
    if key is None:
        return
    if response is None or response.status_code == 409 or response.status_code >= 500:
        SENT_KEYS.note_unanswered(config.base_url, key)


def parse_created_task(
    response: httpx.Response, *, config: ClientConfig, call: Call, sent_at: float
) -> GenerationTask:
    """Read a create answer, noting whether it replayed an earlier task for the same key.

    Rivya's docs promise no replay header, so an answer is also a replay when this process sent
    the key before (see :class:`SentKeys`), when the task was created before the request was
    sent (on Rivya's clock, read from the ``Date`` header), or when it is already finished
    without a ``created_at`` that shows it is new.

    :param response: the create answer.
    :param config: the client's settings.
    :param call: the create request.
    :param sent_at: Unix time at which the answered attempt was sent.
    """
    task = parse(GenerationTask, response)
    header = response.headers.get("Idempotent-Replayed", "").strip().lower() == "true"
    sent_before = SENT_KEYS.answered(config.base_url, call.headers["Idempotency-Key"], task.id)
    task._replayed = (
        header
        or sent_before
        or _created_before(task, response, sent_at)
        or (task.status.is_terminal and task.created_at is None)
    )
    return task


def _created_before(task: GenerationTask, response: httpx.Response, sent_at: float) -> bool:
    if task.created_at is None:
        return False
    created = task.created_at.timestamp()
    server_now = _http_date(response.headers.get("date"))
    if server_now is None:
        return created < sent_at - REPLAY_MARGIN_WITHOUT_DATE
    # Rivya's clock may differ from ours: compare on its clock.
    offset = server_now - time.time()
    return created - offset < sent_at - REPLAY_MARGIN_WITH_DATE


def _http_date(value: str | None) -> float | None:
    """Read an HTTP date (``Date``, ``Retry-After``) as Unix time; ``None`` when garbled."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


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

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RivyaAPIError) and error.retry_after is not None:
            return policy.after_retry_after(error.retry_after, attempt=state.attempt_number)
        return float(backoff(state))

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= max_attempts:
            return True
        return clock() - started + (state.upcoming_sleep or 0.0) > policy.time_budget

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "Rivya %s failed (%s); attempt %d, retrying in %.1fs (%.0fs of %.0fs spent)",
            call.label,
            error,
            state.attempt_number,
            state.upcoming_sleep,
            clock() - started,
            policy.time_budget,
        )

    return {
        "stop": stop,
        "wait": wait,
        "retry": retry_if_exception(is_retryable),
        "before_sleep": before_sleep,
        "reraise": True,
    }


def poll_error_delay(
    errors: int, *, interval: float, error: Exception, policy: RetryPolicy
) -> float:
    """Pause before polling again after ``errors`` failed polls in a row.

    The generation may be paid, so a wait never gives up on transient trouble before its
    deadline: it backs off from the poll interval (jittered, up to ``backoff_max``), and never
    polls before a (capped, jittered) ``Retry-After``.
    """
    backoff = max(interval, min(policy.backoff_max, interval * 2 ** (errors - 1)))
    delay = random.uniform(backoff / 2, backoff)  # noqa: S311
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        delay = max(delay, policy.after_retry_after(retry_after, attempt=errors))
    return delay


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
