"""When to poll a generation: its expected duration, and a schedule that follows it.

A model's expected generation time comes from a hint in Rivya's ``/models`` catalogue where one
is given, else from a running estimate of the durations seen for that model and base URL (an
exponentially weighted mean, shared by every wait in the process, so the triggers of a
triggerer learn from each other, and with the machine's other processes through a small file,
so a worker's new task starts from what the triggerer learnt). Polls then come shortly before
the expected end, densely around it, and ever more sparsely after it, so a finished image is
noticed within a small share of its wait while a long wait costs few requests.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from rivya_provider.client import durations_file
from rivya_provider.client.averages import moving_average
from rivya_provider.client.models import GenerationTask, TaskStatus

#: Weight of the newest observed duration in the running estimate.
ESTIMATE_WEIGHT = 0.3
#: Seconds before the first poll when nothing is known about the model (Rivya's guidance: 2-3 s).
UNKNOWN_FIRST_DELAY = 2.5
#: Share of the expected duration at which the first poll comes.
FIRST_POLL_SHARE = 0.8
#: Share of the wait so far (at least the expected duration) between two polls: how late, at
#: most, a finished generation is noticed relative to its wait.
OVERSHOOT_SHARE = 0.2
#: Bounds of the interval between two polls, in seconds.
MIN_INTERVAL = 1.0
MAX_INTERVAL = 30.0
#: A look before the expected end is followed by one this share past it (when that comes sooner
#: than the interval), but never sooner than :data:`MIN_GAP` seconds.
END_SHARE = 1.05
MIN_GAP = 0.5
#: Observed durations beyond this many seconds are left out of the estimate (an outlier, a
#: wait that was resumed after a restart).
LONGEST_OBSERVATION = 3600.0
#: A process shares what it learnt of a model with the machine's other processes, and looks for
#: what they learnt of a model it knows nothing about, at most this often (seconds).
SHARE_EVERY_SECONDS = 5.0


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass(frozen=True)
class PollSchedule:
    """When to poll one generation; a user's fixed settings win over the adaptive ones.

    :param expected: seconds the generation is expected to take (``None``: unknown).
    :param interval: fixed seconds between polls set by the user (``None``: adaptive).
    :param first_delay: fixed seconds before the first poll set by the user (``None``: adaptive).
    """

    expected: float | None = None
    interval: float | None = None
    first_delay: float | None = None

    @property
    def adaptive(self) -> bool:
        return self.interval is None

    def first(self) -> float:
        """Seconds from submitting to the first poll."""
        if self.first_delay is not None:
            return self.first_delay
        if self.expected is None:
            return UNKNOWN_FIRST_DELAY
        return _clamp(FIRST_POLL_SHARE * self.expected, 0.5, MAX_INTERVAL)

    def next_delay(self, *, elapsed: float) -> float:
        """Seconds from a poll that found the generation unfinished to the next poll.

        :param elapsed: seconds since the generation was submitted.
        """
        if self.interval is not None:
            return self.interval
        # Around the expected end polls come every share of the expected time; past it the
        # interval grows with the wait (about x1.2 per poll), capped.
        base = max(elapsed, self.expected or UNKNOWN_FIRST_DELAY * 2)
        regular = _clamp(OVERSHOOT_SHARE * base, MIN_INTERVAL, MAX_INTERVAL)
        if self.expected is None or elapsed >= self.expected:
            return regular
        # Before the expected end of a quick model, the interval's floor would notice the image
        # up to a second late: the next poll comes just after the expected end instead.
        return max(MIN_GAP, min(regular, END_SHARE * self.expected - elapsed))


class DurationEstimates:
    """Running estimates of generation time per base URL and model, shared in a process.

    :param weight: weight of the newest observation (0-1).
    :param share: also share the estimates with the machine's other processes
        (:mod:`~rivya_provider.client.durations_file`).
    """

    def __init__(self, *, weight: float = ESTIMATE_WEIGHT, share: bool = False) -> None:
        self._weight = weight
        self._share = share
        self._lock = threading.Lock()
        self._means: dict[tuple[str, str], float] = {}
        self._shared_at: dict[tuple[str, str], float] = {}
        self._read_at: dict[str, float] = {}

    def observe(self, *, base_url: str, model: str, seconds: float) -> None:
        """Fold one observed duration into the model's estimate.

        :param base_url: the API base URL the generation ran on.
        :param model: the model id.
        :param seconds: how long the generation took.
        """
        if not math.isfinite(seconds) or not 0 < seconds <= LONGEST_OBSERVATION:
            return
        key = (base_url, model)
        now = time.monotonic()
        with self._lock:
            mean = self._means.get(key)
            mean = moving_average(mean, seconds, self._weight)
            self._means[key] = mean
            # A triggerer sees many generations finish together: it folds its own estimate into
            # the machine's at most every SHARE_EVERY_SECONDS per model, not at every one.
            last_shared = self._shared_at.get(key, -math.inf)
            share = self._share and now - last_shared >= SHARE_EVERY_SECONDS
            if share:
                self._shared_at[key] = now
        if share:
            machine_wide = durations_file.fold(
                base_url, model=model, seconds=mean, weight=self._weight
            )
            if machine_wide is not None:
                with self._lock:
                    self._means[key] = machine_wide

    def get(self, *, base_url: str, model: str) -> float | None:
        """Return the model's estimate in seconds, or ``None`` before any observation.

        A process that has seen no generation of the model takes the machine's estimate.

        :param base_url: the API base URL.
        :param model: the model id.
        """
        key = (base_url, model)
        now = time.monotonic()
        with self._lock:
            mean = self._means.get(key)
            if mean is not None or not self._share:
                return mean
            if now - self._read_at.get(base_url, -math.inf) < SHARE_EVERY_SECONDS:
                return None
            self._read_at[base_url] = now
        shared = durations_file.read(base_url)
        with self._lock:
            for name, seconds in shared.items():
                self._means.setdefault((base_url, name), seconds)
            return self._means.get(key)

    def clear(self) -> None:
        """Forget every estimate this process holds."""
        with self._lock:
            self._means.clear()
            self._shared_at.clear()
            self._read_at.clear()


#: The estimates of this process.
ESTIMATES = DurationEstimates(share=True)


def expected_seconds(*, base_url: str, model: str | None, hint: float | None) -> float | None:
    """Return a model's expected generation time: the catalogue's hint, else the estimate.

    :param base_url: the API base URL.
    :param model: the model id (``None``: unknown).
    :param hint: seconds the catalogue gives for the model, if any.
    """
    if hint is not None and math.isfinite(hint) and hint > 0:
        return hint
    return None if model is None else ESTIMATES.get(base_url=base_url, model=model)


def observed_seconds(
    *, created_at: datetime | None, updated_at: datetime | None, local: float
) -> float:
    """Return how long a finished generation took.

    Rivya's own timestamps (both on its clock) are preferred; the local time from submitting to
    seeing it finished (late by up to one poll interval) stands in when they are missing.

    :param created_at: the task's ``created_at``.
    :param updated_at: the task's ``updated_at`` once it finished.
    :param local: seconds from submitting to seeing the task finished, on the local clock.
    """
    if created_at is not None and updated_at is not None:
        server = (updated_at - created_at).total_seconds()
        if 0 < server <= local + 1.0:
            return server
    return local


def learn(task: GenerationTask, *, base_url: str, submitted_at: float | None, now: float) -> None:
    """Fold a succeeded generation's duration into its model's running estimate.

    :param task: the generation as last polled.
    :param base_url: the API base URL it ran on.
    :param submitted_at: local Unix time it was submitted (``None``: unknown, e.g. picked up
        again by a retry; then only Rivya's timestamps count).
    :param now: local Unix time it was seen finished.
    """
    if task.status is not TaskStatus.SUCCEEDED or not task.model:
        return
    local = math.inf if submitted_at is None else now - submitted_at
    seconds = observed_seconds(created_at=task.created_at, updated_at=task.updated_at, local=local)
    ESTIMATES.observe(base_url=base_url, model=task.model, seconds=seconds)
