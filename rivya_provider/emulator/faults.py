"""Faults the emulator can inject, and the decisions that consume them.

Every fault is a plain number or flag so tests, the admin API and the CLI can set it the same way.
Counted faults (``*_next``) are deterministic; rate-based ones draw from one seeded random source.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Clock = Callable[[], float]


class Faults(BaseModel):
    """What the emulator does wrong on purpose; all zero/false means a healthy server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Extra delay before every public request is answered.
    latency_seconds: float = Field(default=0.0, ge=0)
    #: Answer every public request with 503 ``public_api_disabled``.
    api_disabled: bool = False
    #: ``Retry-After`` sent with 503 and with the deterministic 429s.
    retry_after_seconds: int = Field(default=1, ge=1)
    #: Token-bucket refill rate; 0 turns the bucket off.
    rate_limit_per_second: float = Field(default=0.0, ge=0)
    #: Token-bucket size; 0 means ``max(1, ceil(rate))``.
    rate_limit_burst: int = Field(default=0, ge=0)
    #: Answer the next N public requests with 429 ``rate_limited``.
    rate_limited_next: int = Field(default=0, ge=0)
    #: Answer the next N public requests with 500 ``internal_error``.
    server_errors_next: int = Field(default=0, ge=0)
    #: Chance of a 500 ``internal_error`` on any public request.
    server_error_rate: float = Field(default=0.0, ge=0, le=1)
    #: Delay inside a create, while its Idempotency-Key is in flight.
    create_delay_seconds: float = Field(default=0.0, ge=0)
    #: Store and charge the next N creates, then drop the connection instead of answering.
    drop_next_creates: int = Field(default=0, ge=0)
    #: The next N new tasks end in ``failed``.
    fail_next_tasks: int = Field(default=0, ge=0)
    #: The next N new tasks end in ``canceled`` (a status beyond the docs; no charge).
    cancel_next_tasks: int = Field(default=0, ge=0)
    #: Chance that a new task ends in ``failed``.
    task_failure_rate: float = Field(default=0.0, ge=0, le=1)
    #: Chance that a new task processes ``slow_task_extra_seconds`` longer.
    slow_task_rate: float = Field(default=0.0, ge=0, le=1)
    slow_task_extra_seconds: float = Field(default=0.0, ge=0)
    #: Extra delay before every ``/cdn/...`` download (API faults never touch downloads).
    download_latency_seconds: float = Field(default=0.0, ge=0)
    #: Answer the next N downloads with 503 ``download_failed``.
    download_errors_next: int = Field(default=0, ge=0)
    #: Chance of a 503 ``download_failed`` on any download.
    download_error_rate: float = Field(default=0.0, ge=0, le=1)


@dataclass(frozen=True)
class TaskFate:
    """How a new task will end, decided when it is created."""

    ending: Literal["succeeds", "fails", "cancels"]
    extra_seconds: float = 0.0


class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, at most ``capacity`` saved up."""

    def __init__(self, *, rate: float, capacity: int, clock: Clock) -> None:
        """Start full.

        :param rate: tokens added per second (must be positive).
        :param capacity: most tokens the bucket holds.
        :param clock: seconds source.
        """
        self._rate = rate
        self._capacity = float(capacity)
        self._clock = clock
        self._tokens = self._capacity
        self._last = clock()

    def take(self) -> int | None:
        """Take one token; return ``None`` on success, else whole seconds to wait (at least 1)."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return max(1, math.ceil((1 - self._tokens) / self._rate))


class FaultInjector:
    """Holds the current :class:`Faults` and makes each fault decision under one lock."""

    def __init__(self, *, faults: Faults, seed: int | None, clock: Clock) -> None:
        """Start with ``faults``; :meth:`reset` returns to them.

        :param faults: the start faults.
        :param seed: seed of the random source for the rate-based faults (``None``: unseeded).
        :param clock: seconds source of the rate limiter.
        """
        self._start = faults
        self._seed = seed
        self._clock = clock
        self._lock = threading.Lock()
        self._faults = faults
        self._random = random.Random(seed)
        # Downloads draw from their own source, so they never shift the API's fault sequence.
        self._download_random = random.Random(seed)
        self._bucket = self._new_bucket(faults)

    @property
    def current(self) -> Faults:
        return self._faults

    def update(self, **fields: Any) -> Faults:
        """Change some faults, keep the others; return the new faults.

        :param fields: :class:`Faults` field names and values.
        :raises pydantic.ValidationError: on an unknown field or a bad value.
        """
        with self._lock:
            merged = Faults.model_validate({**self._faults.model_dump(), **fields})
            if _bucket_settings(merged) != _bucket_settings(self._faults):
                self._bucket = self._new_bucket(merged)
            self._faults = merged
            return merged

    def reset(self) -> None:
        """Return to the start faults, a fresh random source and a full bucket."""
        with self._lock:
            self._faults = self._start
            self._random = random.Random(self._seed)
            self._download_random = random.Random(self._seed)
            self._bucket = self._new_bucket(self._start)

    def rate_limit(self) -> int | None:
        """Return the ``Retry-After`` seconds when this request is rate limited, else ``None``."""
        with self._lock:
            if self._consume("rate_limited_next"):
                return self._faults.retry_after_seconds
            return self._bucket.take() if self._bucket is not None else None

    def server_error(self) -> bool:
        """Tell whether this request gets an injected 500."""
        with self._lock:
            if self._consume("server_errors_next"):
                return True
            return self._chance(self._faults.server_error_rate)

    def drop_create(self) -> bool:
        """Tell whether the answer to this (stored) create is dropped."""
        with self._lock:
            return self._consume("drop_next_creates")

    def task_fate(self) -> TaskFate:
        """Decide how a new task ends."""
        with self._lock:
            ending: Literal["succeeds", "fails", "cancels"] = "succeeds"
            if self._consume("cancel_next_tasks"):
                ending = "cancels"
            elif self._consume("fail_next_tasks") or self._chance(self._faults.task_failure_rate):
                ending = "fails"
            slow = self._chance(self._faults.slow_task_rate)
            return TaskFate(
                ending=ending, extra_seconds=self._faults.slow_task_extra_seconds * slow
            )

    def download_error(self) -> bool:
        """Tell whether this download gets an injected 503."""
        with self._lock:
            if self._consume("download_errors_next"):
                return True
            rate = self._faults.download_error_rate
            return rate > 0 and self._download_random.random() < rate

    def _consume(self, name: str) -> bool:
        left: int = getattr(self._faults, name)
        if left <= 0:
            return False
        self._faults = self._faults.model_copy(update={name: left - 1})
        return True

    def _chance(self, rate: float) -> bool:
        # Only draw when the fault is on, so a seed replays the same sequence per enabled fault.
        return rate > 0 and self._random.random() < rate

    def _new_bucket(self, faults: Faults) -> TokenBucket | None:
        rate = faults.rate_limit_per_second
        if rate <= 0:
            return None
        capacity = faults.rate_limit_burst or max(1, math.ceil(rate))
        return TokenBucket(rate=rate, capacity=capacity, clock=self._clock)


def _bucket_settings(faults: Faults) -> tuple[float, int]:
    return faults.rate_limit_per_second, faults.rate_limit_burst
