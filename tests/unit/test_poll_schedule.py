"""The adaptive poll schedule, the running estimates of generation time and catalogue hints."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from rivya_provider.client import GenerationTask, ModelInfo
from rivya_provider.client.catalog.live import spec_from_info
from rivya_provider.client.polling.estimates import ESTIMATES as PROCESS_ESTIMATES
from rivya_provider.client.polling.estimates import (
    DurationEstimates,
    expected_seconds,
    learn,
    observed_seconds,
)
from rivya_provider.client.polling.schedule import (
    MAX_INTERVAL,
    MIN_GAP,
    MIN_INTERVAL,
    UNKNOWN_FIRST_DELAY,
    PollSchedule,
)

pytestmark = pytest.mark.no_airflow

URL = "http://127.0.0.1:9"
T0 = datetime(2026, 5, 11, tzinfo=timezone.utc)


def _poll_times(schedule: PollSchedule, *, until: float) -> list[float]:
    """Seconds after submitting at which the schedule polls a generation still running."""
    times = [schedule.first()]
    while times[-1] < until:
        times.append(times[-1] + schedule.next_delay(elapsed=times[-1]))
    return times


def test_a_known_quick_model_is_polled_just_before_and_densely_around_its_expected_end() -> None:
    times = _poll_times(PollSchedule(expected=4.0), until=5.0)
    assert times[0] == pytest.approx(3.2)
    # Every poll around the expected end comes at most one second after the one before.
    assert all(b - a == pytest.approx(MIN_INTERVAL) for a, b in itertools.pairwise(times))


def test_a_look_before_a_quick_models_expected_end_is_followed_just_after_it() -> None:
    schedule = PollSchedule(expected=2.5)
    assert schedule.first() == pytest.approx(2.0)
    # Not a full second later (3.0 s) but just past the expected end...
    assert 2.0 + schedule.next_delay(elapsed=2.0) == pytest.approx(2.625)
    # ...never in a tight loop, and past the end at the interval again.
    assert schedule.next_delay(elapsed=2.4) == MIN_GAP
    assert schedule.next_delay(elapsed=2.6) == MIN_INTERVAL


def test_a_known_slow_model_is_first_polled_near_its_expected_end() -> None:
    schedule = PollSchedule(expected=40.0)
    assert schedule.first() == pytest.approx(30.0)  # 80 %, capped
    assert schedule.next_delay(elapsed=30.0) == pytest.approx(8.0)  # a fifth of 40 s


def test_long_waits_back_off_geometrically_to_the_cap() -> None:
    schedule = PollSchedule(expected=5.0)
    delays = [schedule.next_delay(elapsed=t) for t in (5.0, 20.0, 60.0, 150.0, 600.0, 3000.0)]
    assert delays == sorted(delays)
    assert delays[2] == pytest.approx(12.0)
    assert delays[-2:] == [MAX_INTERVAL, MAX_INTERVAL]
    # A finished generation is noticed within a fifth of its wait (or a second).
    times = _poll_times(schedule, until=1000.0)
    assert all(b - a <= max(MIN_INTERVAL, 0.2 * a) + 1e-9 for a, b in itertools.pairwise(times))
    # 1,000 s of waiting cost few polls (a fixed 5 s interval makes 200).
    assert len(times) < 60


def test_an_unknown_model_starts_as_rivya_advises_and_then_adapts() -> None:
    schedule = PollSchedule()
    assert schedule.first() == UNKNOWN_FIRST_DELAY
    assert schedule.next_delay(elapsed=2.5) == MIN_INTERVAL
    assert schedule.next_delay(elapsed=100.0) == pytest.approx(20.0)


def test_settings_the_user_gave_win() -> None:
    schedule = PollSchedule(expected=40.0, interval=5.0, first_delay=0.5)
    assert not schedule.adaptive
    assert schedule.first() == 0.5
    assert {schedule.next_delay(elapsed=t) for t in (1.0, 100.0, 5000.0)} == {5.0}
    # A fixed interval with the first delay left to the schedule.
    assert PollSchedule(expected=40.0, interval=5.0).first() == pytest.approx(30.0)


def test_the_estimate_is_a_weighted_running_mean_per_base_url_and_model() -> None:
    estimates = DurationEstimates(weight=0.5)
    assert estimates.get(base_url=URL, model="m") is None
    estimates.observe(base_url=URL, model="m", seconds=10.0)
    estimates.observe(base_url=URL, model="m", seconds=20.0)
    assert estimates.get(base_url=URL, model="m") == pytest.approx(15.0)
    assert estimates.get(base_url=URL, model="other") is None
    assert estimates.get(base_url="http://elsewhere", model="m") is None


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf"), 7200.0])
def test_nonsense_durations_are_not_learnt(seconds: float) -> None:
    estimates = DurationEstimates()
    estimates.observe(base_url=URL, model="m", seconds=seconds)
    assert estimates.get(base_url=URL, model="m") is None


def test_a_catalogue_hint_wins_over_the_estimate() -> None:
    PROCESS_ESTIMATES.observe(base_url=URL, model="m", seconds=9.0)
    assert expected_seconds(base_url=URL, model="m", hint=3.0) == 3.0
    assert expected_seconds(base_url=URL, model="m", hint=None) == 9.0
    assert expected_seconds(base_url=URL, model="m", hint=0.0) == 9.0
    assert expected_seconds(base_url=URL, model=None, hint=None) is None


def test_rivyas_timestamps_are_preferred_to_the_local_clock() -> None:
    created, updated = T0, T0 + timedelta(seconds=4)
    assert observed_seconds(created_at=created, updated_at=updated, local=5.2) == 4.0
    assert observed_seconds(created_at=None, updated_at=updated, local=5.2) == 5.2
    # A server clock that disagrees wildly with the local one is not believed.
    assert observed_seconds(created_at=created, updated_at=updated, local=1.0) == 1.0


def _task(status: str, **fields: object) -> GenerationTask:
    return GenerationTask.model_validate(
        {"id": "task_1", "status": status, "model": "flux-2-flex", **fields}
    )


def test_only_succeeded_generations_are_learnt() -> None:
    stamps = {"created_at": T0.isoformat(), "updated_at": (T0 + timedelta(seconds=6)).isoformat()}
    learn(_task("failed", **stamps), base_url=URL, submitted_at=None, now=0.0)
    assert PROCESS_ESTIMATES.get(base_url=URL, model="flux-2-flex") is None
    learn(_task("succeeded", **stamps), base_url=URL, submitted_at=None, now=0.0)
    assert PROCESS_ESTIMATES.get(base_url=URL, model="flux-2-flex") == pytest.approx(6.0)


def test_a_generation_picked_up_again_without_timestamps_teaches_nothing() -> None:
    learn(_task("succeeded"), base_url=URL, submitted_at=None, now=100.0)
    assert PROCESS_ESTIMATES.get(base_url=URL, model="flux-2-flex") is None
    learn(_task("succeeded"), base_url=URL, submitted_at=93.0, now=100.0)
    assert PROCESS_ESTIMATES.get(base_url=URL, model="flux-2-flex") == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [
        ("async_task", None),
        (None, None),
        ({"kind": "async_task", "expected_seconds": 12}, 12.0),
        ({"typicalSeconds": 7.5}, 7.5),
        ({"expected_seconds": "soon"}, None),
        ({"expected_seconds": True}, None),
        ({"expected_seconds": -3}, None),
    ],
)
def test_a_runtime_object_in_models_gives_the_expected_time(
    runtime: object, expected: float | None
) -> None:
    info = ModelInfo.model_validate({"id": "new-model", "runtime": runtime})
    assert info.expected_seconds == expected
    assert spec_from_info(info).expected_seconds == expected
