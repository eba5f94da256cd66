"""What a generation task says in its log about money and progress, in plain words.

Four moments matter to someone reading a task log: a generation was submitted (under which
Idempotency-Key, with how many credits reserved), it is being waited for (status, time elapsed,
time left), an earlier try's generation is reused (at no new charge), and it finished (credits
charged by this try, files written). Every sentence here says which of those it is.
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


def charged_by_this_try(task: GenerationTask, *, reused: bool) -> float:
    """Return the credits this try caused to be charged: nothing for a reused generation.

    :param task: the generation in its final state.
    :param reused: it had already succeeded when this try found it (an earlier try paid),
        e.g. found again in the key chain, or an earlier try's trigger event handed to it.
    """
    return 0 if reused else task.final_credits


def submitted(log: Any, task: GenerationTask, *, idempotency_key: str) -> None:
    """Log a new submission: its key and the credits Rivya reserved for it.

    :param log: the logger to write to.
    :param task: the generation as the create returned it.
    :param idempotency_key: the key it was created under.
    """
    log.info(
        "Submitted generation %s (Idempotency-Key %s): %s reserved, charged only if it succeeds",
        task.id,
        idempotency_key,
        credits(task.reserved_credits),
    )


def found_again(log: Any, task: GenerationTask, *, how: str, idempotency_key: str) -> None:
    """Log a generation an earlier try submitted, found again instead of submitting anew.

    :param log: the logger to write to.
    :param task: the generation as it is now.
    :param how: ``resumed`` (recorded in ``task_state_store``) or ``replayed`` (Rivya
        replayed the key).
    :param idempotency_key: the key it was created under.
    """
    where = (
        "recorded in task_state_store"
        if how == "resumed"
        else f"Rivya replayed Idempotency-Key {idempotency_key}"
    )
    if task.status is TaskStatus.SUCCEEDED:
        log.info(
            "Reusing generation %s from an earlier try (%s): it already succeeded; no new "
            "generation and no new charge",
            task.id,
            where,
        )
    elif task.status is TaskStatus.FAILED:
        log.info(
            "Generation %s from an earlier try (%s) failed (failures cost nothing)", task.id, where
        )
    else:
        log.info(
            "Resuming generation %s from an earlier try (%s): it is %s; waiting for it instead "
            "of submitting (and paying for) another",
            task.id,
            where,
            task.status_as_reported,
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


def waiting(log: Any, *, generation_id: str, status: str, elapsed: float, left: float) -> None:
    """Log one look at a running generation.

    :param log: the logger to write to.
    :param generation_id: the Rivya task id.
    :param status: its status as Rivya reported it.
    :param elapsed: seconds since it was submitted.
    :param left: seconds before the wait's deadline.
    """
    log.info(
        "Waiting for generation %s: %s, %.0fs since it was submitted, %.0fs left before the "
        "timeout",
        generation_id,
        status,
        max(0.0, elapsed),
        max(0.0, left),
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
            "Generation %s is %s; not waiting for it (wait_for_completion=False): %s reserved, "
            "charged only if it succeeds",
            task.id,
            task.status_as_reported,
            credits(task.reserved_credits),
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
            "Rivya listed %d results for generation %s; the manifest keeps the first %d",
            task.result_count,
            task.id,
            len(task.result_urls),
        )
    if files is None:
        written = (
            "no files written (no output_path or output_dir)"
            if not output_path
            else "no files written"
        )
    else:
        written = f"{len(files)} file(s) written to {output_path}: {', '.join(files)}"
    log.info("Generation %s %s: %s; %s", task.id, task.status, charge, written)
