"""The loops that poll and sleep as a :class:`~.wait.Wait` decides: in a thread, in an event
loop, and for a while only (a deferrable task's look in the worker before it defers).

Each poll is ``poll(turn_within)``: one request (a client's ``poll_generation``), which may wait
for its turn in the process for at most ``turn_within`` seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from rivya_provider.client.errors import RivyaError, is_retryable
from rivya_provider.client.polling.wait import Wait
from rivya_provider.client.tasks import GenerationTask

Poll = Callable[[float], GenerationTask]
AsyncPoll = Callable[[float], Awaitable[GenerationTask]]
OnAnswer = Callable[[GenerationTask, Wait], None]


def wait_sync(
    poll: Poll,
    wait: Wait,
    *,
    first: float,
    sleep: Callable[[float], None],
    on_answer: OnAnswer | None = None,
) -> GenerationTask:
    """Poll until the generation ends; return it as last seen.

    :param poll: makes one poll.
    :param wait: the wait's decisions.
    :param first: seconds before the first poll.
    :param sleep: sleeps between polls.
    :param on_answer: told of every answer that the generation is still running.
    :raises GenerationTimeoutError: when the deadline passes first.
    :raises RivyaError: a permanent error of a poll.
    """
    pause = wait.first_pause(first)
    while True:
        sleep(pause)
        try:
            task = poll(wait.turn_within())
        except RivyaError as exc:
            pause = wait.after_error(exc)
            continue
        next_pause = wait.after_answer(task)
        if next_pause is None:
            return task
        if on_answer is not None:
            on_answer(task, wait)
        pause = next_pause


async def wait_async(
    poll: AsyncPoll,
    wait: Wait,
    *,
    first: float,
    sleep: Callable[[float], Awaitable[None]],
    on_answer: OnAnswer | None = None,
) -> GenerationTask:
    """The async twin of :func:`wait_sync`."""
    pause = wait.first_pause(first)
    while True:
        await sleep(pause)
        try:
            task = await poll(wait.turn_within())
        except RivyaError as exc:
            pause = wait.after_error(exc)
            continue
        next_pause = wait.after_answer(task)
        if next_pause is None:
            return task
        if on_answer is not None:
            on_answer(task, wait)
        # Not kept through the sleep: a parsed answer is a dozen tracked objects, and every full
        # pass of the garbage collector walks those of thousands of sleeping waits.
        del task
        pause = next_pause


class WorkerLook(NamedTuple):
    """What a deferrable task's polls in the worker found, and when the next poll is due."""

    task: GenerationTask
    #: Seconds from now to the next poll (0 once the generation has ended).
    next_poll: float
    polls: int


def look_before_deferring(
    poll: Poll,
    wait: Wait,
    task: GenerationTask,
    *,
    first: float,
    sleep: Callable[[float], None],
) -> WorkerLook:
    """Make the polls a new generation's schedule places in the worker's look window.

    With an adaptive schedule, every poll due within
    :meth:`~.schedule.PollSchedule.worker_look_seconds` of submitting is made here, as the
    trigger would make it; with a fixed interval, one poll at the first delay, when that is soon
    enough. A transient failure ends the look at once (the trigger polls next).

    :param poll: makes one poll.
    :param wait: the wait's decisions (its ``since`` is the submission).
    :param task: the generation as submitted.
    :param first: seconds from now to the first poll.
    """
    window = wait.schedule.worker_look_seconds()
    pause, polls = wait.first_pause(first), 0
    while wait.elapsed() + pause <= window:
        sleep(pause)
        polls += 1
        try:
            # A poll held back past the window (a 429 met by the create) defers at once.
            task = poll(max(0.0, min(wait.turn_within(), window - wait.elapsed())))
        except RivyaError as exc:
            if not is_retryable(exc):
                raise
            return WorkerLook(task=task, next_poll=wait.after_error(exc), polls=polls)
        next_pause = wait.after_answer(task)
        if next_pause is None:
            return WorkerLook(task=task, next_poll=0.0, polls=polls)
        pause = next_pause
        if not wait.schedule.adaptive:
            break  # a fixed interval: one look only, as the user's first delay asked
    return WorkerLook(task=task, next_poll=pause, polls=polls)
