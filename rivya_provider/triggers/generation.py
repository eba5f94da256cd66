"""The deferrable wait: poll one generation in the triggerer until it ends or times out."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.triggers.base import BaseTrigger, TriggerEvent

from rivya_provider import tasklog
from rivya_provider.client import RivyaError, bounded, timing
from rivya_provider.client._rules import poll_error_delay
from rivya_provider.client.errors import is_retryable
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.resume import started_at_of
from rivya_provider.triggers import heap, wakeups
from rivya_provider.triggers.events import GenerationEvent

#: Seconds the guard window lasts beyond ``[workers] min_heartbeat_interval``. The worker's
#: supervisor reports the deferral up to that interval after the task process exits, and the
#: scheduler takes the report in on a later loop: on a loaded machine (20 mapped tasks on 2 cores)
#: triggers firing right after the interval still lost a try in 1 to 3 runs of 20.
GUARD_MARGIN_SECONDS = 3.0


def deferred_first_poll_min() -> float:
    """Least seconds between deferring and the trigger's event.

    On Airflow 3.3 a trigger that fires before the worker has noticed the deferral (within
    ``[workers] min_heartbeat_interval``, 5 s by default) and the scheduler has taken that in can
    make the scheduler fail the try as "killed externally". The trigger may poll sooner; a result
    it finds early is held back for what is left of this window (``fire_not_before``).
    """
    heartbeat = float(conf.getfloat("workers", "min_heartbeat_interval", fallback=5.0))
    return heartbeat + GUARD_MARGIN_SECONDS if heartbeat > 0 else 0.0


def fire_guard(*, first_delay: float, now: float | None = None) -> float | None:
    """Return the trigger's ``fire_not_before`` for a wait deferred ``now``, where one is needed.

    A trigger whose first poll comes after the window cannot fire inside it: no guard, so
    nothing is held back.

    :param first_delay: seconds from deferring to the trigger's first poll.
    :param now: Unix time of deferring (default: now).
    """
    window = deferred_first_poll_min()
    if first_delay >= window:
        return None
    return (time.time() if now is None else now) + window


class RivyaGenerationTrigger(BaseTrigger):
    """Poll a Rivya generation without holding a worker slot; yield exactly one event.

    Only plain values are serialised (never the API key: the Connection is looked up in the
    triggerer). The deadline is absolute, so a restarted triggerer does not extend the wait.

    :param generation_id: the Rivya task id (``task_...``).
    :param deadline: Unix time after which the wait ends with a ``timeout`` event.
    :param rivya_conn_id: the Airflow Connection holding the API key.
    :param poll_interval: seconds between polls; ``None`` adapts them to the model's expected
        generation time (:mod:`rivya_provider.client.timing`): dense around the expected end,
        sparser the longer the wait.
    :param first_delay: seconds before the first poll.
    Transient poll failures (429, 5xx, network) never end the wait before the deadline: the
    generation may be paid. Polling backs off from ``poll_interval`` meanwhile, never sooner than
    a (capped) ``Retry-After``.

    :param carry: plain values handed back untouched in the event (the operator keeps its request
        summary there, so the resumed task can describe it).
    :param fire_not_before: Unix time before which a finished generation is held back (see
        :func:`deferred_first_poll_min`); polling itself may start earlier.
    :param model: the model id, whose running estimate (kept in the triggerer's process and
        updated by every wait there) paces adaptive polls.
    :param expected_seconds: the expected generation time the deferring task knew, used when
        the triggerer has no estimate of its own for the model.
    :param submitted_at: local Unix time Rivya answered the create, if this wait submitted the
        generation (adaptive intervals grow with the time since; the observed duration is learnt).
    """

    def __init__(
        self,
        *,
        generation_id: str,
        deadline: float,
        rivya_conn_id: str = RivyaHook.default_conn_name,
        poll_interval: float | None = 5.0,
        first_delay: float = 0.0,
        carry: dict[str, Any] | None = None,
        fire_not_before: float | None = None,
        model: str | None = None,
        expected_seconds: float | None = None,
        submitted_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.generation_id = generation_id
        self.deadline = float(deadline)
        self.rivya_conn_id = rivya_conn_id
        self.poll_interval = None if poll_interval is None else float(poll_interval)
        self.first_delay = float(first_delay)
        self.carry = dict(carry or {})
        self.fire_not_before = None if fire_not_before is None else float(fire_not_before)
        self.model = model
        self.expected_seconds = None if expected_seconds is None else float(expected_seconds)
        self.submitted_at = None if submitted_at is None else float(submitted_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "generation_id": self.generation_id,
                "deadline": self.deadline,
                "rivya_conn_id": self.rivya_conn_id,
                "poll_interval": self.poll_interval,
                "first_delay": self.first_delay,
                "carry": self.carry,
                "fire_not_before": self.fire_not_before,
                "model": self.model,
                "expected_seconds": self.expected_seconds,
                "submitted_at": self.submitted_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        heap.freeze_once()
        event = (await self.watch()).model_copy(update={"carry": self.carry})
        if self.fire_not_before is not None:
            # Only a result found early waits, and only for what is left of the window.
            await asyncio.sleep(max(0.0, self.fire_not_before - time.time()))
        self.log.info(
            "Generation %s: %s%s",
            self.generation_id,
            event.status,
            f" ({event.code}: {event.message})" if event.code else "",
        )
        yield TriggerEvent(event.model_dump(mode="json"))  # type: ignore[no-untyped-call]

    def _remaining(self) -> float:
        return self.deadline - time.time()

    def _pause(self, seconds: float) -> Awaitable[None]:
        # Not a coroutine: one object less per poll kept alive through the sleep.
        return wakeups.sleep(min(seconds, self._remaining()))

    def _schedule(self, base_url: str) -> timing.PollSchedule:
        own = timing.expected_seconds(base_url=base_url, model=self.model, hint=None)
        return timing.PollSchedule(
            expected=own if own is not None else self.expected_seconds,
            interval=self.poll_interval,
        )

    def _elapsed(self, started: float) -> float:
        """Seconds since submitting (or, when unknown, since this wait began)."""
        if self.submitted_at is not None:
            return time.time() - self.submitted_at
        return time.monotonic() - started

    async def watch(self) -> GenerationEvent:
        """Poll until the generation ends, the deadline passes or an error cannot be waited out."""
        started = time.monotonic()
        try:
            client = await RivyaHook(rivya_conn_id=self.rivya_conn_id).aget_client()
        except RivyaError as exc:
            return GenerationEvent.from_error(self.generation_id, exc)
        schedule = self._schedule(client.config.base_url)
        await self._pause(self.first_delay)
        errors = 0
        last_status, last_failure = "unknown", ""
        progress = tasklog.WaitProgress()
        while True:
            # Poll before judging the deadline: a generation that ended (and was charged) while
            # the triggerer was down is reported as done, not as a timeout.
            try:
                task = await bounded.before(
                    self.deadline, client.aget_generation(self.generation_id), what="poll"
                )
            except RivyaError as exc:
                # The generation may be paid: transient trouble never ends the wait before
                # its deadline.
                if not is_retryable(exc):
                    return GenerationEvent.from_error(self.generation_id, exc)
                errors += 1
                delay = poll_error_delay(
                    errors,
                    interval=schedule.next_delay(elapsed=self._elapsed(started)),
                    error=exc,
                    policy=client.config.retry,
                )
                last_failure = f" (last poll failed: {exc})"
                self.log.warning(
                    "Polling %s failed (%d in a row: %s); polling again in %.1fs, %.0fs before "
                    "the deadline",
                    self.generation_id,
                    errors,
                    exc,
                    delay,
                    max(0.0, self._remaining()),
                )
            else:
                errors, last_failure = 0, ""
                last_status = task.status_as_reported
                if task.status.is_terminal:
                    timing.learn(
                        task,
                        base_url=client.config.base_url,
                        submitted_at=self.submitted_at,
                        now=time.time(),
                    )
                    return GenerationEvent.finished(task)
                # +-10 %: thousands of waits deferred together drift apart instead of polling
                # in lockstep.
                delay = schedule.next_delay(elapsed=self._elapsed(started))
                delay *= random.uniform(0.9, 1.1)  # noqa: S311
                if progress.worth_a_line(last_status, now=time.monotonic()):
                    tasklog.waiting(
                        self.log,
                        generation_id=task.id,
                        status=last_status,
                        elapsed=time.time() - started_at_of(task),
                        left=self._remaining(),
                    )
                # Not kept through the sleep: a parsed answer is a dozen tracked objects (its
                # timestamps' time zones among them), and every full pass of the collector walks
                # those of thousands of sleeping waits.
                del task
            if self._remaining() <= 0:
                return GenerationEvent(
                    status="timeout",
                    generation_id=self.generation_id,
                    last_status=last_status + last_failure,
                    waited_seconds=round(time.monotonic() - started, 3),
                )
            await self._pause(delay)
