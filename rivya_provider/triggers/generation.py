"""The deferrable wait: poll one generation in the triggerer until it ends or times out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.triggers.base import BaseTrigger, TriggerEvent

from rivya_provider import tasklog
from rivya_provider.client import (
    GenerationTask,
    GenerationTimeoutError,
    RivyaError,
    Wait,
    fire_not_before,
    learn,
    path_id,
    schedule_for,
    wait_async,
)
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.resume import started_at_of
from rivya_provider.triggers import heap, wakeups
from rivya_provider.triggers.events import GenerationEvent


def min_heartbeat_interval() -> float:
    """Airflow's ``[workers] min_heartbeat_interval`` in seconds (5 by default)."""
    return float(conf.getfloat("workers", "min_heartbeat_interval", fallback=5.0))


def fire_guard(*, first_delay: float, now: float | None = None) -> float | None:
    """Return the trigger's ``fire_not_before`` for a wait deferred ``now``, where one is needed.

    See :func:`rivya_provider.client.polling.schedule.guard_window` for the Airflow 3.3 race it
    stays clear of.

    :param first_delay: seconds from deferring to the trigger's first poll.
    :param now: Unix time of deferring (default: now).
    """
    return fire_not_before(first_delay=first_delay, heartbeat=min_heartbeat_interval(), now=now)


class RivyaGenerationTrigger(BaseTrigger):
    """Poll a Rivya generation without holding a worker slot; yield exactly one event.

    Only plain values are serialised (never the API key: the Connection is looked up in the
    triggerer). The deadline is absolute, so a restarted triggerer does not extend the wait; the
    event comes at most one poll (the Connection's ``connect + read`` timeouts) after it.
    Transient poll failures (429, 5xx, network) never end the wait before the deadline: the
    generation may be paid. Polling backs off from ``poll_interval`` meanwhile, never sooner than
    a (capped) ``Retry-After``.

    :param generation_id: the Rivya task id (``task_...``).
    :param deadline: Unix time after which the wait ends with a ``timeout`` event.
    :param rivya_conn_id: the Airflow Connection holding the API key.
    :param poll_interval: seconds between polls; ``None`` adapts them to the model's expected
        generation time (:mod:`rivya_provider.client.polling`): dense around the expected end,
        sparser the longer the wait.
    :param first_delay: seconds before the first poll.

    :param carry: plain values handed back untouched in the event (the operator keeps its request
        summary there, so the resumed task can describe it).
    :param fire_not_before: Unix time before which a finished generation is held back (see
        :func:`fire_guard`); polling itself may start earlier.
    :param model: the model id, whose running estimate (kept in the triggerer's process and
        updated by every wait there) paces adaptive polls.
    :param expected_seconds: the expected generation time the deferring task's polls followed;
        the trigger's polls follow it too (without it, what the triggerer's machine learnt).
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
        # Checked where the wait is made (a worker deferring), not first in the triggerer.
        path_id(generation_id, field_name="generation_id")
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

    async def watch(self) -> GenerationEvent:
        """Poll until the generation ends, the deadline passes or an error cannot be waited out.

        Each poll is one request; when to poll next is :mod:`rivya_provider.client.polling`'s
        decision, as on every other path that waits. A poll is made before the deadline is
        judged: a generation that ended (and was charged) while the triggerer was down is
        reported as done, not as a timeout.
        """
        try:
            client = await RivyaHook(rivya_conn_id=self.rivya_conn_id).aget_client()
        except RivyaError as exc:
            return GenerationEvent.from_error(self.generation_id, exc)
        base_url = client.config.base_url
        wait = Wait(
            task_id=self.generation_id,
            # The deferring task's expected time wins, as the catalogue's hint won there: the
            # trigger polls on as the worker would have.
            schedule=schedule_for(
                base_url=base_url,
                model=self.model,
                hint=self.expected_seconds,
                interval=self.poll_interval,
            ),
            deadline=self.deadline,
            retry=client.config.retry,
            since=self.submitted_at,
            clock=time.time,
        )
        try:
            task = await wait_async(
                lambda within: client.apoll_generation(self.generation_id, turn_within=within),
                wait,
                first=self.first_delay,
                sleep=wakeups.sleep,
                on_answer=self._progress(),
            )
        except GenerationTimeoutError as exc:
            return GenerationEvent(
                status="timeout",
                generation_id=self.generation_id,
                last_status=exc.last_status,
                waited_seconds=round(exc.waited_seconds, 3),
            )
        except RivyaError as exc:
            return GenerationEvent.from_error(self.generation_id, exc)
        learn(task, base_url=base_url, submitted_at=self.submitted_at, now=time.time())
        return GenerationEvent.finished(task)

    def _progress(self) -> Callable[[GenerationTask, Wait], None]:
        """A line in the log for each status the wait sees, and one a minute while it lasts."""
        progress = tasklog.WaitProgress()

        def note(task: GenerationTask, wait: Wait) -> None:
            status = task.status_as_reported
            if progress.worth_a_line(status, now=time.monotonic()):
                tasklog.waiting(
                    self.log,
                    generation_id=task.id,
                    status=status,
                    elapsed=time.time() - (self.submitted_at or started_at_of(task)),
                    left=wait.remaining(),
                )

        return note
