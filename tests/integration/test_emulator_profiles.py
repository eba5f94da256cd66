"""Profiles over real HTTP: every answer the docs leave open, as each profile gives it."""

from __future__ import annotations

from typing import Any

import httpx
import pydantic
import pytest

from rivya_provider.emulator import PROFILES, Profile, RunningEmulator
from tests.emulator_fixtures import EmulatorFactory
from tests.integration.emulator_support import (
    FLEX,
    KONTEXT,
    SteppedClock,
    bearer,
    error_of,
    wait_for_status,
)
from tests.integration.test_emulator_files import MP4
from tests.media import image_bytes

CREATE = "/api/v1/generations"
SHORT_TASK = {"id", "status", "model", "reserved_credits", "result", "error"}
FULL_TASK = SHORT_TASK | {"final_credits", "created_at", "updated_at"}
SNAKE_FILE = {"id", "object", "url", "kind", "mime_type", "size_bytes", "name", "model"}
CAMEL_FILE = {"fileId", "object", "url", "kind", "mimeType", "sizeBytes", "name", "model"}


def _client(emulator: RunningEmulator) -> httpx.Client:
    return httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key))


def _upload(http: httpx.Client, content: bytes, kind: str = "image") -> httpx.Response:
    return http.post(
        "/api/v1/files",
        files={"file": ("ref.bin", content, "application/octet-stream")},
        data={"kind": kind},
    )


def _repeat(http: httpx.Client, key: str) -> tuple[httpx.Response, httpx.Response]:
    first = http.post(CREATE, json=FLEX, headers={"Idempotency-Key": key})
    return first, http.post(CREATE, json=FLEX, headers={"Idempotency-Key": key})


def test_the_named_profiles_cover_every_open_point() -> None:
    assert set(PROFILES) >= {
        "default",
        "create-200",
        "short-create",
        "no-replay-header",
        "repeat-conflict",
        "in-flight-retry-after",
        "credits-403",
        "unknown-status",
        "camel-files",
        "minimal-files",
        "object-options",
        "upload-201",
        "docs-minimal",
    }
    assert PROFILES["default"] == Profile()
    # Every named profile but the default changes at least one field.
    assert all(p != Profile() for name, p in PROFILES.items() if name != "default")
    with pytest.raises(pydantic.ValidationError):
        Profile.model_validate({"create_status": 202})
    with pytest.raises(pydantic.ValidationError):
        Profile.model_validate({"no_such_field": True})


def test_default_profile_is_the_projects_decision(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    first, replay = _repeat(http, "default-1")
    assert (first.status_code, replay.status_code) == (201, 201)
    assert set(first.json()) == FULL_TASK
    assert "Idempotent-Replayed" not in first.headers
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    stored = _upload(http, image_bytes())
    assert stored.status_code == 200
    assert set(stored.json()) == SNAKE_FILE | {"created_at"}
    options = httpx.get(f"{emulator.base_url}/api/v1/models").json()["data"][0]["params"][0]
    assert options["options"][0] == "1:1"
    emulator.set_credits(0)
    assert error_of(http.post(CREATE, json=FLEX), 402)["code"] == "insufficient_credits"


def test_create_200_answers_create_and_replay_with_200(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(profile=PROFILES["create-200"])
    with _client(emulator) as http:
        first, replay = _repeat(http, "k")
    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert emulator.counters()["responses"] == {"200": 2}


def test_short_create_has_no_timestamps_but_reads_stay_full(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(profile={"create_shape": "short"})
    with _client(emulator) as http:
        created, replay = _repeat(http, "k")
        read = http.get(f"{CREATE}/{created.json()['id']}").json()
    assert created.status_code == 201
    assert set(created.json()) == set(replay.json()) == SHORT_TASK
    assert created.json()["reserved_credits"] == 14
    assert set(read) == FULL_TASK


def test_no_replay_header_replays_the_same_task_silently(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(profile="no-replay-header")
    with _client(emulator) as http:
        first, replay = _repeat(http, "k")
    assert replay.status_code == 201
    assert "Idempotent-Replayed" not in replay.headers
    assert replay.json()["id"] == first.json()["id"]
    counters = emulator.counters()
    assert (counters["tasks_created"], counters["idempotent_replays"]) == (1, 1)


def test_repeat_conflict_refuses_an_answered_key_without_retry_after(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(profile="repeat-conflict")
    with _client(emulator) as http:
        first, repeat = _repeat(http, "k")
        other_key = http.post(CREATE, json=FLEX, headers={"Idempotency-Key": "k2"})
        balance = http.get("/api/v1/credits").json()["current_credits"]
    assert first.status_code == 201
    assert error_of(repeat, 409)["code"] == "idempotency_conflict"
    assert "Retry-After" not in repeat.headers
    assert other_key.status_code == 201
    assert balance == 1000 - 28
    counters = emulator.counters()
    assert (counters["tasks_created"], counters["idempotent_replays"]) == (2, 0)


def test_credits_403_answers_insufficient_credits_with_403(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory(profile="credits-403", credits=3)
    with _client(emulator) as http:
        refused = http.post(CREATE, json=KONTEXT)
    error = error_of(refused, 403)
    assert error["code"] == "insufficient_credits"
    assert "needs 4 credits" in error["message"]
    assert emulator.counters()["tasks_created"] == 0


def test_unknown_status_replaces_processing_only(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(
        profile="unknown-status", clock=clock, queued_seconds=1, processing_seconds=1
    )
    with _client(emulator) as http:
        task_id = http.post(CREATE, json=KONTEXT).json()["id"]
        seen = []
        for _ in range(3):
            seen.append(http.get(f"{CREATE}/{task_id}").json()["status"])
            clock.advance(1)
    assert seen == ["queued", "rendering", "succeeded"]
    assert emulator.backend.snapshot()["tasks"]["by_status"] == {"succeeded": 1}


def test_other_unknown_statuses_can_be_chosen(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(profile={"unknown_status": "in_progress"}, processing_seconds=60)
    with _client(emulator) as http:
        task_id = http.post(CREATE, json=KONTEXT).json()["id"]
        task = wait_for_status(http, task_id, until=frozenset({"in_progress"}))
    assert task["result"] is None


@pytest.mark.parametrize(
    ("profile", "status", "fields", "token"),
    [
        ("camel-files", 200, CAMEL_FILE | {"createdAt"}, "durationToken"),
        ("minimal-files", 200, {"file_id", "url", "kind"}, "durationToken"),
        ("upload-201", 201, SNAKE_FILE | {"created_at"}, "duration_token"),
    ],
)
def test_file_profiles_shape_uploads_and_reads(
    emulator_factory: EmulatorFactory,
    profile: str,
    status: int,
    fields: set[str],
    token: str,
) -> None:
    emulator = emulator_factory(profile=profile)
    with _client(emulator) as http:
        image = _upload(http, image_bytes())
        video = _upload(http, MP4, kind="video")
        file_id = image.json().get("id") or image.json().get("fileId") or image.json()["file_id"]
        read = http.get(f"/api/v1/files/{file_id}")
    assert (image.status_code, video.status_code) == (status, status)
    assert set(image.json()) == fields
    assert set(video.json()) == fields | {token}
    assert video.json()[token].startswith("dur_")
    assert read.json() == image.json()
    assert httpx.get(image.json()["url"]).content == image_bytes()


def test_object_options_list_value_and_label(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(profile="object-options")
    body = httpx.get(f"{emulator.base_url}/api/v1/models").json()
    flex = next(m for m in body["data"] if m["id"] == "flux-2-flex")
    resolution = next(p for p in flex["params"] if p["key"] == "resolution")
    assert resolution["options"] == [{"value": "1K", "label": "1K"}, {"value": "2K", "label": "2K"}]
    # Validation still takes the plain value.
    with _client(emulator) as http:
        created = http.post(CREATE, json={**FLEX, "params": {"resolution": "2K"}})
    assert created.status_code == 201


def test_docs_minimal_gives_every_alternative_at_once(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(profile="docs-minimal", clock=clock, credits=20)
    with _client(emulator) as http:
        first, repeat = _repeat(http, "k")
        clock.advance(0.05)
        processing = http.get(f"{CREATE}/{first.json()['id']}").json()
        poor = http.post(CREATE, json=FLEX)
        stored = _upload(http, image_bytes())
    models = httpx.get(f"{emulator.base_url}/api/v1/models").json()["data"]
    assert first.status_code == 200
    assert set(first.json()) == SHORT_TASK
    assert error_of(repeat, 409)["code"] == "idempotency_conflict"
    assert "Retry-After" not in repeat.headers
    assert processing["status"] == "rendering"
    assert error_of(poor, 403)["code"] == "insufficient_credits"
    assert stored.status_code == 200
    assert set(stored.json()) == {"file_id", "url", "kind"}
    assert isinstance(models[0]["params"][0]["options"][0], dict)


def test_the_profile_is_set_at_run_time_in_process_and_over_http(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    assert emulator.set_profile("short-create", create_status=200) == Profile(
        create_shape="short", create_status=200
    )
    created = http.post(CREATE, json=FLEX)
    assert (created.status_code, set(created.json())) == (200, SHORT_TASK)
    changed = http.patch("/_emulator/profile", json={"replay_header": False})
    assert changed.status_code == 200
    assert changed.json() == {
        **Profile().model_dump(),
        "create_status": 200,
        "create_shape": "short",
        "replay_header": False,
    }
    named = http.patch("/_emulator/profile", json={"name": "credits-403", "upload_status": 201})
    assert named.json() == {**PROFILES["credits-403"].model_dump(), "upload_status": 201}
    state = http.get("/_emulator/state").json()
    assert state["profile"] == named.json()
    assert emulator.profile == PROFILES["credits-403"].changed(upload_status=201)
    for bad, field in (
        ({"create_status": 204}, "create_status"),
        ({"bogus": 1}, "bogus"),
        ({"name": "nope"}, "nope"),
    ):
        error = error_of(http.patch("/_emulator/profile", json=bad), 400)
        assert error["code"] == "validation_failed"
        assert field in error["message"]
    assert http.get("/_emulator/state").json()["profile"] == named.json()
    emulator.reset()
    assert emulator.profile == Profile()


def test_reset_returns_to_the_start_profile(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(profile="camel-files")
    emulator.set_profile("default")
    with httpx.Client(base_url=emulator.base_url) as admin:
        state: dict[str, Any] = admin.post("/_emulator/reset").json()
    assert state["profile"] == PROFILES["camel-files"].model_dump()
    with pytest.raises(pydantic.ValidationError):
        emulator_factory(profile="no-such-profile")
