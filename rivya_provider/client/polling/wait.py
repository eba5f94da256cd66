"""One wait for one generation: its deadline, its failed polls, and the pause before each poll.

:class:`Wait` decides; the drivers (:mod:`~rivya_provider.client.polling.drivers`) poll and
sleep. The rules, the same on every path that waits:

- A poll is one request; after an answer that the generation is still running, the next poll
  comes when the schedule says, jittered by :data:`~.schedule.JITTER`.
- After a failed poll: a permanent error ends the wait at once; transient trouble (429, 5xx, a
  network error) never does before the deadline, as the generation may be paid. The next poll
  backs off from the schedule's interval (doubling, jittered, up to ``backoff_max``) and never
  comes before a ``Retry-After`` (capped at ``retry_after_cap``).
- The wait ends at its deadline on the local clock, whatever a server's clock says: the last
  pause ends at the deadline, a poll is made then, and its answer (a finished generation
  included) is taken before the wait gives up.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from rivya_provider.client.config import RetryPolicy
from rivya_provider.client.errors import GenerationTimeoutError, RivyaError, is_retryable
from rivya_provider.client.polling.schedule import PollSchedule, jittered
from rivya_provider.client.tasks import GenerationTask

log = logging.getLogger("rivya_provider.client")


def error_delay(errors: int, *, interval: float, error: Exception, policy: RetryPolicy) -> float:
    """Pause before polling again after ``errors`` failed polls in a row.

    It backs off from the poll interval (jittered, up to ``backoff_max``) and never comes before
    a (capped, jittered) ``Retry-After``.
    """
    backoff = max(interval, min(policy.backoff_max, interval * 2 ** (errors - 1)))
    delay = random.uniform(backoff / 2, backoff)  # noqa: S311
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        delay = max(delay, policy.after_retry_after(retry_after, attempt=errors))
    return delay


class Wait:
    """The decisions of one wait for one generation.

    :param task_id: the generation's id (errors name it).
    :param schedule: when to poll.
    :param deadline: ``clock`` time at which the wait ends.
    :param retry: the retry settings (the backoff's ceiling, the ``Retry-After`` cap).
    :param since: ``clock`` time the schedule counts from (the generation's submission), or
        ``None`` for the start of this wait.
    :param clock: the clock of ``deadline`` and ``since``.
    """

    def __init__(
        self,
        *,
        task_id: str,
        schedule: PollSchedule,
        deadline: float,
        retry: RetryPolicy,
        since: float | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.task_id = task_id
        self.schedule = schedule
        self.deadline = deadline
        self._retry = retry
        self._clock = clock
        self._started = clock()
        self._since = self._started if since is None else since
        self._errors = 0
        self.last_status = "unknown"
        self._last_failure = ""

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once it has passed)."""
        return self.deadline - self._clock()

    def waited(self) -> float:
        """Seconds since this wait began."""
        return self._clock() - self._started

    def elapsed(self) -> float:
        """Seconds since the generation was submitted (or, when unknown, since the wait began)."""
        return self._clock() - self._since

    def first_pause(self, seconds: float) -> float:
        """The pause before the first poll: ``seconds``, never past the deadline."""
        return max(0.0, min(seconds, self.remaining()))

    def turn_within(self) -> float:
        """Seconds the next poll may wait for its turn in this process (pacing, a held 429)."""
        return max(0.0, self.remaining())

    def after_answer(self, task: GenerationTask) -> float | None:
        """Return ``None`` when the generation has ended, else the pause before the next poll.

        :raises GenerationTimeoutError: when the deadline has passed.
        """
        self._errors, self._last_failure = 0, ""
        self.last_status = task.status_as_reported
        if task.status.is_terminal:
            return None
        self._check_deadline(None)
        pause = jittered(self.schedule.next_delay(elapsed=self.elapsed()))
        return min(pause, self.remaining())

    def after_error(self, error: RivyaError) -> float:
        """Return the pause before polling again after a failed poll.

        :raises RivyaError: ``error`` itself when one more poll cannot help.
        :raises GenerationTimeoutError: when the deadline has passed.
        """
        if not is_retryable(error):
            raise error
        self._errors += 1
        self._last_failure = f" (last poll failed: {error})"
        self._check_deadline(error)
        interval = self.schedule.next_delay(elapsed=self.elapsed())
        delay = error_delay(self._errors, interval=interval, error=error, policy=self._retry)
        log.warning(
            "Polling Rivya generation %s failed (%d in a row: %s); polling again in %.1fs, %.0fs "
            "before the deadline",
            self.task_id,
            self._errors,
            error,
            delay,
            self.remaining(),
        )
        return min(delay, self.remaining())

    def _check_deadline(self, cause: RivyaError | None) -> None:
        if self.remaining() > 0:
            return
        raise GenerationTimeoutError(
            task_id=self.task_id,
            last_status=self.last_status + self._last_failure,
            waited_seconds=self.waited(),
        ) from cause
