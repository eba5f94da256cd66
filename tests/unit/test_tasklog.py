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


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (-3, "0s"),
        (0.4, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2 min"),
        (1788, "30 min"),
        (3600, "1 h"),
        (5400, "1 h 30 min"),
    ],
)
def test_durations_in_words(seconds: float, words: str) -> None:
    assert tasklog.duration(seconds) == words


def test_submitted_leads_with_credits_status_and_wait_and_ends_with_the_ids() -> None:
    log = Recorder()
    tasklog.submitted(log, task("queued"), idempotency_key="airflow-rivya-x-0", wait_up_to=600)
    tasklog.submitted(log, task("queued"), idempotency_key="airflow-rivya-x-0")
    tasklog.submitted(log, task(), idempotency_key="airflow-rivya-x-0", wait_up_to=600)
    assert log.lines == [
        "Submitted: 14 credits reserved, charged only if it succeeds; status queued, waiting up "
        "to 10 min (generation task_1, Idempotency-Key airflow-rivya-x-0)",
        "Submitted: 14 credits reserved, charged only if it succeeds; status queued, not waited "
        "for (generation task_1, Idempotency-Key airflow-rivya-x-0)",
        # Answered finished already: no wait to speak of.
        "Submitted: 14 credits reserved, charged only if it succeeds; status succeeded "
        "(generation task_1, Idempotency-Key airflow-rivya-x-0)",
    ]


def test_found_again_says_reused_or_resumed_and_how_it_was_found_last() -> None:
    log = Recorder()
    tasklog.found_again(log, task(), how="resumed", idempotency_key="k-0")
    tasklog.found_again(log, task("processing"), how="replayed", idempotency_key="k-0")
    tasklog.found_again(log, task("failed"), how="resumed", idempotency_key="k-0")
    assert log.lines == [
        "Reusing an earlier try's generation: it already succeeded; no new generation and no new "
        "charge (generation task_1, remembered for retries)",
        "Resuming an earlier try's generation: status processing; waiting for it instead of "
        "submitting (and paying for) another (generation task_1, Rivya replayed Idempotency-Key "
        "k-0)",
        "An earlier try's generation failed; failures cost nothing (generation task_1, "
        "remembered for retries)",
    ]
    assert not any("task_state_store" in line for line in log.lines)


def test_waiting_leads_with_status_and_time_and_never_shows_negative_seconds() -> None:
    log = Recorder()
    tasklog.waiting(log, generation_id="task_1", status="processing", elapsed=-2.0, left=-1.0)
    tasklog.waiting(
        log,
        generation_id="task_1",
        status="queued",
        elapsed=12.0,
        left=1788.0,
        where="in the worker",
    )
    assert log.lines == [
        "Waiting: status processing, 0s since it was submitted, 0s left before the timeout "
        "(generation task_1)",
        "Waiting in the worker: status queued, 12s since it was submitted, 30 min left before "
        "the timeout (generation task_1)",
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


def test_finished_reused_says_nothing_new_was_charged_and_lists_files_last() -> None:
    log = Recorder()
    tasklog.finished(
        log, task(), reused=True, files=["/out/a.png", "/out/b.png"], output_path="/out"
    )
    assert log.lines == [
        "Generation succeeded: 0 credits charged by this try (an earlier try paid 14 credits); "
        "2 files written to /out (generation task_1; files: /out/a.png, /out/b.png)"
    ]


def test_finished_new_and_not_waited_for() -> None:
    log = Recorder()
    tasklog.finished(log, task(), reused=False, files=["/out/a.png"], output_path="/out")
    tasklog.finished(log, task(), reused=False, files=None, output_path=None)
    tasklog.finished(log, task("queued"), reused=False, files=None, output_path=None)
    assert log.lines == [
        "Generation succeeded: 14 credits charged by this try; 1 file written to /out "
        "(generation task_1; files: /out/a.png)",
        "Generation succeeded: 14 credits charged by this try; no files written: no output_path "
        "or output_dir (generation task_1)",
        "Not waiting (wait_for_completion=False): 14 credits reserved, charged only if it "
        "succeeds; status queued (generation task_1)",
    ]
