"""Admin routes, routing errors, counters and the OpenAPI document of the emulator."""

from __future__ import annotations

import httpx

from rivya_provider.emulator import RunningEmulator
from tests.integration.emulator_support import FLEX, KONTEXT, bearer, error_of, wait_for_status

PUBLIC_PATHS = {
    "/api/v1/models",
    "/api/v1/generations",
    "/api/v1/generations/{taskId}",
    "/api/v1/credits",
    "/api/v1/files",
    "/api/v1/files/{fileId}",
}


def test_openapi_lists_the_public_paths_only(emulator: RunningEmulator) -> None:
    response = httpx.get(f"{emulator.base_url}/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert set(spec["paths"]) == PUBLIC_PATHS
    create = spec["paths"]["/api/v1/generations"]
    assert set(create) == {"post"}
    assert {"201", "400", "402", "409"} <= set(create["post"]["responses"])
    assert create["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/api/v1/models"]["get"]
    # Errors are documented as Rivya's envelope, never as FastAPI's 422.
    assert "422" not in response.text
    assert "requestId" in spec["components"]["schemas"]["ErrorBody"]["properties"]
    assert emulator.counters()["requests"] == {}
    assert error_of(httpx.get(f"{emulator.base_url}/docs"), 404)["code"] == "not_found"


def test_openapi_describes_the_documented_shapes(reused_emulator: RunningEmulator) -> None:
    spec = httpx.get(f"{reused_emulator.base_url}/api/v1/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["ModelEntry"]["required"]) >= {
        "runtime",
        "supported_modes",
        "reference_media",
        "api_input_status",
        "requires_upload_for_modes",
        "url_input_supported",
        "chat_capabilities",
        "notices",
        "params",
        "base_credits",
    }
    assert set(schemas["Task"]["properties"]["status"]["enum"]) == {
        "queued",
        "processing",
        "succeeded",
        "failed",
    }
    assert {"mime_type", "size_bytes", "duration_token"} <= set(
        schemas["PublicApiFile"]["properties"]
    )
    create = spec["paths"]["/api/v1/generations"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["client_request_id"]["anyOf"][0]["maxLength"] == 128
    (header,) = create["parameters"]
    assert (header["name"], header["schema"]["maxLength"]) == ("Idempotency-Key", 255)
    upload = spec["paths"]["/api/v1/files"]["post"]["requestBody"]["content"]
    kinds = upload["multipart/form-data"]["schema"]["properties"]["kind"]["enum"]
    assert kinds == ["image", "video", "audio"]


def test_unknown_routes_and_methods_use_the_envelope(http: httpx.Client) -> None:
    missing = http.get("/api/v1/webhooks")
    assert error_of(missing, 404)["code"] == "not_found"
    assert "/api/v1/webhooks" in error_of(missing, 404)["message"]
    wrong_method = http.delete("/api/v1/credits")
    assert error_of(wrong_method, 405)["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]


def test_counters_count_requests_by_route_and_responses_by_status(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    task_id = http.post("/api/v1/generations", json=FLEX).json()["id"]
    http.get(f"/api/v1/generations/{task_id}")
    http.get("/api/v1/generations/task_missing")
    http.get("/_emulator/state")
    counters = http.get("/_emulator/counters").json()
    assert counters["requests"] == {
        "POST /api/v1/generations": 1,
        "GET /api/v1/generations/{taskId}": 2,
    }
    assert counters["responses"] == {"201": 1, "200": 1, "404": 1}
    # The same numbers in process, but for the generation's charge: it may finish in between.
    in_process = emulator.counters()
    for settled in ("credits_charged", "credits_refunded"):
        counters.pop(settled), in_process.pop(settled)
    assert counters == in_process


def test_state_shows_wallets_tasks_files_and_faults(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    http.post("/api/v1/generations", json=KONTEXT)
    http.patch("/_emulator/faults", json={"latency_seconds": 0.01})
    state = http.get("/_emulator/state").json()
    assert state["wallets"] == {"acct_default": 996}
    assert state["tasks"]["total"] == 1
    assert state["files"] == 0
    assert state["faults"]["latency_seconds"] == 0.01
    assert state["faults"]["cancel_next_tasks"] == 0
    assert state["profile"]["create_status"] == 201
    assert state["models"] == ["flux-2-flex", "flux-kontext-pro", "flux-kontext-max"]
    assert state["counters"]["tasks_created"] == 1
    assert state["counters"]["downloads"] == {}
    assert emulator.api_key not in str(state)


def test_patch_faults_changes_only_the_given_fields(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    http.patch("/_emulator/faults", json={"retry_after_seconds": 9})
    faults = http.patch("/_emulator/faults", json={"rate_limited_next": 1}).json()
    assert (faults["retry_after_seconds"], faults["rate_limited_next"]) == (9, 1)
    assert http.get("/api/v1/credits").headers["Retry-After"] == "9"


def test_credits_and_keys_can_be_set_over_http(emulator: RunningEmulator) -> None:
    with httpx.Client(base_url=emulator.base_url) as admin:
        assert admin.put("/_emulator/credits", json={"credits": 5}).status_code == 200
        created = admin.post(
            "/_emulator/keys",
            json={"account": "acct_team", "credits": 40, "scopes": ["credits:read"]},
        )
        assert created.status_code == 201
        key = created.json()
        assert key["account"] == "acct_team"
        assert key["api_key"].startswith("rvya_sk_")
        team = admin.get("/api/v1/credits", headers=bearer(key["api_key"]))
        default = admin.get("/api/v1/credits", headers=bearer(emulator.api_key))
        denied = admin.get("/api/v1/files/file_x", headers=bearer(key["api_key"]))
        invalid = admin.put("/_emulator/credits", json={"credits": "lots"})
        revoked = admin.post("/_emulator/keys", json={"status": "revoked"}).json()["api_key"]
        refused = admin.get("/api/v1/credits", headers=bearer(revoked))
    assert team.json() == {"current_credits": 40}
    assert default.json() == {"current_credits": 5}
    assert error_of(denied, 403)["code"] == "api_scope_denied"
    error = error_of(invalid, 400)
    assert (error["code"], error["message"].split(":")[0]) == ("validation_failed", "credits")
    assert error_of(refused, 401)["code"] == "api_key_revoked"


def test_reset_forgets_everything_but_the_keys(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    other = emulator.add_key(account="acct_other", credits=30)
    task_id = http.post("/api/v1/generations", json=FLEX, headers={"Idempotency-Key": "k"})
    wait_for_status(http, task_id.json()["id"])
    emulator.set_credits(3)
    emulator.set_faults(server_error_rate=0.5, latency_seconds=0.01)
    state = http.post("/_emulator/reset").json()
    assert state["wallets"] == {"acct_default": 1000, "acct_other": 30}
    assert state["tasks"]["total"] == state["files"] == state["idempotency_keys"] == 0
    assert state["faults"]["server_error_rate"] == 0
    assert state["counters"]["tasks_created"] == 0
    assert error_of(http.get(f"/api/v1/generations/{task_id.json()['id']}"), 404)
    again = http.post("/api/v1/generations", json=FLEX, headers={"Idempotency-Key": "k"})
    assert "Idempotent-Replayed" not in again.headers
    assert httpx.get(f"{emulator.base_url}/api/v1/credits", headers=bearer(other)).json() == {
        "current_credits": 30
    }
    emulator.reset()
    assert emulator.counters()["tasks_created"] == 0
