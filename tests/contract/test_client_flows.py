"""Generate, replay, upload and catalogue scenarios through both clients, against every target."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from PIL import Image

from rivya_provider.client import (
    GenerationFailedError,
    GenerationRequest,
    IdempotencyConflictError,
    InvalidInputError,
    RequestValidationError,
    RetryPolicy,
    TaskStatus,
    ValidationFailedError,
)
from tests.clients import Api
from tests.contract.conftest import BOTH_FLAVOURS, ApiFactory
from tests.contract.docs_catalogue import MIB
from tests.contract.targets import DOCS_TARGETS, START_CREDITS, Target
from tests.media import image_bytes, sparse_file

pytestmark = pytest.mark.no_airflow

FLEX = GenerationRequest(
    model="flux-2-flex", prompt="a lighthouse at dawn", params={"aspectRatio": "16:9"}
)


def charged(target: Target) -> tuple[float, float]:
    """Return (tasks created, credits charged) so far."""
    counters = target.counters()
    return counters["tasks_created"], counters["credits_charged"]


@BOTH_FLAVOURS
async def test_create_wait_download(api: Api, target: Target) -> None:
    task = await api("create_generation", FLEX, idempotency_key="contract-flow-1")

    assert task.id
    assert not task.status.is_terminal
    done = await api("wait_for_generation", task.id)
    assert done.status is TaskStatus.SUCCEEDED
    assert done.result_urls, "a succeeded task names its results"
    buffer = io.BytesIO()
    saved = await api("download", done.result_urls[0], buffer)
    assert saved.size_bytes == len(buffer.getvalue()) > 0
    with Image.open(buffer) as image:
        assert image.width > 0
    assert charged(target) == (1, 14)
    # One docs variant keeps half a credit: balances need not be whole numbers.
    credits = await api("get_credits")
    assert credits.current_credits in {START_CREDITS - 14, START_CREDITS - 14 + 0.5}


async def test_a_repeat_with_the_same_key_never_pays_twice(api: Api, target: Target) -> None:
    first = await api("create_generation", FLEX, idempotency_key="contract-repeat-1")

    if target.repeat_conflict:
        with pytest.raises(IdempotencyConflictError) as caught:
            await api("create_generation", FLEX, idempotency_key="contract-repeat-1")
        assert caught.value.code == "idempotency_conflict"
    else:
        again = await api("create_generation", FLEX, idempotency_key="contract-repeat-1")
        assert again.id == first.id
        assert again.replayed, "a replay is recognised with or without Idempotent-Replayed"
    await api("wait_for_generation", first.id)
    assert charged(target) == (1, 14)


@BOTH_FLAVOURS
async def test_a_lost_create_answer_is_never_paid_twice(api: Api, target: Target) -> None:
    target.fault("drop_next_creates")
    request = FLEX.model_copy(update={"client_request_id": "contract-lost-answer"})

    if target.repeat_conflict:
        with pytest.raises(IdempotencyConflictError) as caught:
            await api("create_generation", request, idempotency_key="contract-lost-1")
        message = str(caught.value)
        assert "contract-lost-1" in message
        assert "contract-lost-answer" in message
        assert "a generation may exist" in message
    else:
        task = await api("create_generation", request, idempotency_key="contract-lost-1")
        # The dropped first attempt made it: this call's own, whatever the server says.
        assert not task.replayed
        done = await api("wait_for_generation", task.id)
        assert done.status is TaskStatus.SUCCEEDED
    assert charged(target)[0] == 1
    assert charged(target)[1] in {0, 14}


async def test_an_unknown_running_status_is_waited_through(api: Api, target: Target) -> None:
    task = await api("create_generation", FLEX)
    seen = []
    for _ in range(100):
        polled = await api("get_generation", task.id)
        seen.append(polled)
        if polled.status.is_terminal:
            break
        await api.clock.asleep(0.01)

    assert seen[-1].status is TaskStatus.SUCCEEDED
    running = [p for p in seen if not p.status.is_terminal]
    assert all(p.result_urls == [] for p in running)


@BOTH_FLAVOURS
async def test_a_canceled_task_is_a_terminal_failure(api: Api, target: Target) -> None:
    target.fault("cancel_next_tasks")
    task = await api("create_generation", FLEX)

    with pytest.raises(GenerationFailedError) as caught:
        await api("wait_for_generation", task.id)
    assert caught.value.task_id == task.id
    done = await api("wait_for_generation", task.id, raise_on_failure=False)
    assert done.status.is_terminal
    assert done.status is not TaskStatus.SUCCEEDED
    assert charged(target) == (1, 0)


async def test_a_failed_task_is_not_charged(api: Api, target: Target) -> None:
    target.fault("fail_next_tasks")
    task = await api("create_generation", FLEX)

    with pytest.raises(GenerationFailedError) as caught:
        await api("wait_for_generation", task.id)
    assert caught.value.code == "generation_failed"
    assert charged(target) == (1, 0)


@BOTH_FLAVOURS
async def test_an_uploaded_file_is_used_as_a_reference(api: Api, target: Target) -> None:
    uploaded = await api(
        "upload_file", image_bytes("png"), kind="image", model="flux-2-flex", name="ref.png"
    )

    assert uploaded.id
    assert uploaded.url
    again = await api("get_file", uploaded.id)
    assert again.url == uploaded.url
    request = FLEX.model_copy(
        update={"params": {"referenceMediaItems": [uploaded.as_reference().to_wire()]}}
    )
    task = await api("create_generation", request)
    done = await api("wait_for_generation", task.id)
    assert done.status is TaskStatus.SUCCEEDED
    assert charged(target) == (1, 14)


async def test_options_from_the_live_catalogue_and_a_new_param_validate(
    api: Api, target: Target
) -> None:
    target.grow_catalogue()
    request = FLEX.model_copy(update={"params": {"aspectRatio": "3:2", "seed": 42}})

    task = await api("create_generation", request)
    done = await api("wait_for_generation", task.id)
    assert done.status is TaskStatus.SUCCEEDED
    # The live options still bind: a value outside them costs nothing.
    bad = FLEX.model_copy(update={"params": {"aspectRatio": "5:4", "seed": 42}})
    with pytest.raises(RequestValidationError) as caught:
        await api("create_generation", bad)
    assert "aspectRatio" in str(caught.value)
    assert charged(target) == (1, 14)


@BOTH_FLAVOURS
async def test_a_new_model_uses_its_own_file_limits(
    api: Api, target: Target, tmp_path: Path
) -> None:
    target.grow_catalogue()
    # 12 MiB and a GIF: both beyond the documented image defaults, within the new model's.
    large = sparse_file(tmp_path / "large.png", 12 * MIB, image_bytes("png"))
    gif = image_bytes("gif")

    items = []
    for source in (large, gif):
        uploaded = await api("upload_file", source, kind="image", model="rivya-new-image")
        items.append(uploaded.as_reference().to_wire())
    request = GenerationRequest(
        model="rivya-new-image",
        prompt="a paper boat",
        params={"style": "sketch", "detail": 3, "referenceMediaItems": items},
    )
    task = await api("create_generation", request)
    done = await api("wait_for_generation", task.id)
    assert done.status is TaskStatus.SUCCEEDED
    with pytest.raises(InvalidInputError):
        await api("create_generation", request.model_copy(update={"params": {"style": "oil"}}))
    assert charged(target) == (1, 3)


async def test_a_long_client_request_id_on_a_generation_is_sent(api: Api, target: Target) -> None:
    # The documented 128-character limit is the Files API's; generations state none.
    request = GenerationRequest(
        model="flux-2-flex", prompt="a lighthouse at dawn", client_request_id="c" * 200
    )

    if not target.is_docs:
        # The emulator's default profile keeps the project's decision of 128 characters: the
        # server's refusal is a typed error naming the field, and nothing is charged.
        with pytest.raises(ValidationFailedError, match="client_request_id"):
            await api("create_generation", request)
        assert charged(target) == (0, 0)
        return
    task = await api("create_generation", request)

    await api("wait_for_generation", task.id)
    assert charged(target) == (1, 14)


@pytest.mark.parametrize("target", DOCS_TARGETS, indirect=True)
async def test_an_unknown_param_without_the_live_catalogue_is_sent_with_a_warning(
    api_for: ApiFactory, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    target.grow_catalogue()
    target.fault("models_unavailable", 1000)
    api = api_for(retry=RetryPolicy(max_attempts=1))
    request = FLEX.model_copy(update={"params": {"seed": 7}})

    with caplog.at_level(logging.WARNING, logger="rivya_provider"):
        task = await api("create_generation", request)

    await api("wait_for_generation", task.id)
    assert any("seed" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert charged(target) == (1, 14)
