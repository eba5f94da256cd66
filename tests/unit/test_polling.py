"""The one owner of "when to poll next": the same polls on every path, and each wait's decisions.

Paths that wait: the worker's wait (``wait_sync``), a deferrable task's look in the worker then
the trigger's wait (``look_before_deferring``, then ``wait_async``), and the clients' own waits.
They are driven here on a fake clock, each poll answered by a script, so the polls' times are
compared exactly (jitter off) and nothing sleeps for real.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from rivya_provider.client import (
    AsyncRivyaClient,
    GenerationTask,
    GenerationTimeoutError,
    NotFoundError,
    PollSchedule,
    RateLimitedError,
    RequestNotSentError,
    RetryPolicy,
    RivyaClient,
    RivyaTransportError,
    Wait,
    look_before_deferring,
    schedule_for,
    wait_async,
    wait_sync,
)
from rivya_provider.client.polling import schedule as schedule_module
from tests.clients import FakeClock
from tests.unit.conftest import API_KEY, BASE_URL, TASK, envelope

pytestmark = pytest.mark.no_airflow

MODEL = "flux-2-flex"


def _task(status: str) -> GenerationTask:
    return GenerationTask.model_validate({**TASK, "status": status})


class Answers:
    """Answers polls from a list (the last one repeats) and notes the clock at each poll."""

    def __init__(self, clock: FakeClock, statuses: list[str]) -> None:
        self.clock = clock
        self.statuses = statuses
        self.polled_at: list[float] = []

    def next(self) -> GenerationTask:
        self.polled_at.append(self.clock.now)
        status = self.statuses[min(len(self.polled_at), len(self.statuses)) - 1]
        return _task(status)

    def poll(self, within: float) -> GenerationTask:
        return self.next()

    async def apoll(self, within: float) -> GenerationTask:
        return self.next()


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule_module, "JITTER", 0.0)


def _wait(clock: FakeClock, schedule: PollSchedule, *, since: float, timeout: float) -> Wait:
    return Wait(
        task_id="task_abc",
        schedule=schedule,
        deadline=since + timeout,
        retry=RetryPolicy(),
        since=since,
        clock=clock,
    )


@pytest.mark.parametrize(
    ("hint", "interval", "first_delay"),
    [(4.0, None, None), (40.0, None, None), (None, None, None), (None, 3.0, 1.0)],
    ids=["quick-hint", "slow-hint", "unknown", "fixed"],
)
def test_the_same_model_and_hints_give_the_same_polls_on_every_path(
    no_jitter: None, hint: float | None, interval: float | None, first_delay: float | None
) -> None:
    statuses = ["processing"] * 12 + ["succeeded"]
    submitted = 1000.0

    # The worker's wait, as the operator builds it when it does not defer.
    worker = FakeClock(now=submitted)
    worker_answers = Answers(worker, statuses)
    schedule = schedule_for(
        base_url=BASE_URL, model=MODEL, hint=hint, interval=interval, first_delay=first_delay
    )
    wait_sync(
        worker_answers.poll,
        _wait(worker, schedule, since=submitted, timeout=1800),
        first=schedule.first(),
        sleep=worker.sleep,
    )

    # The deferrable path: the look in the worker, then the trigger with what it was handed.
    deferring = FakeClock(now=submitted)
    answers = Answers(deferring, statuses)
    look = look_before_deferring(
        answers.poll,
        _wait(deferring, schedule, since=submitted, timeout=1800),
        _task("queued"),
        first=schedule.first(),
        sleep=deferring.sleep,
    )
    trigger_schedule = schedule_for(
        base_url=BASE_URL, model=MODEL, hint=schedule.expected, interval=interval
    )
    asyncio.run(
        wait_async(
            answers.apoll,
            _wait(deferring, trigger_schedule, since=submitted, timeout=1800),
            first=look.next_poll,
            sleep=deferring.asleep,
        )
    )

    assert answers.polled_at == worker_answers.polled_at
    assert len(answers.polled_at) == len(statuses)
    window = schedule.worker_look_seconds()
    made_in_worker = [t - submitted for t in answers.polled_at[: look.polls]]
    assert all(offset <= window for offset in made_in_worker)


def test_a_running_answer_is_followed_by_the_next_poll_jittered_by_a_tenth() -> None:
    clock = FakeClock()
    wait = _wait(clock, PollSchedule(interval=10.0), since=clock.now, timeout=600)
    pauses = {wait.after_answer(_task("processing")) for _ in range(50)}
    assert all(p is not None and 9.0 <= p <= 11.0 for p in pauses)
    assert len(pauses) > 1  # waits started together drift apart


def test_a_finished_generation_ends_the_wait_even_past_its_deadline() -> None:
    # A generation that ended (and was charged) while nobody was polling is reported as done.
    clock = FakeClock()
    wait = _wait(clock, PollSchedule(interval=5.0), since=clock.now, timeout=10)
    clock.now += 3600
    assert wait.after_answer(_task("succeeded")) is None
    with pytest.raises(GenerationTimeoutError, match="still processing"):
        wait.after_answer(_task("processing"))


def test_the_last_pause_ends_at_the_deadline() -> None:
    clock = FakeClock()
    wait = _wait(clock, PollSchedule(interval=10.0), since=clock.now, timeout=12)
    clock.now += 9
    assert wait.after_answer(_task("processing")) == pytest.approx(3.0)
    assert wait.turn_within() == pytest.approx(3.0)
    clock.now += 3
    assert wait.turn_within() == 0


def test_transient_trouble_backs_off_and_honours_a_capped_retry_after() -> None:
    clock = FakeClock()
    retry = RetryPolicy(backoff_max=30.0, retry_after_cap=60.0)
    wait = Wait(
        task_id="task_abc",
        schedule=PollSchedule(interval=5.0),
        deadline=clock.now + 3600,
        retry=retry,
        clock=clock,
    )
    backoffs = [wait.after_error(RivyaTransportError("reset")) for _ in range(6)]
    assert 2.5 <= backoffs[0] <= 5.0
    assert all(pause <= 30.0 for pause in backoffs)
    assert max(backoffs[3:]) > 5.0  # backing off from the interval
    limited = RateLimitedError(status_code=429, code="rate_limited", message="x", retry_after=1e9)
    assert 60.0 <= wait.after_error(limited) <= 60.0 + retry.backoff_max


def test_a_permanent_error_ends_the_wait_at_once_and_a_timeout_names_the_last_failure() -> None:
    clock = FakeClock()
    wait = _wait(clock, PollSchedule(interval=5.0), since=clock.now, timeout=10)
    missing = NotFoundError(status_code=404, code="not_found", message="gone")
    with pytest.raises(NotFoundError):
        wait.after_error(missing)
    wait.after_answer(_task("processing"))
    clock.now += 10
    with pytest.raises(GenerationTimeoutError) as caught:
        wait.after_error(RivyaTransportError("connection reset"))
    assert caught.value.last_status == "processing (last poll failed: connection reset)"
    assert isinstance(caught.value.__cause__, RivyaTransportError)


async def test_a_cancellation_that_comes_with_the_answer_is_not_lost() -> None:
    # The triggerer cancels a wait (task cleared, triggerer stopping) just as its poll's answer
    # lands: the wait must end there, not poll on.
    answer: asyncio.Future[GenerationTask] = asyncio.get_running_loop().create_future()
    polling = asyncio.Event()
    polls = 0

    async def poll(within: float) -> GenerationTask:
        nonlocal polls
        polls += 1
        polling.set()
        return await answer

    clock = FakeClock()
    wait = _wait(clock, PollSchedule(interval=0.01), since=clock.now, timeout=60)
    waiting = asyncio.ensure_future(wait_async(poll, wait, first=0.0, sleep=asyncio.sleep))
    await polling.wait()
    answer.set_result(_task("processing"))
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert polls == 1


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_poll_that_would_wait_past_its_turn_is_not_sent(flavour: str) -> None:
    # After a 429 the process holds its requests for the Retry-After (capped), a worker's as a
    # triggerer's: a poll near its wait's deadline fails at once instead of waiting, so the wait
    # ends on time.
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return envelope(429, "rate_limited", "slow down", **{"Retry-After": "1000000000"})

    clock = FakeClock()
    transport = httpx.MockTransport(answer)
    if flavour == "sync":
        client = RivyaClient(
            api_key=API_KEY, base_url=BASE_URL, clock=clock, transport=transport, sleep=clock.sleep
        )
        with client:
            with pytest.raises(RateLimitedError):
                client.poll_generation("task_abc")
            with pytest.raises(RequestNotSentError, match=r"longer than the 3\.0s"):
                client.poll_generation("task_abc", turn_within=3.0)
    else:
        aclient = AsyncRivyaClient(
            api_key=API_KEY, base_url=BASE_URL, clock=clock, transport=transport, sleep=clock.asleep
        )
        async with aclient:
            with pytest.raises(RateLimitedError):
                await aclient.apoll_generation("task_abc")
            with pytest.raises(RequestNotSentError, match=r"longer than the 3\.0s"):
                await aclient.apoll_generation("task_abc", turn_within=3.0)
    assert len(sent) == 1
    assert clock.sleeps == []


def test_the_look_before_deferring_never_waits_its_turn_past_its_window() -> None:
    # A create that met a 429 holds the worker's next requests: the look must defer, not hold the
    # worker slot for the Retry-After.
    clock = FakeClock()
    schedule = PollSchedule(expected=4.0)
    offered: list[float] = []

    def poll(within: float) -> GenerationTask:
        offered.append(within)
        raise RequestNotSentError("held back")

    look = look_before_deferring(
        poll,
        _wait(clock, schedule, since=clock.now, timeout=1800),
        _task("queued"),
        first=schedule.first(),
        sleep=clock.sleep,
    )
    assert look.polls == 1
    assert len(offered) == 1
    assert offered[0] <= schedule.worker_look_seconds() - schedule.first()
    assert look.next_poll > 0
