"""A client's settings, each checked when it is made: an error names the field and what is allowed.

Nothing here does I/O. The one rule about time that every request follows lives here too: a
request takes at most its phases' timeouts added up (:meth:`Limits.request_seconds`), however
slowly a server drips its answer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

from rivya_provider.client import safety
from rivya_provider.client.errors import FieldProblem, RequestValidationError

DEFAULT_BASE_URL = "https://rivya.ai"
API_PREFIX = "/api/v1"
#: Encodings the clients ask for and can decode under the size cap.
ACCEPT_ENCODING = "gzip, deflate"


def _package_version() -> str:
    try:
        return version("airflow-provider-rivya")
    except PackageNotFoundError:  # running from a source tree that was never installed
        from rivya_provider import __version__

        return __version__


USER_AGENT = f"airflow-provider-rivya/{_package_version()}"


def _number(value: object) -> float | None:
    """The value as a finite number, or ``None`` (booleans and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _check(subject: str, prefix: str, rules: list[tuple[str, object, str, bool]]) -> None:
    """Raise one error for every ``(name, value, rule, ok)`` whose ``ok`` is false."""
    problems = [
        FieldProblem(f"{prefix}{name}", f"must be {rule}, got {value!r}")
        for name, value, rule, ok in rules
        if not ok
    ]
    if problems:
        raise RequestValidationError(problems, subject=subject)


def _positive(value: object) -> bool:
    number = _number(value)
    return number is not None and number > 0


def _not_negative(value: object) -> bool:
    number = _number(value)
    return number is not None and number >= 0


def _whole(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of one HTTP request.

    A request as a whole takes at most ``connect + read`` seconds (plus ``write`` when it sends a
    body): ``read`` bounds the whole answer, not each read of the socket, so a server that drips
    its answer fails on time.
    """

    connect: float = 10.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 10.0

    def __post_init__(self) -> None:
        _check(
            "client settings",
            "timeouts.",
            [
                (name, getattr(self, name), "> 0 seconds", _positive(getattr(self, name)))
                for name in ("connect", "read", "write", "pool")
            ],
        )

    def total(self, *, sends_body: bool) -> float:
        """Seconds one request may take in all: connecting, sending a body, the whole answer."""
        return self.connect + self.read + (self.write if sends_body else 0.0)

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


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
        seconds = ("backoff_initial", "backoff_max", "retry_after_cap", "time_budget")
        _check(
            "client settings",
            "retry.",
            [
                (
                    "max_attempts",
                    self.max_attempts,
                    "a whole number >= 1",
                    _whole(self.max_attempts, 1),
                ),
                *[
                    (name, getattr(self, name), ">= 0 seconds", _not_negative(getattr(self, name)))
                    for name in seconds
                ],
            ],
        )

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
class PollPolicy:
    """How ``wait_for_generation`` polls, following Rivya's guidance for images.

    :param first_delay: seconds before the first poll (the docs say 2-3 s after submit).
    :param interval: seconds between later polls (the docs say 5-10 s for images).
    :param timeout: seconds after which waiting gives up (the task may still finish).
    """

    first_delay: float = 2.5
    interval: float = 5.0
    timeout: float = 1800.0

    def __post_init__(self) -> None:
        _check(
            "client settings",
            "poll.",
            [
                ("first_delay", self.first_delay, ">= 0 seconds", _not_negative(self.first_delay)),
                ("interval", self.interval, "> 0 seconds", _positive(self.interval)),
                ("timeout", self.timeout, "> 0 seconds", _positive(self.timeout)),
            ],
        )


@dataclass(frozen=True)
class Limits:
    """Caps on one client's requests.

    :param max_response_bytes: largest API answer, counted after decompression.
    :param request_deadline: seconds one API request may take in total, answer included;
        ``None``: its timeouts added up (:meth:`Timeouts.total`).
    :param download_deadline: seconds one result download (each redirect hop) may take;
        ``None``: ``connect + read`` of the timeouts. Raise it for large results on slow links.
    :param max_redirects: redirects a download may follow.
    """

    max_response_bytes: int = 4 * 1024 * 1024
    request_deadline: float | None = None
    download_deadline: float | None = None
    max_redirects: int = 5

    def __post_init__(self) -> None:
        _check(
            "client limits",
            "limits.",
            [
                (
                    "max_response_bytes",
                    self.max_response_bytes,
                    "a whole number > 0",
                    _whole(self.max_response_bytes, 1),
                ),
                *[
                    (name, value, "> 0 seconds or None", value is None or _positive(value))
                    for name, value in (
                        ("request_deadline", self.request_deadline),
                        ("download_deadline", self.download_deadline),
                    )
                ],
                (
                    "max_redirects",
                    self.max_redirects,
                    "a whole number >= 0",
                    _whole(self.max_redirects, 0),
                ),
            ],
        )

    def request_seconds(self, timeouts: Timeouts, *, sends_body: bool) -> float:
        """Seconds one API request may take in all."""
        if self.request_deadline is not None:
            return self.request_deadline
        return timeouts.total(sends_body=sends_body)

    def download_seconds(self, timeouts: Timeouts) -> float:
        """Seconds one download hop may take in all."""
        if self.download_deadline is not None:
            return self.download_deadline
        return timeouts.total(sends_body=False)


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to talk to Rivya. The key never appears in ``repr``."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll: PollPolicy = field(default_factory=PollPolicy)
    user_agent: str = USER_AGENT
    #: API requests per second at most, shared by every client of this key and base URL on the
    #: machine (``None``: no pacing).
    requests_per_second: float | None = None
    limits: Limits = field(default_factory=Limits)
    #: Private hosts (``name`` or ``name:port``) results may come from besides the base URL's.
    allowed_hosts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        key = safety.check_api_key(self.api_key, field_name="api_key")
        safety.register_secret(key)
        object.__setattr__(self, "api_key", key)
        object.__setattr__(self, "base_url", normalise_base_url(self.base_url))
        rate = self.requests_per_second
        _check(
            "client settings",
            "",
            [("requests_per_second", rate, "> 0 or None", rate is None or _positive(rate))],
        )
        kinds = {
            "timeouts": (self.timeouts, Timeouts),
            "retry": (self.retry, RetryPolicy),
            "poll": (self.poll, PollPolicy),
            "limits": (self.limits, Limits),
        }
        _check(
            "client settings",
            "",
            [
                (name, type(value).__name__, f"a {kind.__name__}", isinstance(value, kind))
                for name, (value, kind) in kinds.items()
            ],
        )

    @property
    def api_url(self) -> str:
        """The base URL of the API's endpoints, ``.../api/v1``."""
        return f"{self.base_url}{API_PREFIX}"


def normalise_base_url(base_url: Any, *, field_name: str = "base_url") -> str:
    """Return ``scheme://host[:port][/prefix]`` without a trailing slash or ``/api/v1``.

    :raises RequestValidationError: naming ``field_name`` for anything that is not an http(s)
        URL with a valid host and port.
    """
    url = (base_url or DEFAULT_BASE_URL).strip() if isinstance(base_url, str) else ""
    if url and "://" not in url:
        url = f"https://{url}"
    problem = safety.http_url_problem(url)
    if problem is not None:
        shown = url[:100] if url else base_url
        message = f"must be an http(s) URL with a host: {problem}, got {shown!r}"
        raise RequestValidationError([FieldProblem(field_name, message)], subject="client settings")
    url = url.rstrip("/")
    return url.removesuffix(API_PREFIX)
