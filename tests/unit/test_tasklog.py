"""The plain-words task log lines: what they say about charges, waits and files."""

from __future__ import annotations

from typing import Any

import pytest

from rivya_provider import tasklog
from rivya_provider.client import GenerationTask

pytestmark = pytest.mark.no_airflow


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)


def task(status: str = "succeeded", **extra: Any) -> GenerationTask:
    data: dict[str, Any] = {
        "id": "task_1",
        "status": status,
        "reserved_credits": 14,
        "final_credits": 14 if status == "succeeded" else 0,
    }
    if status == "succeeded":
        data["result"] = {"urls": ["https://cdn.example/r/a.png"]}
    return GenerationTask.model_validate({**data, **extra})


@pytest.mark.parametrize(
    ("amount", "words"),
    [(0, "0 credits"), (1, "1 credit"), (14, "14 credits"), (2.5, "2.5 credits")],
)
def test_credits_in_words(amount: float, words: str) -> None:
    assert tasklog.credits(amount) == words


@pytest.mark.parametrize(("reused", "charged"), [(False, 14), (True, 0)])
def test_charged_by_this_try(reused: bool, charged: int) -> None:
    # Not reused: this try submitted it, or waited while it finished (and was charged).
    # Reused: it had already succeeded when this try found it; an earlier try paid.
    assert tasklog.charged_by_this_try(task(), reused=reused) == charged


def test_submitted_names_key_and_reservation() -> None:
    log = Recorder()
    tasklog.submitted(log, task("queued"), idempotency_key="airflow-rivya-x-0")
    assert log.lines == [
        "Submitted generation task_1 (Idempotency-Key airflow-rivya-x-0): 14 credits reserved, "
        "charged only if it succeeds"
    ]


def test_found_again_says_reused_or_resumed_and_how() -> None:
    log = Recorder()
    tasklog.found_again(log, task(), how="resumed", idempotency_key="k-0")
    tasklog.found_again(log, task("processing"), how="replayed", idempotency_key="k-0")
    tasklog.found_again(log, task("failed"), how="resumed", idempotency_key="k-0")
    reused, resumed, failed = log.lines
    assert reused.startswith("Reusing generation task_1 from an earlier try (recorded in task_")
    assert reused.endswith("no new generation and no new charge")
    assert "(Rivya replayed Idempotency-Key k-0): it is processing; waiting for it" in resumed
    assert failed.endswith("failed (failures cost nothing)")


def test_waiting_never_shows_negative_seconds() -> None:
    log = Recorder()
    tasklog.waiting(log, generation_id="task_1", status="processing", elapsed=-2.0, left=-1.0)
    assert log.lines == [
        "Waiting for generation task_1: processing, 0s since it was submitted, 0s left before "
        "the timeout"
    ]


def test_wait_progress_logs_the_first_look_each_new_status_and_then_once_a_minute() -> None:
    progress = tasklog.WaitProgress()
    looks = [
        ("queued", 0.0),
        ("queued", 5.0),
        ("processing", 10.0),
        ("processing", 15.0),
        ("processing", 69.0),
        ("processing", 70.0),
        ("processing", 75.0),
    ]
    logged = [(s, t) for s, t in looks if progress.worth_a_line(s, now=t)]
    assert logged == [("queued", 0.0), ("processing", 10.0), ("processing", 70.0)]


def test_finished_reused_says_nothing_new_was_charged_and_lists_files() -> None:
    log = Recorder()
    tasklog.finished(log, task(), reused=True, files=["/out/a.png"], output_path="/out")
    assert log.lines == [
        "Generation task_1 succeeded: 0 credits charged by this try (an earlier try paid "
        "14 credits); 1 file(s) written to /out: /out/a.png"
    ]


def test_finished_new_and_not_waited_for() -> None:
    log = Recorder()
    tasklog.finished(log, task(), reused=False, files=None, output_path=None)
    tasklog.finished(log, task("queued"), reused=False, files=None, output_path=None)
    done, submitted_only = log.lines
    assert done == (
        "Generation task_1 succeeded: 14 credits charged by this try; no files written "
        "(no output_path or output_dir)"
    )
    assert submitted_only.startswith("Generation task_1 is queued; not waiting for it")
    assert submitted_only.endswith("14 credits reserved, charged only if it succeeds")
