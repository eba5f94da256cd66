"""Answers Rivya's docs allow but do not promise: the client must work with every one of them."""

from __future__ import annotations

import io
import json
import logging
import struct
import zlib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from rivya_provider.client import (
    GenerationRequest,
    GenerationTask,
    IdempotencyConflictError,
    RequestValidationError,
    RivyaFile,
    TaskStatus,
)
from rivya_provider.client.catalog.live import CACHE, clear_catalog_cache
from rivya_provider.client.catalog.specs import MB
from rivya_provider.manifest import GenerationManifest
from tests.clients import Api
from tests.unit.conftest import BASE_URL, TASK, Script, envelope

pytestmark = pytest.mark.no_airflow

FLEX = GenerationRequest(model="flux-2-flex", prompt="a lighthouse at dawn")
SHORT_TASK = {k: TASK[k] for k in ("id", "status", "model", "reserved_credits", "result", "error")}


def models(*entries: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"object": "list", "data": list(entries)})


FLEX_LIVE: dict[str, Any] = {
    "id": "flux-2-flex",
    "base_credits": 14,
    "max_prompt_length": 5000,
    "params": [
        {
            "key": "aspectRatio",
            "type": "select",
            "default": "1:1",
            "options": [{"value": "1:1", "label": "Square"}, {"value": "16:9", "label": "Wide"}],
        },
        {"key": "seed", "type": "number", "min": 0, "max": 99},
    ],
    "reference_media": {"max_files": 2, "kinds": ["image"]},
}
NEW_MODEL: dict[str, Any] = {
    "id": "rivya-new-image",
    "base_credits": 3,
    "params": [{"key": "style", "type": "select", "options": ["ink", "oil"]}],
    "reference_media": {
        "max_files": 4,
        "kinds": ["image"],
        "limits": [
            {"kind": "image", "max_bytes": 20 * MB, "mime_types": ["image/png", "image/gif"]}
        ],
    },
}


def png_of(size: int) -> bytes:
    """A PNG signature and header, padded to ``size`` bytes (only the signature is checked)."""
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 1, 1)
    header += b"\x08\x02\x00\x00\x00" + struct.pack(">I", zlib.crc32(header[12:]))
    return header + b"\0" * (size - len(header))


@pytest.fixture
def live(script: Script) -> Script:
    """Let the client read ``/models`` (the unit conftest seeds the built-in catalogue)."""
    clear_catalog_cache()
    return script


# --- tolerant responses ------------------------------------------------------------------------


async def test_the_short_create_shape_of_the_docs_is_a_task(api: Api, script: Script) -> None:
    script.answers = [httpx.Response(200, json=SHORT_TASK)]
    task = await api("create_generation", FLEX)
    assert (task.id, task.status, task.created_at) == ("task_abc", TaskStatus.QUEUED, None)
    assert not task.replayed
    manifest = GenerationManifest.describe(
        task, request=FLEX.to_wire(), origin="submitted", idempotency_key="k"
    )
    assert (manifest.created_at, manifest.seconds) == (None, None)


def test_only_id_and_status_are_required() -> None:
    task = GenerationTask.model_validate({"id": "t", "status": "queued"})
    assert (task.model, task.reserved_credits, task.result) == (None, 0, None)
    with pytest.raises(ValueError, match="status"):
        GenerationTask.model_validate({"id": "t"})


@pytest.mark.parametrize("reported", ["rendering", "Starting", "upscaling"])
def test_an_unknown_status_is_still_running(reported: str) -> None:
    task = GenerationTask.model_validate({"id": "t", "status": reported})
    assert task.status is TaskStatus.PROCESSING
    assert not task.status.is_terminal
    assert task.reported_status == reported


@pytest.mark.parametrize("reported", ["canceled", "cancelled", "EXPIRED", "aborted"])
def test_a_cancel_like_status_is_a_failure_with_its_name_as_code(reported: str) -> None:
    task = GenerationTask.model_validate({"id": "t", "status": reported, "error": None})
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert task.error.code == reported.lower()
    # A task dumped and read back (trigger events do that) keeps what Rivya reported.
    again = GenerationTask.model_validate(task.model_dump(mode="json"))
    assert (again.status, again.reported_status) == (TaskStatus.FAILED, reported)


def test_result_and_error_fields_are_optional() -> None:
    task = GenerationTask.model_validate(
        {
            "id": "t",
            "status": "succeeded",
            "final_credits": 13.5,
            "result": {"urls": ["https://cdn.test/a.png", "https://cdn.test/b.png"]},
        }
    )
    assert task.primary_url == "https://cdn.test/a.png"
    assert task.result_urls == ["https://cdn.test/a.png", "https://cdn.test/b.png"]
    assert task.final_credits == 13.5
    failed = GenerationTask.model_validate(
        {"id": "t", "status": "failed", "error": {"message": "blocked by the safety filter"}}
    )
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == (
        "generation_failed",
        "blocked by the safety filter",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"id": "file_1", "url": "https://cdn.test/f.png", "kind": "image", "mime_type": "x/y"},
        {"fileId": "file_1", "url": "https://cdn.test/f.png", "kind": "image", "mimeType": "x/y"},
        {"file_id": "file_1", "url": "https://cdn.test/f.png", "durationToken": "dur_1"},
        {"url": "https://cdn.test/f.png", "kind": "hologram"},
    ],
)
def test_file_answers_need_only_a_url(body: dict[str, Any]) -> None:
    file = RivyaFile.model_validate(body)
    assert file.url == "https://cdn.test/f.png"
    item = file.as_reference(kind=None).to_wire()
    assert item["url"] == "https://cdn.test/f.png"
    assert item["kind"] == "image"


async def test_a_long_client_request_id_on_a_generation_is_sent(api: Api, script: Script) -> None:
    script.answers = [httpx.Response(201, json=TASK)]
    trace = "t" * 200
    request = GenerationRequest(model="flux-2-flex", prompt="p", client_request_id=trace)
    await api("create_generation", request)
    assert script.json_bodies()[-1]["client_request_id"] == trace


# --- replays without the header ----------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {**TASK, "created_at": "2026-05-11T00:00:00.000Z"},  # long before the request
        {**SHORT_TASK, "status": "failed"},  # finished, age unknown
        {**SHORT_TASK, "status": "queued"},
    ],
)
async def test_without_the_header_timestamps_never_make_a_replay(
    api: Api, script: Script, answer: dict[str, Any]
) -> None:
    # Only what is known counts: a task's age on Rivya's clock is not proof that the key made it
    # before, and taking it for proof labelled new, paid generations as found again.
    script.answers = [httpx.Response(201, json=answer)]
    task = await api("create_generation", FLEX, idempotency_key="k-1")
    assert task.replayed is False
    assert task.sent_at is not None


async def test_the_header_makes_a_replay_of_a_task_this_process_never_saw(
    api: Api, script: Script
) -> None:
    headers = {"Idempotent-Replayed": "true"}
    script.answers = [httpx.Response(200, json=TASK, headers=headers)]
    task = await api("create_generation", FLEX, idempotency_key="k-elsewhere")
    assert task.replayed is True
    assert task.sent_at is None  # made elsewhere: only Rivya's created_at dates it


async def test_a_key_sent_before_is_a_replay_when_answered_with_the_same_task(
    api: Api, script: Script
) -> None:
    script.answers = [httpx.Response(201, json=SHORT_TASK)]
    first = await api("create_generation", FLEX, idempotency_key="k-same")
    again = await api("create_generation", FLEX, idempotency_key="k-same")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.sent_at == first.sent_at  # dated by this process's first send
    # A server that forgot the key (24 h later) answers with a new task: not a replay.
    script.answers = [httpx.Response(201, json={**SHORT_TASK, "id": "task_new"})]
    assert (await api("create_generation", FLEX, idempotency_key="k-same")).replayed is False


@pytest.mark.parametrize(
    "first_answer",
    [httpx.ReadError("connection lost"), envelope(500, "internal", "oops")],
    ids=["lost", "5xx"],
)
async def test_the_answer_after_a_lost_one_is_this_calls_own_task(
    api: Api, script: Script, first_answer: Any
) -> None:
    # The first attempt may have made the task: the resend's answer is that same one task,
    # made (and charged) once by this call, so not a replay of anything older.
    script.answers = [first_answer, httpx.Response(201, json=SHORT_TASK)]
    task = await api("create_generation", FLEX, idempotency_key="k-lost")
    assert task.replayed is False
    assert task.sent_at is not None
    assert len(script.requests) == 2


async def test_a_server_clock_that_disagrees_with_itself_does_not_make_a_replay(
    api: Api, script: Script
) -> None:
    # A new task stamped a day before the answer's own Date header.
    now = datetime.now(timezone.utc)
    stale = {**TASK, "created_at": (now - timedelta(days=1)).isoformat()}
    date = format_datetime(now, usegmt=True)
    script.answers = [httpx.Response(201, json=stale, headers={"Date": date})]
    task = await api("create_generation", FLEX)
    assert task.replayed is False


async def test_a_task_that_failed_at_once_is_new(api: Api, script: Script) -> None:
    now = "2099-01-01T00:00:00.000Z"  # not before the request
    script.answers = [httpx.Response(201, json={**TASK, "status": "failed", "created_at": now})]
    assert (await api("create_generation", FLEX)).replayed is False


# --- idempotency conflicts ---------------------------------------------------------------------


async def test_conflicts_are_waited_out_within_conflict_wait(api: Api, script: Script) -> None:
    script.answers = [
        envelope(409, "idempotency_conflict", "in progress"),
        envelope(409, "idempotency_conflict", "in progress"),
        httpx.Response(201, json=TASK),
    ]
    task = await api("create_generation", FLEX, idempotency_key="k-1", conflict_wait=600)
    assert task.id == "task_abc"
    assert len(api.sleeps) == 2
    assert all(0 <= pause <= 30 for pause in api.sleeps)


async def test_a_conflict_past_conflict_wait_names_key_and_trace_id(
    api: Api, script: Script
) -> None:
    script.answers = [envelope(409, "idempotency_conflict", "key reused")]
    request = GenerationRequest(model="flux-2-flex", prompt="p", client_request_id="run-7")
    with pytest.raises(IdempotencyConflictError) as caught:
        await api("create_generation", request, idempotency_key="k-9", conflict_wait=120)
    error = caught.value
    assert (error.idempotency_key, error.client_request_id) == ("k-9", "run-7")
    assert 120 <= error.waited_seconds <= 150
    text = str(error)
    assert "'k-9'" in text
    assert "'run-7'" in text
    assert "a generation may exist under this key already" in text
    assert "different data" not in text
    # Every retry sent the same key.
    assert {r.headers["idempotency-key"] for r in script.requests} == {"k-9"}


# --- the live catalogue ------------------------------------------------------------------------


async def test_object_options_and_a_new_param_validate_against_the_live_catalogue(
    api: Api, live: Script
) -> None:
    live.answers = [models(FLEX_LIVE), httpx.Response(201, json=TASK)]
    request = GenerationRequest(
        model="flux-2-flex", prompt="p", params={"aspectRatio": "16:9", "seed": "7"}
    )
    await api("create_generation", request)
    assert json.loads(live.requests[-1].content)["params"] == {"aspectRatio": "16:9", "seed": 7}
    with pytest.raises(RequestValidationError) as caught:
        await api("create_generation", request.model_copy(update={"params": {"seed": 100}}))
    assert caught.value.fields == ["params.seed"]
    with pytest.raises(RequestValidationError, match="did you mean 'seed'"):
        await api("create_generation", request.model_copy(update={"params": {"sead": 1}}))
    # One read of /models served all three checks.
    assert [r.url.path for r in live.requests].count("/api/v1/models") == 1


async def test_a_model_only_the_live_catalogue_knows_is_checked_by_it(
    api: Api, live: Script
) -> None:
    live.answers = [models(FLEX_LIVE, NEW_MODEL), httpx.Response(201, json=TASK)]
    bad = GenerationRequest(model="rivya-new-image", prompt="p", params={"style": "pastel"})
    with pytest.raises(RequestValidationError, match="allowed: ink, oil"):
        await api("create_generation", bad)
    good = bad.model_copy(update={"params": {"style": "ink"}})
    await api("create_generation", good)
    assert json.loads(live.requests[-1].content)["model"] == "rivya-new-image"


async def test_a_new_models_file_limits_come_from_the_live_catalogue(
    api: Api, live: Script
) -> None:
    uploaded = {"id": "file_1", "url": "https://cdn.test/f.png", "kind": "image"}
    live.answers = [models(NEW_MODEL), httpx.Response(200, json=uploaded)]
    big = png_of(12 * MB)  # over the Files API default of 10 MB, under the model's 20 MB
    file = await api("upload_file", io.BytesIO(big), model="rivya-new-image", name="big.png")
    assert file.url == "https://cdn.test/f.png"
    with pytest.raises(RequestValidationError, match="at most 10485760 bytes"):
        await api("upload_file", io.BytesIO(big), model="flux-2-flex", name="big.png")


async def test_an_unreadable_catalogue_falls_back_to_the_built_in_one(
    api: Api, live: Script, caplog: pytest.LogCaptureFixture
) -> None:
    def by_path(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return envelope(503, "public_api_disabled")
        return httpx.Response(201, json=TASK)

    live.answers = [by_path]
    with caplog.at_level(logging.WARNING):
        await api("create_generation", FLEX)
        with pytest.raises(RequestValidationError, match=r"params\.resolution"):
            await api("create_generation", FLEX.model_copy(update={"params": {"resolution": "8K"}}))
    assert "Could not read Rivya's model catalogue" in caplog.text
    # /models is retried for its short budget (10 s of the fake clock), then the fallback is
    # kept a while: the second create reads nothing.
    paths = [r.url.path for r in live.requests]
    models = paths.count("/api/v1/models")
    assert 2 <= models <= 6, paths
    assert paths[models:] == ["/api/v1/generations"]
    assert sum(api.sleeps) <= 10
    assert CACHE.get(BASE_URL) is not None


async def test_a_rate_limited_catalogue_read_is_retried_not_dropped(api: Api, live: Script) -> None:
    limited = envelope(429, "rate_limited", "slow down", **{"Retry-After": "2"})
    models = {"object": "list", "data": [{"id": "flux-2-flex", "params": []}]}
    live.answers = [limited, httpx.Response(200, json=models), httpx.Response(201, json=TASK)]
    # The live catalogue lists flux-2-flex without params: the built-in one would accept
    # aspectRatio, the live one refuses it, so the refusal shows the live one was read.
    with pytest.raises(RequestValidationError, match=r"params\.aspectRatio"):
        await api("create_generation", FLEX.model_copy(update={"params": {"aspectRatio": "1:1"}}))
    assert [r.url.path for r in live.requests] == ["/api/v1/models", "/api/v1/models"]
    assert api.sleeps[0] >= 2  # after the Retry-After


def test_the_models_answer_of_the_docs_parses() -> None:
    from rivya_provider.client.catalog import ModelList

    documented = json.loads(
        """{"object": "list", "data": [{"id": "z-image", "display_name": "Z-Image",
        "category": "image", "runtime": "async_task", "base_credits": 1, "billing_type": "FIXED",
        "supported_modes": ["text-to-image"], "max_prompt_length": 1000,
        "reference_media": null, "params": [], "api_status": "available",
        "api_input_status": "available_text", "supported_api_inputs": ["text"],
        "requires_files_api": false, "requires_upload_for_modes": [],
        "url_input_supported": false, "file_kinds": [], "chat_capabilities": null,
        "notices": []}]}"""
    )
    (model,) = ModelList.model_validate(documented).data
    assert (model.id, model.runtime, model.reference_media) == ("z-image", "async_task", None)
