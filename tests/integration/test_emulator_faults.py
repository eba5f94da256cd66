"""Fault injection over real HTTP: 429, 503, 500, latency, dropped and in-flight creates, slow
and failing tasks."""

from __future__ import annotations

import threading
import time

import httpx
import pydantic
import pytest

from rivya_provider.emulator import RunningEmulator
from tests.emulator_fixtures import EmulatorFactory
from tests.integration.emulator_support import (
    FLEX,
    KONTEXT,
    SteppedClock,
    bearer,
    error_of,
    wait_for_status,
)
from tests.media import image_bytes

CREATE = "/api/v1/generations"


def test_the_token_bucket_limits_with_retry_after(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock)
    emulator.set_faults(rate_limit_per_second=0.5, rate_limit_burst=2)
    with httpx.Client(base_url=emulator.base_url) as http:
        assert [http.get("/api/v1/models").status_code for _ in range(2)] == [200, 200]
        limited = http.get("/api/v1/models")
        assert error_of(limited, 429)["code"] == "rate_limited"
        # Empty bucket at 0.5 token/s: the next token is 2 s away.
        assert limited.headers["Retry-After"] == "2"
        clock.advance(1)
        assert http.get("/api/v1/models").headers["Retry-After"] == "1"
        clock.advance(1)
        assert http.get("/api/v1/models").status_code == 200
        emulator.set_faults(rate_limit_per_second=0)
        assert [http.get("/api/v1/models").status_code for _ in range(3)] == [200, 200, 200]
    assert emulator.counters()["responses"] == {"200": 6, "429": 2}


def test_deterministic_rate_limits_use_the_configured_retry_after(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    emulator.set_faults(rate_limited_next=2, retry_after_seconds=7)
    first, second, third = (http.get("/api/v1/credits") for _ in range(3))
    for limited in (first, second):
        assert error_of(limited, 429)["code"] == "rate_limited"
        assert limited.headers["Retry-After"] == "7"
    assert third.json() == {"current_credits": 1000}
    assert emulator.backend.faults.current.rate_limited_next == 0


def test_a_rate_limit_comes_before_authentication(emulator: RunningEmulator) -> None:
    emulator.set_faults(rate_limited_next=1)
    response = httpx.get(f"{emulator.base_url}/api/v1/credits")
    assert error_of(response, 429)["code"] == "rate_limited"


def test_a_disabled_api_answers_503_with_retry_after(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    emulator.set_faults(api_disabled=True, retry_after_seconds=30)
    for path in ("/api/v1/models", "/api/v1/credits"):
        response = http.get(path)
        assert error_of(response, 503)["code"] == "public_api_disabled"
        assert response.headers["Retry-After"] == "30"
    # The spec and the admin routes stay reachable, to switch the API back on.
    assert http.get("/api/v1/openapi.json").status_code == 200
    assert http.patch("/_emulator/faults", json={"api_disabled": False}).status_code == 200
    assert http.get("/api/v1/credits").status_code == 200


def test_injected_server_errors_use_an_undocumented_code(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    emulator.set_faults(server_errors_next=2)
    for response in (http.get("/api/v1/credits"), http.post(CREATE, json=FLEX)):
        error = error_of(response, 500)
        assert error["code"] == "internal_error"
    assert http.get("/api/v1/credits").json() == {"current_credits": 1000}
    assert emulator.counters()["tasks_created"] == 0


def test_random_server_errors_repeat_with_the_same_seed(
    emulator_factory: EmulatorFactory,
) -> None:
    runs = []
    for _ in range(2):
        emulator = emulator_factory(seed=7)
        emulator.set_faults(server_error_rate=0.5)
        with httpx.Client(base_url=emulator.base_url) as http:
            runs.append([http.get("/api/v1/models").status_code for _ in range(16)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


def test_latency_delays_answers_past_a_client_timeout(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    emulator.set_faults(latency_seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        http.get("/api/v1/models", timeout=httpx.Timeout(5, read=0.05))
    emulator.set_faults(latency_seconds=0)
    assert http.get("/api/v1/models", timeout=httpx.Timeout(5, read=2)).status_code == 200


def test_a_dropped_create_is_stored_once_and_replayed_on_retry(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    emulator.set_faults(drop_next_creates=1)
    key = {"Idempotency-Key": "lost-answer"}
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(CREATE, json=FLEX, headers=key)
    counters = emulator.counters()
    assert (counters["dropped_responses"], counters["tasks_created"]) == (1, 1)
    assert emulator.state.balance("acct_default") == 986
    retry = http.post(CREATE, json=FLEX, headers=key)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert http.get(f"{CREATE}/{retry.json()['id']}").status_code == 200
    assert http.get("/api/v1/credits").json() == {"current_credits": 986}
    counters = emulator.counters()
    assert (counters["tasks_created"], counters["idempotent_replays"]) == (1, 1)
    assert counters["credits_reserved"] == 14


@pytest.mark.parametrize("profile", ["default", "in-flight-retry-after"])
def test_a_second_request_while_the_first_is_in_flight_is_a_conflict(
    emulator: RunningEmulator, http: httpx.Client, profile: str
) -> None:
    emulator.set_profile(profile)
    emulator.set_faults(create_delay_seconds=1.0)
    key = {"Idempotency-Key": "racing"}
    answers: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{emulator.base_url}{CREATE}",
                json=FLEX,
                headers={**key, **bearer(emulator.api_key)},
            )
        )
    )
    first.start()
    try:
        # The key is in flight from the moment the task exists until the delayed answer.
        for _ in range(500):
            if emulator.counters()["tasks_created"]:
                break
            time.sleep(0.002)
        racing = http.post(CREATE, json=FLEX, headers=key)
    finally:
        first.join(timeout=10)
    assert error_of(racing, 409)["code"] == "idempotency_conflict"
    assert "in progress" in error_of(racing, 409)["message"]
    # The docs promise no Retry-After here: only the profile standing for that answer sends it.
    assert racing.headers.get("Retry-After") == (
        "1" if profile == "in-flight-retry-after" else None
    )
    assert answers[0].status_code == 201
    emulator.set_faults(create_delay_seconds=0)
    replay = http.post(CREATE, json=FLEX, headers=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == answers[0].json()["id"]
    assert emulator.counters()["tasks_created"] == 1


def test_failure_rate_fails_tasks_and_refunds(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    emulator.set_faults(task_failure_rate=1.0)
    task_id = http.post(CREATE, json=KONTEXT).json()["id"]
    assert wait_for_status(http, task_id)["status"] == "failed"
    assert http.get("/api/v1/credits").json() == {"current_credits": 1000}


def test_slow_tasks_process_longer(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock, queued_seconds=1, processing_seconds=1)
    emulator.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=60)
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        task_id = http.post(CREATE, json=KONTEXT).json()["id"]
        clock.advance(61.9)
        assert http.get(f"{CREATE}/{task_id}").json()["status"] == "processing"
        clock.advance(0.1)
        assert http.get(f"{CREATE}/{task_id}").json()["status"] == "succeeded"


def test_api_faults_and_the_rate_limit_leave_downloads_alone(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    task_id = http.post(CREATE, json=KONTEXT).json()["id"]
    url = wait_for_status(http, task_id)["result"]["primary_url"]
    emulator.set_faults(
        server_errors_next=5,
        rate_limited_next=5,
        rate_limit_per_second=0.001,
        rate_limit_burst=1,
        latency_seconds=5,
        api_disabled=True,
    )
    downloads = [httpx.get(url, timeout=httpx.Timeout(5, read=2)) for _ in range(3)]
    assert [d.status_code for d in downloads] == [200, 200, 200]
    assert downloads[0].headers["Content-Type"] == "image/jpeg"
    faults = emulator.backend.faults.current
    assert (faults.server_errors_next, faults.rate_limited_next) == (5, 5)
    counters = emulator.counters()
    assert counters["downloads"] == {"GET /cdn/results/{task_id}/{filename}": 3}
    assert counters["download_responses"] == {"200": 3}
    assert counters["requests"] == {
        "POST /api/v1/generations": 1,
        "GET /api/v1/generations/{taskId}": counters["requests"][
            "GET /api/v1/generations/{taskId}"
        ],
    }
    assert sum(counters["responses"].values()) == sum(counters["requests"].values())


def test_download_faults_fail_and_delay_downloads_only(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    stored = http.post(
        "/api/v1/files",
        files={"file": ("a.png", image_bytes(), "image/png")},
        data={"kind": "image"},
    ).json()
    emulator.set_faults(download_errors_next=2)
    first, second, third = (httpx.get(stored["url"]) for _ in range(3))
    for failed in (first, second):
        assert error_of(failed, 503)["code"] == "download_failed"
    assert third.content == image_bytes()
    assert http.get("/api/v1/credits").status_code == 200
    emulator.set_faults(download_latency_seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(stored["url"], timeout=httpx.Timeout(5, read=0.05))
    assert http.get("/api/v1/credits", timeout=httpx.Timeout(5, read=0.4)).status_code == 200
    counters = emulator.counters()
    assert counters["downloads_failed"] == 2
    assert counters["downloads"] == {"GET /cdn/files/{file_id}/{name}": 4}
    assert counters["download_responses"]["503"] == 2
    assert counters["requests"] == {"POST /api/v1/files": 1, "GET /api/v1/credits": 2}
    assert "503" not in counters["responses"]


def test_random_download_errors_repeat_with_the_same_seed(
    emulator_factory: EmulatorFactory,
) -> None:
    runs = []
    for _ in range(2):
        emulator = emulator_factory(seed=11)
        emulator.set_faults(download_error_rate=0.5)
        runs.append(
            [
                httpx.get(f"{emulator.base_url}/cdn/results/task_x/0.png").status_code
                for _ in range(16)
            ]
        )
    assert runs[0] == runs[1]
    assert set(runs[0]) == {404, 503}


def test_cancel_next_tasks_end_canceled_without_a_charge(
    emulator_factory: EmulatorFactory,
) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock)
    emulator.set_faults(cancel_next_tasks=1)
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        canceled = http.post(CREATE, json=FLEX).json()
        healthy = http.post(CREATE, json=FLEX).json()
        assert http.get("/api/v1/credits").json() == {"current_credits": 1000 - 28}
        clock.advance(1)
        task = http.get(f"{CREATE}/{canceled['id']}").json()
        assert task["status"] == "canceled"
        assert (task["result"], task["error"], task["final_credits"]) == (None, None, 0)
        assert http.get(f"{CREATE}/{healthy['id']}").json()["status"] == "succeeded"
        assert http.get("/api/v1/credits").json() == {"current_credits": 986}
        gone = httpx.get(f"{emulator.base_url}/cdn/results/{canceled['id']}/0.png")
        assert error_of(gone, 404)["code"] == "not_found"
    counters = emulator.counters()
    assert (counters["credits_refunded"], counters["credits_charged"]) == (14, 14)
    assert emulator.backend.snapshot()["tasks"]["by_status"] == {"canceled": 1, "succeeded": 1}


def test_bad_faults_are_refused(emulator: RunningEmulator, http: httpx.Client) -> None:
    with pytest.raises(pydantic.ValidationError):
        emulator.set_faults(server_error_rate=2)
    with pytest.raises(pydantic.ValidationError):
        emulator.set_faults(no_such_fault=1)
    response = http.patch("/_emulator/faults", json={"latency_seconds": -1})
    error = error_of(response, 400)
    assert error["code"] == "validation_failed"
    assert "latency_seconds" in error["message"]
    assert emulator.backend.faults.current.latency_seconds == 0
