"""Retry budgets, jitter, pacing and waits that never give up on a paid generation early."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rivya_provider.client import (
    GenerationTask,
    GenerationTimeoutError,
    NotFoundError,
    RetryPolicy,
    RivyaClient,
    ServerError,
    ServiceUnavailableError,
)
from rivya_provider.client.flow.governor import MachineGovernor, ThrottleGovernor, shared_governor
from rivya_provider.client.flow.pacing import Pacer, shared_pacer
from rivya_provider.outputs import ResultCopyError, copy_results
from tests.clients import Api, FakeClock, make_api
from tests.unit.conftest import API_KEY, BASE_URL, TASK, Script, envelope, task


async def test_a_request_retries_until_its_time_budget_not_its_attempt_cap(
    flavour: str,
) -> None:
    script = Script(envelope(500, "internal_error"))
    policy = RetryPolicy(max_attempts=50, backoff_initial=1, backoff_max=4, time_budget=20)
    api = make_api(flavour, api_key=API_KEY, base_url=BASE_URL, handler=script, retry=policy)
    with pytest.raises(ServerError):
        await api("get_credits")
    await api.close()
    assert sum(api.sleeps) <= 20
    # Full-jitter backoff of at most 4 s: a 20 s budget takes more than the old 5 attempts.
    assert 6 <= len(script.requests) < 50


async def test_the_attempt_cap_still_bounds_a_generous_budget(flavour: str) -> None:
    script = Script(envelope(503, "public_api_disabled", **{"Retry-After": "0"}))
    policy = RetryPolicy(max_attempts=3, time_budget=3600)
    api = make_api(flavour, api_key=API_KEY, base_url=BASE_URL, handler=script, retry=policy)
    with pytest.raises(ServiceUnavailableError):
        await api("get_credits")
    await api.close()
    assert len(script.requests) == 3


def test_retry_after_is_never_shortened_and_gets_a_random_extra() -> None:
    policy = RetryPolicy(retry_after_cap=60, backoff_max=30)
    pauses = [policy.after_retry_after(2) for _ in range(200)]
    assert min(pauses) >= 2
    assert max(pauses) <= 4
    assert len({round(p, 3) for p in pauses}) > 100  # spread out, not one instant
    # Meeting the limit again and again spreads the clients further, up to backoff_max.
    third = [policy.after_retry_after(2, attempt=3) for _ in range(200)]
    assert min(third) >= 2
    assert max(third) <= 2 + 8
    assert max(third) > 4


def test_a_pacer_hands_out_slots_one_interval_apart() -> None:
    clock = FakeClock()
    pacer = Pacer(4, clock=clock)
    assert [pacer.reserve() for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]
    clock.now += 10  # idle: the next slot is free at once
    assert pacer.reserve() == 0.0
    with pytest.raises(ValueError, match="requests_per_second"):
        Pacer(0)


def test_clients_of_one_key_and_url_share_a_pacer() -> None:
    one = shared_pacer(base_url=BASE_URL, api_key=API_KEY, rate=2.0)
    assert one is shared_pacer(base_url=BASE_URL, api_key=API_KEY, rate=2.0)
    assert one is not shared_pacer(base_url=BASE_URL, api_key=API_KEY + "x", rate=2.0)
    assert shared_pacer(base_url=BASE_URL, api_key=API_KEY, rate=None) is None


def test_a_governor_holds_requests_after_a_429_then_recovers() -> None:
    governor = ThrottleGovernor()
    now = 100.0
    # Unthrottled: 11 requests in two seconds go out at once.
    for _ in range(11):
        assert governor.reserve(now=now) == 0.0
        now += 0.2
    governor.throttled(now=now, retry_after=2.0)
    # 5 requests per second were sent; now half of that, after Retry-After has passed.
    assert governor.rate == pytest.approx(2.5)
    assert governor.reserve(now=now) == pytest.approx(2.0)
    assert governor.reserve(now=now) == pytest.approx(2.4)
    # Answers during the hold change nothing; after it, the rate grows by INCREASE per second
    # (additive), however many answers come, until the governor stops limiting.
    governor.answered(now=now + 1.0)
    assert governor.rate == pytest.approx(2.5)
    for tenth in range(1, 11):
        governor.answered(now=now + 2.0 + tenth / 10)
    assert governor.rate == pytest.approx(2.5 + ThrottleGovernor.INCREASE)
    later = now + 3.0 + (ThrottleGovernor.FREE_RATE - 2.5) / ThrottleGovernor.INCREASE
    governor.answered(now=later - 1.0)
    assert governor.rate is not None
    governor.answered(now=later + 0.01)
    assert governor.rate is None
    assert governor.reserve(now=later + 10) == 0.0


def test_one_waits_429_only_holds_it_for_the_retry_after() -> None:
    governor = ThrottleGovernor()
    assert governor.reserve(now=100.0) == 0.0
    governor.throttled(now=100.0, retry_after=3.0)
    assert governor.rate is None
    assert governor.reserve(now=101.0) == pytest.approx(2.0)
    assert governor.reserve(now=104.0) == 0.0


def test_a_slowed_down_process_that_still_meets_429s_slows_down_further() -> None:
    # Slowed to 0.5 requests per second, a process sends fewer than FEW requests in the window;
    # its next 429 still halves the rate (it used to keep it: many such processes at their floor
    # met a 429 for every answer).
    governor = ThrottleGovernor()
    for tick in range(10):
        governor.reserve(now=100.0 + tick / 10)
    governor.throttled(now=101.0, retry_after=1.0)
    rate = governor.rate
    assert rate is not None
    governor.reserve(now=120.0)
    governor.throttled(now=120.0, retry_after=1.0)
    assert governor.rate == pytest.approx(max(ThrottleGovernor.MIN_RATE, rate / 2))


def test_a_governor_never_goes_below_its_floor() -> None:
    governor = ThrottleGovernor()
    for _ in range(5):
        governor.reserve(now=100.0)
    for _ in range(10):
        governor.throttled(now=100.0, retry_after=None)
    assert governor.rate == ThrottleGovernor.MIN_RATE
    assert shared_governor(base_url=BASE_URL, api_key=API_KEY) is shared_governor(
        base_url=BASE_URL, api_key=API_KEY
    )


def test_429s_to_requests_sent_before_a_slow_down_do_not_slow_it_down_again() -> None:
    # Twenty requests out at once meet twenty 429s: one slow-down, not twenty halvings.
    governor = ThrottleGovernor()
    for tick in range(10):
        governor.reserve(now=100.0 + tick / 10)
    governor.throttled(now=101.0, retry_after=2.0)
    rate = governor.rate
    assert rate is not None
    governor.throttled(now=101.5, retry_after=2.0)  # sent before the hold began
    assert governor.rate == rate
    governor.throttled(now=104.0, retry_after=2.0)  # sent after it: too fast still
    assert governor.rate == pytest.approx(max(ThrottleGovernor.MIN_RATE, rate / 2))


def test_the_processes_of_a_machine_share_one_governor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two worker tasks, each a process sending a request or two: the first 429 either meets holds
    # both for its Retry-After, then paces the machine at one request per Retry-After.
    path = tmp_path / "throttle-shared"
    one, other = MachineGovernor(path), MachineGovernor(path)
    assert one.reserve(now=0.0) == 0.0
    assert not path.exists() or path.stat().st_size == 0  # nothing limited: nothing written
    one.throttled(now=0.0, retry_after=2.0)
    first = other.reserve(now=0.0)
    second = other.reserve(now=0.0)
    assert 1.0 < first <= 2.0
    assert second - first == pytest.approx(2.0, abs=0.2)  # 0.5 requests per second
    assert other.rate == pytest.approx(0.5)
    assert API_KEY not in path.name
    assert API_KEY.encode() not in path.read_bytes()
    # A later process sees the pace the machine is at, and its answers raise it for everyone.
    later = MachineGovernor(path)
    clock = [time.time() + 3.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    later.answered(now=0.0)
    clock[0] += 10.0
    later.answered(now=0.0)
    one.reserve(now=0.0)
    # 11 s of growth: 1 s after the hold ended, then 10 s more.
    assert one.rate == pytest.approx(0.5 + 11 * ThrottleGovernor.INCREASE, abs=0.05)


@pytest.mark.parametrize(
    "saved",
    [
        pytest.param((10 * 86_400, 0.5, 0.0), id="a-clock-that-jumped"),
        pytest.param((float("nan"), 0.5, 0.0), id="nan"),
        pytest.param((0.0, -3.0, 0.0), id="negative-rate"),
    ],
)
def test_a_machine_governor_ignores_a_file_it_cannot_have_written(
    tmp_path: Path, saved: tuple[float, float, float]
) -> None:
    path = tmp_path / "throttle-odd"
    slot, rate, raised = saved
    path.write_bytes(struct.pack("3d", time.time() + slot, rate, raised))
    assert MachineGovernor(path).reserve(now=0.0) < 1.0


def test_a_machine_governor_reads_a_rate_with_no_slot_yet(tmp_path: Path) -> None:
    path = tmp_path / "throttle-no-slot"
    path.write_bytes(struct.pack("3d", float("-inf"), 0.5, 0.0))
    governor = MachineGovernor(path)
    first, second = governor.reserve(now=0.0), governor.reserve(now=0.0)
    assert first == 0.0
    assert second == pytest.approx(2.0, abs=0.2)  # paced at the file's 0.5 requests per second


def test_a_client_with_its_own_clock_keeps_its_governor_in_its_process() -> None:
    shared = shared_governor(base_url=BASE_URL, api_key=API_KEY)
    own = shared_governor(base_url=BASE_URL, api_key=API_KEY, machine_wide=False)
    assert isinstance(shared, MachineGovernor)  # the tests' RIVYA_CACHE_DIR is a fresh folder
    assert type(own) is ThrottleGovernor
    assert shared_governor(base_url=BASE_URL, api_key=API_KEY) is shared


async def test_triggers_sharing_a_client_slow_down_together_after_a_429() -> None:
    from rivya_provider.client import AsyncRivyaClient

    limited = httpx.Response(
        429, headers={"Retry-After": "3"}, json={"error": {"code": "rate_limited"}}
    )
    ok = httpx.Response(200, json={"current_credits": 1})
    script = Script(ok, ok, ok, ok, limited, ok, ok)
    clock = FakeClock()
    transport = httpx.MockTransport(script)
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": BASE_URL,
        "transport": transport,
        "sleep": clock.asleep,
        "clock": clock,
    }
    client, other = AsyncRivyaClient(**options), AsyncRivyaClient(**options)
    async with client, other:
        for _ in range(4):
            await client.aget_credits()
        await client.aget_credits()  # 429, then its own retry
        await other.aget_credits()
    assert len(script.requests) == 7
    # The retry waited for Retry-After (and found its slot free by then); the next request, from
    # the other client, waited for its slot at the slowed-down rate instead of going at once.
    assert len(clock.sleeps) == 2, clock.sleeps
    assert clock.sleeps[0] >= 3
    assert clock.sleeps[1] > 0


async def test_a_paced_client_spaces_its_api_requests(flavour: str) -> None:
    script = Script(httpx.Response(200, json={"current_credits": 1}))
    clock = FakeClock()
    kwargs: dict[str, Any] = {
        "api_key": f"{API_KEY}-{flavour}",
        "base_url": BASE_URL,
        "requests_per_second": 5.0,
    }
    transport = httpx.MockTransport(script)
    if flavour == "async":
        from rivya_provider.client import AsyncRivyaClient

        async with AsyncRivyaClient(transport=transport, sleep=clock.asleep, **kwargs) as client:
            for _ in range(3):
                await client.aget_credits()
    else:
        with RivyaClient(transport=transport, sleep=clock.sleep, **kwargs) as client:
            for _ in range(3):
                client.get_credits()
    # The pauses are not slept for real, so each slot lies another 0.2 s ahead.
    assert clock.sleeps == pytest.approx([0.2, 0.4], abs=0.05)
    assert len(script.requests) == 3


async def test_a_wait_polls_through_transient_failures(flavour: str) -> None:
    script = Script(
        envelope(500, "internal_error"),
        httpx.ConnectError("refused"),
        task(status="processing"),
        task(status="succeeded", result={"primary_url": "https://cdn.test/a.png"}),
    )
    once = RetryPolicy(max_attempts=1)  # each failed request fails its poll at once
    api = make_api(flavour, api_key=API_KEY, base_url=BASE_URL, handler=script, retry=once)
    done = await api("wait_for_generation", "task_abc", timeout=600, poll_interval=5, first_delay=0)
    await api.close()
    assert done.primary_url == "https://cdn.test/a.png"
    assert len(script.requests) == 4
    # Backing off from the poll interval after each failure, never hammering the server.
    assert all(pause >= 2.5 for pause in api.sleeps[1:])


async def test_a_wait_still_fails_at_once_on_a_permanent_error(api: Api, script: Script) -> None:
    script.answers = [envelope(404, "not_found")]
    with pytest.raises(NotFoundError):
        await api("wait_for_generation", "task_abc", timeout=600, first_delay=0)
    assert len(script.requests) == 1


async def test_transient_failures_until_the_deadline_are_a_timeout(
    api: Api, script: Script
) -> None:
    script.answers = [envelope(503, "public_api_disabled")]
    with pytest.raises(GenerationTimeoutError) as caught:
        await api("wait_for_generation", "task_abc", timeout=300, poll_interval=5, first_delay=0)
    assert "last poll failed" in caught.value.last_status
    assert sum(api.sleeps) <= 300 + 120  # the deadline, plus at most one request's retry budget


def test_a_failed_copy_says_the_generation_is_paid_and_reused(tmp_path: Path) -> None:
    script = Script(envelope(404, "not_found"))
    succeeded = GenerationTask.model_validate(
        {
            **TASK,
            "status": "succeeded",
            "final_credits": 14,
            "result": {"primary_url": "https://cdn.test/gone.png"},
        }
    )
    with (
        RivyaClient(
            api_key=API_KEY, base_url=BASE_URL, transport=httpx.MockTransport(script)
        ) as client,
        pytest.raises(ResultCopyError) as caught,
    ):
        copy_results(client, succeeded, str(tmp_path), max_bytes=1024)
    message = str(caught.value)
    assert "succeeded and is paid (14 credits)" in message
    assert "reuses the generation at no new charge" in message
    assert isinstance(caught.value.__cause__, NotFoundError)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind
