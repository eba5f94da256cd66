"""When to poll a generation: a fixed interval the user set, or a schedule that follows the model.

The adaptive schedule starts shortly before the generation's expected end, polls densely around
it and ever more sparsely after it, so a finished image is noticed within a small share of its
wait while a long wait costs few requests. Every path that waits (the worker's wait, its look
before deferring, the trigger, the sensor) takes its schedule from :func:`schedule_for`, so the
same model and hints give the same polls everywhere.
"""

from __future__ import annotations

import random
import time
from typing import NamedTuple

from rivya_provider.client.polling import estimates

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
#: Each pause between polls that found the generation running is stretched or shrunk by up to
#: this share, so thousands of waits started together drift apart instead of polling in lockstep.
JITTER = 0.1
#: A deferrable task polls in the worker only within this many seconds of submitting: a quick
#: generation then finishes without a round trip through the triggerer, and a slow one holds
#: the worker slot no longer than this.
WORKER_LOOK_MAX_SECONDS = 10.0
#: The same bound for a model whose duration nothing says yet (no catalogue hint, nothing learnt
#: on this machine): the polls due this soon (at 2.5, 3.5 and 4.5 s) cost a slow model a few
#: seconds of the slot, where a deferral costs a generation that ends just after the first look
#: ``[workers] min_heartbeat_interval`` plus a new task process.
UNKNOWN_LOOK_MAX_SECONDS = 5.0
#: Seconds the Airflow 3.3 guard window lasts beyond ``[workers] min_heartbeat_interval``. The
#: worker's supervisor reports a deferral up to that interval after the task process exits, and
#: the scheduler takes the report in on a later loop: on a loaded machine (20 mapped tasks on 2
#: cores) triggers firing right after the interval still lost a try in 1 to 3 runs of 20.
GUARD_MARGIN_SECONDS = 3.0


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class PollSchedule(NamedTuple):
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

    def worker_look_seconds(self) -> float:
        """Seconds after submitting within which a deferrable task's polls are made in the worker.

        With a fixed interval, only a first poll due this soon is made there.
        """
        if self.expected is not None or not self.adaptive:
            return WORKER_LOOK_MAX_SECONDS
        return UNKNOWN_LOOK_MAX_SECONDS


def schedule_for(
    *,
    base_url: str,
    model: str | None,
    hint: float | None = None,
    interval: float | None = None,
    first_delay: float | None = None,
) -> PollSchedule:
    """Return the schedule of a generation's polls; the settings the user gave win.

    The expected duration is the ``hint`` (the catalogue's, or the one a deferring task's polls
    followed), else what this machine learnt of the model.

    :param base_url: the API base URL.
    :param model: the model id (``None``: unknown).
    :param hint: seconds the generation is expected to take, if known.
    :param interval: the user's fixed interval, or ``None``.
    :param first_delay: the user's fixed first delay, or ``None``.
    """
    return PollSchedule(
        expected=estimates.expected_seconds(base_url=base_url, model=model, hint=hint),
        interval=interval,
        first_delay=first_delay,
    )


def jittered(seconds: float) -> float:
    """``seconds`` stretched or shrunk by up to :data:`JITTER` of itself."""
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311


def guard_window(heartbeat: float) -> float:
    """Least seconds between deferring and a trigger's event on Airflow 3.3.

    A trigger that fires before the worker has noticed the deferral (within ``[workers]
    min_heartbeat_interval``) and the scheduler has taken that in can make the scheduler fail the
    try as "killed externally". A trigger may poll sooner; a result it finds early is held back.

    :param heartbeat: ``[workers] min_heartbeat_interval`` in seconds.
    """
    return heartbeat + GUARD_MARGIN_SECONDS if heartbeat > 0 else 0.0


def fire_not_before(
    *, first_delay: float, heartbeat: float, now: float | None = None
) -> float | None:
    """Return the Unix time before which a wait deferred ``now`` may not fire, if any.

    A trigger whose first poll comes after the window cannot fire inside it: no guard.

    :param first_delay: seconds from deferring to the trigger's first poll.
    :param heartbeat: ``[workers] min_heartbeat_interval`` in seconds.
    :param now: Unix time of deferring (default: now).
    """
    window = guard_window(heartbeat)
    if first_delay >= window:
        return None
    return (time.time() if now is None else now) + window
