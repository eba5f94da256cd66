"""How a deferrable generate task waits in the worker before handing the wait to the triggerer."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rivya_provider.client import RivyaClient, RivyaError, timing
from rivya_provider.client.catalog import ModelSpec
from rivya_provider.client.errors import is_retryable
from rivya_provider.client.models import GenerationTask

#: A deferrable task polls in the worker only within this many seconds of submitting: a quick
#: generation then finishes without a round trip through the triggerer, and a slow one holds
#: the worker slot no longer than this.
WORKER_LOOK_MAX_SECONDS = 10.0
#: The same bound for a model whose duration nothing says yet (no catalogue hint, nothing learnt
#: on this machine): the polls due this soon (at 2.5, 3.5 and 4.5 s) cost a slow model a few
#: seconds of the slot, where a deferral costs a generation that ends just after the first look
#: ``[workers] min_heartbeat_interval`` plus a new task process.
UNKNOWN_LOOK_MAX_SECONDS = 5.0


def poll_schedule(
    *,
    base_url: str,
    model: str,
    catalog: Mapping[str, ModelSpec] | None,
    poll_interval: float | None,
    first_poll_delay: float | None,
) -> timing.PollSchedule:
    """Return the schedule of a generation's polls; settings the user gave win.

    :param base_url: the API base URL.
    :param model: the model id.
    :param catalog: the model catalogue read for the checks, if any (its hint wins).
    :param poll_interval: the user's fixed interval, or ``None``.
    :param first_poll_delay: the user's fixed first delay, or ``None``.
    """
    spec = catalog.get(model) if catalog is not None else None
    hint = spec.expected_seconds if spec is not None else None
    return timing.PollSchedule(
        expected=timing.expected_seconds(base_url=base_url, model=model, hint=hint),
        interval=poll_interval,
        first_delay=first_poll_delay,
    )


@dataclass(frozen=True)
class WorkerLook:
    """What the polls in the worker found, and when the triggerer polls next."""

    task: GenerationTask
    #: Seconds from deferring to the trigger's first poll.
    first_delay: float
    polls: int


def _look(client: RivyaClient, task: GenerationTask, log: Any) -> GenerationTask | None:
    """Poll once; ``None`` when a transient failure says "defer now"."""
    try:
        return client.get_generation(task.id)
    except RivyaError as exc:
        if not is_retryable(exc):
            raise
        log.info("Could not check generation %s before deferring: %s", task.id, exc)
        return None


def look_before_deferring(
    client: RivyaClient,
    task: GenerationTask,
    *,
    schedule: timing.PollSchedule,
    submitted_at: float,
    log: Any,
) -> WorkerLook:
    """Poll a new generation in the worker while it may still be quick.

    With adaptive polls, every poll the schedule places within :data:`WORKER_LOOK_MAX_SECONDS`
    of submitting is made here (none when the model is expected to take longer), or within
    :data:`UNKNOWN_LOOK_MAX_SECONDS` when its duration is unknown; with a fixed interval, one
    poll at the first delay, when that is short enough.

    :param client: the worker's client.
    :param task: the generation as submitted.
    :param schedule: its poll schedule.
    :param submitted_at: local Unix time Rivya answered its create (its polls count from here).
    :param log: where to say why a poll failed.
    """
    due = submitted_at + schedule.first()
    polls = 0
    known = schedule.expected is not None
    limit = WORKER_LOOK_MAX_SECONDS if known or not schedule.adaptive else UNKNOWN_LOOK_MAX_SECONDS
    while due - submitted_at <= limit:
        time.sleep(max(0.0, due - time.time()))
        seen = _look(client, task, log)
        polls += 1
        if seen is None:
            due = time.time() + schedule.next_delay(elapsed=time.time() - submitted_at)
            break
        task = seen
        if task.status.is_terminal:
            timing.learn(
                task, base_url=client.config.base_url, submitted_at=submitted_at, now=time.time()
            )
            return WorkerLook(task=task, first_delay=0.0, polls=polls)
        due = time.time() + schedule.next_delay(elapsed=time.time() - submitted_at)
        if not schedule.adaptive:
            # A fixed interval: one look only, as the user's first_poll_delay asked.
            break
    if polls and not schedule.adaptive:
        # A fixed interval counts from the poll made here (as the user set it).
        return WorkerLook(task=task, first_delay=schedule.next_delay(elapsed=0.0), polls=polls)
    return WorkerLook(task=task, first_delay=max(0.0, due - time.time()), polls=polls)
