"""The emulator's public API over real HTTP: catalogue, auth, generations, credits, idempotency."""

from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from rivya_provider.emulator import RunningEmulator, run_emulator
from tests.emulator_fixtures import EmulatorFactory
from tests.integration.emulator_support import (
    FLEX,
    KONTEXT,
    SteppedClock,
    bearer,
    error_of,
    wait_for_status,
)

DOCUMENTED_FIELDS = {
    "id",
    "display_name",
    "category",
    "runtime",
    "base_credits",
    "billing_type",
    "supported_modes",
    "max_prompt_length",
    "reference_media",
    "params",
    "api_status",
    "api_input_status",
    "supported_api_inputs",
    "requires_files_api",
    "requires_upload_for_modes",
    "url_input_supported",
    "file_kinds",
    "chat_capabilities",
    "notices",
}
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CREATE = "/api/v1/generations"


def balance(client: httpx.Client) -> int:
    value: int = client.get("/api/v1/credits").json()["current_credits"]
    return value


# -- server lifetime --------------------------------------------------------------------------


def test_run_emulator_serves_on_loopback_only_while_the_block_runs() -> None:
    with run_emulator(credits=5, api_key="rvya_sk_fixed_for_this_test") as running:
        assert running.base_url.startswith("http://127.0.0.1:")
        credits = httpx.get(
            f"{running.base_url}/api/v1/credits", headers=bearer("rvya_sk_fixed_for_this_test")
        )
        assert credits.json() == {"current_credits": 5}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.base_url}/api/v1/models", timeout=2)


def test_a_client_given_the_address_of_a_handed_in_socket_early_is_answered_once_it_runs() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Asked before the emulator exists: the request waits in the socket's backlog.
        early = pool.submit(httpx.get, f"{base_url}/api/v1/credits", headers=bearer("rvya_sk_e"))
        time.sleep(0.2)
        assert not early.done()
        with run_emulator(sock=sock, credits=7, api_key="rvya_sk_e") as running:
            assert running.base_url == base_url
            assert early.result(timeout=10).json() == {"current_credits": 7}
    assert sock.fileno() == -1  # closed with the block


# -- catalogue and credits --------------------------------------------------------------------


def test_models_are_public_and_list_the_catalogue(emulator: RunningEmulator) -> None:
    response = httpx.get(f"{emulator.base_url}/api/v1/models")
    assert response.status_code == 200
    assert response.headers["X-Request-Id"].startswith("req_")
    body = response.json()
    assert body["object"] == "list"
    by_id = {model["id"]: model for model in body["data"]}
    assert set(by_id) == {"flux-2-flex", "flux-kontext-pro", "flux-kontext-max"}
    flex = by_id["flux-2-flex"]
    assert set(flex) == DOCUMENTED_FIELDS
    assert {k: v for k, v in flex.items() if k not in ("params", "reference_media")} == {
        "id": "flux-2-flex",
        "display_name": "Flux 2 Flex",
        "category": "image",
        "runtime": "async_task",
        "base_credits": 14,
        "billing_type": "FIXED",
        "supported_modes": ["text-to-image", "image-to-image"],
        "max_prompt_length": 5000,
        "api_status": "available",
        "api_input_status": "partial_requires_files",
        "supported_api_inputs": ["text", "file"],
        "requires_files_api": False,
        "requires_upload_for_modes": ["image-to-image"],
        "url_input_supported": False,
        "file_kinds": ["image"],
        "chat_capabilities": None,
        "notices": [],
    }
    assert flex["reference_media"] == {
        "max_files": 8,
        "kinds": ["image"],
        "limits": [
            {
                "kind": "image",
                "max_bytes": 10 * 1024 * 1024,
                "mime_types": ["image/jpeg", "image/png", "image/webp"],
            }
        ],
    }
    assert flex["params"] == [
        {
            "key": "aspectRatio",
            "type": "select",
            "required": False,
            "default": "1:1",
            "options": ["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"],
        },
        {
            "key": "resolution",
            "type": "select",
            "required": False,
            "default": "1K",
            "options": ["1K", "2K"],
        },
    ]


@pytest.mark.parametrize(
    ("model_id", "credits"), [("flux-kontext-pro", 4), ("flux-kontext-max", 8)]
)
def test_kontext_models_list_their_documented_facts(
    reused_emulator: RunningEmulator, model_id: str, credits: int
) -> None:
    body = httpx.get(f"{reused_emulator.base_url}/api/v1/models").json()
    model = next(m for m in body["data"] if m["id"] == model_id)
    assert set(model) == DOCUMENTED_FIELDS
    assert (model["base_credits"], model["max_prompt_length"]) == (credits, None)
    assert model["supported_modes"] == ["text-to-image", "image-editing"]
    assert model["requires_upload_for_modes"] == ["image-editing"]
    assert model["reference_media"]["max_files"] == 1
    params = {p["key"]: p for p in model["params"]}
    assert list(params) == [
        "aspectRatio",
        "outputFormat",
        "enableTranslation",
        "promptUpsampling",
        "safetyTolerance",
        "watermark",
    ]
    assert params["aspectRatio"]["options"] == ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16"]
    assert params["aspectRatio"]["default"] == "16:9"
    assert params["enableTranslation"] == {
        "key": "enableTranslation",
        "type": "select",
        "required": False,
        "default": "true",
        "options": ["true", "false"],
    }
    assert params["safetyTolerance"] == {
        "key": "safetyTolerance",
        "type": "number",
        "required": False,
        "default": 2,
        "min": 0,
        "max": 6,
    }
    assert params["watermark"] == {
        "key": "watermark",
        "type": "text",
        "required": False,
        "default": None,
    }


def test_credits_show_the_integer_balance(http: httpx.Client) -> None:
    response = http.get("/api/v1/credits")
    assert response.status_code == 200
    assert response.json() == {"current_credits": 1000}


def test_every_response_has_its_own_request_id(http: httpx.Client) -> None:
    ids = {http.get("/api/v1/credits").headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3


# -- authentication and scopes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, {"Authorization": "xyz"}],
)
def test_a_missing_or_ill_formed_key_is_api_key_missing(
    reused_emulator: RunningEmulator, headers: dict[str, str]
) -> None:
    response = httpx.get(f"{reused_emulator.base_url}/api/v1/credits", headers=headers)
    assert error_of(response, 401)["code"] == "api_key_missing"


def test_an_unknown_key_is_api_key_invalid(emulator: RunningEmulator) -> None:
    response = httpx.get(f"{emulator.base_url}/api/v1/credits", headers=bearer("rvya_sk_nope"))
    assert error_of(response, 401)["code"] == "api_key_invalid"


@pytest.mark.parametrize("status", ["revoked", "expired"])
def test_revoked_and_expired_keys_are_refused(emulator: RunningEmulator, status: str) -> None:
    key = emulator.add_key(status=status)
    response = httpx.get(f"{emulator.base_url}/api/v1/credits", headers=bearer(key))
    assert error_of(response, 401)["code"] == f"api_key_{status}"


def test_a_key_without_the_scope_is_denied(emulator: RunningEmulator) -> None:
    key = emulator.add_key(scopes=["generations:read"])
    with httpx.Client(base_url=emulator.base_url, headers=bearer(key)) as client:
        denied = [
            client.get("/api/v1/credits"),
            client.post(CREATE, json=FLEX),
            client.post("/api/v1/files", files={"file": ("a.png", b"x")}, data={"kind": "image"}),
            client.get("/api/v1/files/file_x"),
        ]
        allowed = client.get("/api/v1/generations/task_unknown")
    for response in denied:
        error = error_of(response, 403)
        assert error["code"] == "api_scope_denied"
    assert "credits:read" in error_of(denied[0], 403)["message"]
    assert error_of(allowed, 404)["code"] == "not_found"
    assert emulator.counters()["tasks_created"] == 0


# -- generations: create, lifecycle, settlement ---------------------------------------------


def test_create_answers_201_with_a_queued_task_and_reserves_credits(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    response = http.post(CREATE, json={**FLEX, "params": {"aspectRatio": "16:9"}})
    assert response.status_code == 201
    task = response.json()
    assert task["id"].startswith("task_")
    assert {k: task[k] for k in ("status", "model", "reserved_credits", "final_credits")} == {
        "status": "queued",
        "model": "flux-2-flex",
        "reserved_credits": 14,
        "final_credits": 0,
    }
    assert (task["result"], task["error"]) == (None, None)
    assert ISO_MS.fullmatch(task["created_at"])
    assert task["updated_at"] == task["created_at"]
    assert balance(http) == 986
    counters = emulator.counters()
    assert (counters["tasks_created"], counters["credits_reserved"]) == (1, 14)


def test_a_task_runs_to_succeeded_and_is_charged_once(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    task_id = http.post(CREATE, json=FLEX).json()["id"]
    task = wait_for_status(http, task_id)
    assert task["status"] == "succeeded"
    assert task["final_credits"] == task["reserved_credits"] == 14
    url = f"{emulator.base_url}/cdn/results/{task_id}/0.png"
    assert task["result"] == {"primary_url": url, "urls": [url]}
    assert task["error"] is None
    # Reading again must not settle again.
    assert http.get(f"{CREATE}/{task_id}").json() == task
    assert balance(http) == 986
    counters = emulator.counters()
    assert (counters["credits_charged"], counters["credits_refunded"]) == (14, 0)


def test_a_failed_task_is_refunded(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock)
    emulator.set_faults(fail_next_tasks=1)
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        failing = http.post(CREATE, json=KONTEXT).json()
        healthy = http.post(CREATE, json=KONTEXT).json()
        assert balance(http) == 992
        clock.advance(1)
        task = http.get(f"{CREATE}/{failing['id']}").json()
        assert task["status"] == "failed"
        assert task["result"] is None
        assert task["final_credits"] == 0
        assert task["error"]["code"] == "generation_failed"
        assert task["error"]["message"]
        assert http.get(f"{CREATE}/{healthy['id']}").json()["status"] == "succeeded"
        assert balance(http) == 996
    counters = emulator.counters()
    assert (counters["credits_refunded"], counters["credits_charged"]) == (4, 4)


def test_status_follows_the_clock_exactly(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock(1778457600.25)
    emulator = emulator_factory(clock=clock, queued_seconds=2, processing_seconds=3)
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        task_id = http.post(CREATE, json=KONTEXT).json()["id"]

        def read() -> dict[str, Any]:
            task: dict[str, Any] = http.get(f"{CREATE}/{task_id}").json()
            return task

        clock.advance(1.999)
        assert read()["status"] == "queued"
        clock.advance(0.001)
        processing = read()
        assert processing["status"] == "processing"
        assert processing["created_at"] == "2026-05-11T00:00:00.250Z"
        assert processing["updated_at"] == "2026-05-11T00:00:02.250Z"
        clock.advance(2.9)
        assert read()["status"] == "processing"
        assert balance(http) == 996
        clock.advance(0.1)
        done = read()
        assert done["status"] == "succeeded"
        assert done["updated_at"] == "2026-05-11T00:00:05.250Z"
        clock.advance(100)
        assert read() == done
    assert emulator.counters()["credits_charged"] == 4


def test_credits_are_settled_without_reading_the_task(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock, queued_seconds=1, processing_seconds=1)
    emulator.set_faults(fail_next_tasks=1)
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        http.post(CREATE, json=FLEX)
        assert balance(http) == 986
        clock.advance(2)
        assert balance(http) == 1000
    assert emulator.counters()["credits_refunded"] == 14


def test_another_accounts_task_and_unknown_tasks_are_not_found(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    task_id = http.post(CREATE, json=KONTEXT).json()["id"]
    stranger = emulator.add_key(account="acct_other", credits=50)
    foreign = httpx.get(f"{emulator.base_url}{CREATE}/{task_id}", headers=bearer(stranger))
    assert error_of(foreign, 404)["code"] == "not_found"
    assert error_of(http.get(f"{CREATE}/task_missing"), 404)["code"] == "not_found"
    assert http.get(f"{CREATE}/{task_id}").status_code == 200
    other_wallet = httpx.get(f"{emulator.base_url}/api/v1/credits", headers=bearer(stranger))
    assert other_wallet.json() == {"current_credits": 50}


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body: must be a JSON object"),
        (b"[" * 100_000, "body: is not valid JSON"),  # nested deeper than json parses
        (b'{"model": "flux-2-flex", "prompt": "x", "seed": 1}', "seed"),
        (b'{"prompt": "x"}', "model"),
        (b'{"model": 5, "prompt": "x"}', "model"),
        (b'{"model": "flux-9", "prompt": "x"}', "flux-kontext-max"),
        (b'{"model": "flux-2-flex"}', "prompt"),
        (b'{"model": "flux-2-flex", "prompt": "   "}', "prompt"),
        (b'{"model": "flux-2-flex", "prompt": 7}', "prompt"),
        (b'{"model": "flux-2-flex", "prompt": "x", "params": "2K"}', "params"),
        (b'{"model": "flux-2-flex", "prompt": "x", "params": {"resolution": "4K"}}', "1K, 2K"),
        (
            b'{"model": "flux-kontext-pro", "prompt": "x", "params": {"aspectRatoi": "1:1"}}',
            "aspectRatio",
        ),
        (
            b'{"model": "flux-kontext-max", "prompt": "x", "params": {"safetyTolerance": 9}}',
            "params.safetyTolerance",
        ),
    ],
)
def test_invalid_bodies_are_validation_failed_and_cost_nothing(
    reused_emulator: RunningEmulator, reused_http: httpx.Client, body: bytes, named: str
) -> None:
    response = reused_http.post(CREATE, content=body, headers={"Content-Type": "application/json"})
    error = error_of(response, 400)
    assert error["code"] == "validation_failed"
    assert named in error["message"]
    assert reused_emulator.counters()["tasks_created"] == 0
    assert balance(reused_http) == 1000


def test_over_long_prompt_trace_id_and_idempotency_key_are_refused(http: httpx.Client) -> None:
    too_long_prompt = http.post(CREATE, json={**FLEX, "prompt": "p" * 5001})
    assert "5001" in error_of(too_long_prompt, 400)["message"]
    too_long_trace = http.post(CREATE, json={**FLEX, "client_request_id": "c" * 129})
    assert "client_request_id" in error_of(too_long_trace, 400)["message"]
    assert http.post(CREATE, json={**FLEX, "client_request_id": "c" * 128}).status_code == 201
    too_long_key = http.post(CREATE, json=FLEX, headers={"Idempotency-Key": "k" * 256})
    assert "Idempotency-Key" in error_of(too_long_key, 400)["message"]
    assert http.post(CREATE, json=FLEX, headers={"Idempotency-Key": "k" * 255}).status_code == 201


def test_insufficient_credits_is_402_and_stores_nothing(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    emulator.set_credits(13)
    response = http.post(CREATE, json=FLEX, headers={"Idempotency-Key": "poor"})
    error = error_of(response, 402)
    assert error["code"] == "insufficient_credits"
    assert "14" in error["message"]
    assert "13" in error["message"]
    assert balance(http) == 13
    assert emulator.counters()["tasks_created"] == 0
    # The refused key was not remembered: after a top-up it creates a task.
    emulator.set_credits(14)
    retried = http.post(CREATE, json=FLEX, headers={"Idempotency-Key": "poor"})
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert balance(http) == 0


# -- idempotency ------------------------------------------------------------------------------


def test_same_key_and_body_replays_the_task_without_a_new_charge(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    key = {"Idempotency-Key": "daily-asset-1"}
    first = http.post(CREATE, json={**FLEX, "params": {"resolution": "2K"}}, headers=key)
    assert "Idempotent-Replayed" not in first.headers
    wait_for_status(http, first.json()["id"])
    # Same JSON, other key order: still the same body.
    replay = http.post(
        CREATE,
        content=b'{"params": {"resolution": "2K"}, "prompt": "a lighthouse at dawn", '
        b'"model": "flux-2-flex"}',
        headers={**key, "Content-Type": "application/json"},
    )
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["status"] == "succeeded"
    assert balance(http) == 986
    counters = emulator.counters()
    assert (counters["tasks_created"], counters["idempotent_replays"]) == (1, 1)


def test_same_key_with_another_body_is_a_conflict_without_retry_after(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    key = {"Idempotency-Key": "k1"}
    assert http.post(CREATE, json=FLEX, headers=key).status_code == 201
    conflict = http.post(CREATE, json={**FLEX, "prompt": "other"}, headers=key)
    assert error_of(conflict, 409)["code"] == "idempotency_conflict"
    assert "Retry-After" not in conflict.headers
    assert emulator.counters()["tasks_created"] == 1


def test_idempotency_keys_belong_to_one_account(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    key = {"Idempotency-Key": "shared-name"}
    mine = http.post(CREATE, json=FLEX, headers=key).json()
    other = emulator.add_key(account="acct_other")
    theirs = httpx.post(f"{emulator.base_url}{CREATE}", json=FLEX, headers={**key, **bearer(other)})
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert emulator.counters()["idempotent_replays"] == 0


def test_idempotency_keys_are_forgotten_after_24_hours(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock)
    key = {"Idempotency-Key": "yesterday"}
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        first = http.post(CREATE, json=KONTEXT, headers=key).json()
        clock.advance(24 * 3600 - 1)
        assert http.post(CREATE, json=KONTEXT, headers=key).json()["id"] == first["id"]
        clock.advance(1)
        fresh = http.post(CREATE, json=KONTEXT, headers=key)
        assert fresh.status_code == 201
        assert "Idempotent-Replayed" not in fresh.headers
        assert fresh.json()["id"] != first["id"]
    assert emulator.counters()["tasks_created"] == 2
