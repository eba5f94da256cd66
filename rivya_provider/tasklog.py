"""What a generation task says in its log about money and progress, in plain words.

Four moments matter to someone reading a task log: a generation was submitted (with how many
credits reserved, and how long the task waits for it), it is being waited for (status, time
elapsed, time left), an earlier try's generation is reused (at no new charge), and it finished
(credits charged by this try, files written). Every line leads with which of those it is and what
a person acts on (credits, status, time); the generation id and the Idempotency-Key come last, in
brackets, as a log viewer cuts long lines off at the right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rivya_provider.client import GenerationTask, TaskStatus


def credits(amount: float) -> str:
    """Return ``amount`` credits as words ("1 credit", "14 credits", "2.5 credits").

    :param amount: a credit count.
    """
    number = f"{amount:g}"
    return f"{number} credit" if number == "1" else f"{number} credits"


def duration(seconds: float) -> str:
    """Return a span of time as read at a glance ("0s", "45s", "12 min", "1 h 30 min").

    Seconds below two minutes, whole minutes below an hour, then hours and minutes: the log
    says how long is left, not a countdown to the second.

    :param seconds: the span; a negative one reads as none.
    """
    whole = max(0, round(seconds))
    if whole < 120:
        return f"{whole}s"
    minutes = round(whole / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" if rest == 0 else f"{hours} h {rest} min"


def files_written(count: int) -> str:
    """Return ``count`` files as words ("1 file", "3 files")."""
    return "1 file" if count == 1 else f"{count} files"


def charged_by_this_try(task: GenerationTask, *, reused: bool) -> float:
    """Return the credits this try caused to be charged: nothing for a reused generation.

    :param task: the generation in its final state.
    :param reused: it had already succeeded when this try found it (an earlier try paid),
        e.g. found again in the key chain, or an earlier try's trigger event handed to it.
    """
    return 0 if reused else task.final_credits


def submitted(
    log: Any, task: GenerationTask, *, idempotency_key: str, wait_up_to: float | None = None
) -> None:
    """Log a new submission: the credits Rivya reserved, its status, how long it is waited for.

    :param log: the logger to write to.
    :param task: the generation as the create returned it.
    :param idempotency_key: the key it was created under.
    :param wait_up_to: seconds the task waits for it (its ``generation_timeout``), or ``None``
        when the task does not wait (``wait_for_completion=False``).
    """
    if task.status.is_terminal:  # answered finished already: there is nothing to wait for
        waits = ""
    elif wait_up_to is None:
        waits = ", not waited for"
    else:
        waits = f", waiting up to {duration(wait_up_to)}"
    log.info(
        "Submitted: %s reserved, charged only if it succeeds; status %s%s "
        "(generation %s, Idempotency-Key %s)",
        credits(task.reserved_credits),
        task.status_as_reported,
        waits,
        task.id,
        idempotency_key,
    )


def found_again(log: Any, task: GenerationTask, *, how: str, idempotency_key: str) -> None:
    """Log a generation an earlier try submitted, found again instead of submitting anew.

    :param log: the logger to write to.
    :param task: the generation as it is now.
    :param how: ``resumed`` (an earlier try remembered it for retries, in ``task_state_store``)
        or ``replayed`` (Rivya replayed the key).
    :param idempotency_key: the key it was created under.
    """
    found = (
        "remembered for retries"
        if how == "resumed"
        else f"Rivya replayed Idempotency-Key {idempotency_key}"
    )
    if task.status is TaskStatus.SUCCEEDED:
        log.info(
            "Reusing an earlier try's generation: it already succeeded; no new generation and "
            "no new charge (generation %s, %s)",
            task.id,
            found,
        )
    elif task.status is TaskStatus.FAILED:
        log.info(
            "An earlier try's generation failed; failures cost nothing (generation %s, %s)",
            task.id,
            found,
        )
    else:
        log.info(
            "Resuming an earlier try's generation: status %s; waiting for it instead of "
            "submitting (and paying for) another (generation %s, %s)",
            task.status_as_reported,
            task.id,
            found,
        )


class WaitProgress:
    """Which looks at a running generation are worth a log line.

    The first look, every change of status, then one look a minute: a triggerer running
    thousands of waits would otherwise write a line per poll, and a user reading one task's log
    learns nothing from the same status every few seconds.
    """

    #: Seconds between two lines about the same status.
    EVERY = 60.0

    def __init__(self) -> None:
        self._status: str | None = None
        self._logged_at = 0.0

    def worth_a_line(self, status: str, *, now: float) -> bool:
        """Tell whether this look (``status`` at monotonic time ``now``) gets a line."""
        if status == self._status and now - self._logged_at < self.EVERY:
            return False
        self._status, self._logged_at = status, now
        return True


def waiting(
    log: Any,
    *,
    generation_id: str,
    status: str,
    elapsed: float,
    left: float,
    where: str | None = None,
) -> None:
    """Log one look at a running generation.

    :param log: the logger to write to.
    :param generation_id: the Rivya task id.
    :param status: its status as Rivya reported it.
    :param elapsed: seconds since it was submitted.
    :param left: seconds before the wait's deadline.
    :param where: where the wait runs when that is worth saying, e.g. ``"in the worker"``.
    """
    log.info(
        "Waiting%s: status %s, %s since it was submitted, %s left before the timeout "
        "(generation %s)",
        f" {where}" if where else "",
        status,
        duration(elapsed),
        duration(left),
        generation_id,
    )


def finished(
    log: Any,
    task: GenerationTask,
    *,
    reused: bool,
    files: Sequence[str] | None,
    output_path: str | None,
) -> None:
    """Log the end of the task's work: credits charged by this try, and files written.

    :param log: the logger to write to.
    :param task: the generation as it is now.
    :param reused: it had already succeeded when this try found it.
    :param files: paths of the copies written, or ``None`` when nothing was copied.
    :param output_path: where copies go, if anywhere.
    """
    if not task.status.is_terminal:
        log.info(
            "Not waiting (wait_for_completion=False): %s reserved, charged only if it succeeds; "
            "status %s (generation %s)",
            credits(task.reserved_credits),
            task.status_as_reported,
            task.id,
        )
        return
    charged = charged_by_this_try(task, reused=reused)
    if charged == 0 and task.final_credits:
        charge = (
            f"0 credits charged by this try (an earlier try paid {credits(task.final_credits)})"
        )
    else:
        charge = f"{credits(charged)} charged by this try"
    if task.result_count > len(task.result_urls):
        log.warning(
            "Rivya listed %d results; the manifest keeps the first %d (generation %s)",
            task.result_count,
            len(task.result_urls),
            task.id,
        )
    if files is None:
        written = "no files written" + ("" if output_path else ": no output_path or output_dir")
        details = f"generation {task.id}"
    else:
        written = f"{files_written(len(files))} written to {output_path}"
        details = f"generation {task.id}; files: {', '.join(files)}"
    log.info("Generation %s: %s; %s (%s)", task.status, charge, written, details)
