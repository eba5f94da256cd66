"""Both clients against the emulator over real loopback HTTP: endpoints, errors, retries, money."""

from __future__ import annotations

import asyncio
import gc
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest
from PIL import Image

from rivya_provider.client import (
    AsyncRivyaClient,
    AuthenticationError,
    GenerationFailedError,
    GenerationRequest,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    PollPolicy,
    RateLimitedError,
    RequestValidationError,
    RetryPolicy,
    RivyaClient,
    RivyaTransportError,
    ServerError,
    ServiceUnavailableError,
    TaskStatus,
    Timeouts,
    ValidationFailedError,
)
from rivya_provider.client.catalog.specs import MB
from rivya_provider.client.transports import sync as sync_transports
from rivya_provider.emulator import RunningEmulator
from tests.clients import FLAVOURS, Api, make_api
from tests.media import FORMATS, image_bytes, sparse_file, write_image

pytestmark = pytest.mark.no_airflow

FLEX = GenerationRequest(
    model="flux-2-flex", prompt="a lighthouse at dawn", params={"aspectRatio": "16:9"}
)
CREATE = "POST /api/v1/generations"
UPLOAD = "POST /api/v1/files"
RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05, retry_after_cap=5)
POLL = PollPolicy(first_delay=0.05, interval=0.05, timeout=30)

ApiFactory = Callable[..., Api]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def api_for(flavour: str, emulator: RunningEmulator) -> AsyncIterator[ApiFactory]:
    made: list[Api] = []

    def factory(**overrides: Any) -> Api:
        options: dict[str, Any] = {
            "api_key": emulator.api_key,
            "base_url": emulator.base_url,
            "retry": RETRY,
            "poll": POLL,
            "real_sleep_cap": 0.05,
            **overrides,
        }
        made.append(make_api(overrides.pop("flavour", flavour), **options))
        return made[-1]

    yield factory
    for api in made:
        await api.close()


@pytest.fixture
def api(api_for: ApiFactory) -> Api:
    return api_for()


def requests_to(emulator: RunningEmulator, route: str) -> int:
    return int(emulator.counters()["requests"].get(route, 0))


async def test_catalogue_lists_the_documented_models_with_their_params(api: Api) -> None:
    models = {m.id: m for m in await api("list_models")}
    assert {"flux-2-flex", "flux-kontext-pro", "flux-kontext-max"} <= set(models)
    flex = models["flux-2-flex"]
    assert (flex.base_credits, flex.max_prompt_length) == (14, 5000)
    ratio = next(p for p in flex.params if p.key == "aspectRatio")
    assert ratio.options == ["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"]
    assert ratio.default == "1:1"


async def test_generation_runs_to_a_real_image_and_is_charged_once(
    api: Api, emulator: RunningEmulator, tmp_path: Path
) -> None:
    before = (await api("get_credits")).current_credits
    created = await api("create_generation", FLEX, idempotency_key="happy-path-1")
    assert (created.status, created.reserved_credits, created.final_credits) == ("queued", 14, 0)
    done = await api("wait_for_generation", created.id)
    assert (done.status, done.final_credits, done.error) == ("succeeded", 14, None)
    assert done.updated_at >= done.created_at
    got = await api("download", done.result_urls[0], tmp_path / "result.img")
    with Image.open(got.path) as image:
        width, height = image.size
        assert abs(width / height - 16 / 9) < 0.02
        assert image.format == "PNG"
    assert (await api("get_credits")).current_credits == before - 14
    assert emulator.counters()["credits_charged"] == 14


async def test_a_failed_generation_raises_its_code_and_costs_nothing(
    api: Api, emulator: RunningEmulator
) -> None:
    emulator.set_faults(fail_next_tasks=1)
    created = await api("create_generation", FLEX)
    with pytest.raises(GenerationFailedError) as caught:
        await api("wait_for_generation", created.id)
    assert caught.value.code == "generation_failed"
    assert caught.value.task_id == created.id
    assert (await api("get_credits")).current_credits == 1000
    task = await api("get_generation", created.id)
    assert (task.status, task.final_credits, task.result) == ("failed", 0, None)


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_real_images_upload_and_read_back(api: Api, tmp_path: Path, fmt: str) -> None:
    path = write_image(tmp_path / f"ref.{fmt}", fmt)
    uploaded = await api("upload_file", path, model="flux-kontext-pro")
    assert (uploaded.kind, uploaded.mime_type) == ("image", FORMATS[fmt])
    assert uploaded.size_bytes == path.stat().st_size
    assert (await api("get_file", uploaded.id)).url == uploaded.url
    served = tmp_path / "served"
    await api("download", uploaded.url, served)
    assert served.read_bytes() == path.read_bytes()


async def test_upload_then_edit_with_the_reference(api: Api, tmp_path: Path) -> None:
    uploaded = await api("upload_file", write_image(tmp_path / "product.jpg", "jpeg"))
    request = GenerationRequest(
        model="flux-kontext-pro",
        prompt="put the product on a beach",
        params={"referenceMediaItems": [uploaded.as_reference()], "outputFormat": "png"},
    )
    done = await api("wait_for_generation", (await api("create_generation", request)).id)
    got = await api("download", done.result_urls[0], tmp_path / "edit")
    assert got.content_type == "image/png"


async def test_a_lying_extension_is_judged_by_content(
    api: Api, emulator: RunningEmulator, tmp_path: Path
) -> None:
    disguised = write_image(tmp_path / "photo.jpg", "png")
    assert (await api("upload_file", disguised)).mime_type == "image/png"
    text = tmp_path / "notes.png"
    text.write_text("definitely not a picture")
    with pytest.raises(RequestValidationError, match="unknown type"):
        await api("upload_file", text)
    assert requests_to(emulator, UPLOAD) == 1


async def test_oversize_upload_sends_nothing(
    api: Api, emulator: RunningEmulator, tmp_path: Path
) -> None:
    huge = sparse_file(tmp_path / "huge.webp", 10 * MB + 1, image_bytes("webp"))
    with pytest.raises(RequestValidationError, match="at most"):
        await api("upload_file", huge)
    assert requests_to(emulator, UPLOAD) == 0


class _DropAuthorization(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """A real transport that strips the Authorization header, as a broken proxy would."""

    def __init__(self) -> None:
        self._sync = httpx.HTTPTransport()
        self._async = httpx.AsyncHTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        del request.headers["authorization"]
        return self._sync.handle_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        del request.headers["authorization"]
        return await self._async.handle_async_request(request)


async def test_every_key_error_code_is_typed(
    api_for: ApiFactory, emulator: RunningEmulator
) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("api_key_missing", {"transport": _DropAuthorization()}),
        ("api_key_invalid", {"api_key": "rvya_sk_not_a_real_key"}),
        ("api_key_revoked", {"api_key": emulator.add_key(status="revoked")}),
        ("api_key_expired", {"api_key": emulator.add_key(status="expired")}),
    ]
    for code, overrides in cases:
        with pytest.raises(AuthenticationError) as caught:
            await api_for(**overrides)("get_credits")
        assert (caught.value.code, caught.value.status_code) == (code, 401)
        assert str(caught.value.request_id).startswith("req_")
    assert requests_to(emulator, "GET /api/v1/credits") == len(cases)


async def test_a_key_without_the_scope_is_denied(
    api_for: ApiFactory, emulator: RunningEmulator
) -> None:
    reader = api_for(api_key=emulator.add_key(scopes=["credits:read"]))
    assert (await reader("get_credits")).current_credits >= 0
    with pytest.raises(PermissionDeniedError) as caught:
        await reader("create_generation", FLEX)
    assert (caught.value.code, caught.value.status_code) == ("api_scope_denied", 403)
    assert emulator.counters()["tasks_created"] == 0


async def test_server_side_validation_is_typed_and_not_retried(
    api: Api, emulator: RunningEmulator
) -> None:
    unlisted = GenerationRequest(model="flux-9-ultra", prompt="x")
    with pytest.raises(ValidationFailedError) as caught:
        await api("create_generation", unlisted, validate=False)
    assert (caught.value.code, caught.value.status_code) == ("validation_failed", 400)
    assert "flux-9-ultra" in caught.value.message
    unchecked = GenerationRequest(model="flux-2-flex", prompt="x", params={"resolution": "4K"})
    with pytest.raises(ValidationFailedError, match="resolution"):
        await api("create_generation", unchecked, validate=False)
    assert requests_to(emulator, CREATE) == 2
    assert emulator.counters()["tasks_created"] == 0


async def test_a_model_typo_is_refused_locally_once_the_catalogue_is_read(
    api: Api, emulator: RunningEmulator
) -> None:
    typo = GenerationRequest(model="flux-2-flx", prompt="a red kite")
    with pytest.raises(RequestValidationError) as caught:
        await api("create_generation", typo)
    assert caught.value.fields == ["model"]
    assert "did you mean 'flux-2-flex'?" in str(caught.value)
    assert "flux-kontext-max" in str(caught.value)  # what Rivya lists
    assert requests_to(emulator, CREATE) == 0


async def test_missing_and_foreign_resources_are_not_found(
    api: Api, api_for: ApiFactory, emulator: RunningEmulator
) -> None:
    for method, missing in [("get_generation", "task_missing"), ("get_file", "file_missing")]:
        with pytest.raises(NotFoundError) as caught:
            await api(method, missing)
        assert (caught.value.code, caught.value.status_code) == ("not_found", 404)
    created = await api("create_generation", FLEX)
    stranger = api_for(api_key=emulator.add_key(account="acct_other", credits=100))
    with pytest.raises(NotFoundError):
        await stranger("get_generation", created.id)


async def test_insufficient_credits_creates_nothing(api: Api, emulator: RunningEmulator) -> None:
    emulator.set_credits(13)
    with pytest.raises(InsufficientCreditsError) as caught:
        await api("create_generation", FLEX)
    assert (caught.value.code, caught.value.status_code) == ("insufficient_credits", 402)
    assert emulator.counters()["tasks_created"] == 0
    assert (await api("get_credits")).current_credits == 13


async def test_same_key_same_body_replays_the_task_without_a_new_charge(
    api: Api, emulator: RunningEmulator
) -> None:
    first = await api("create_generation", FLEX, idempotency_key="replay-me")
    again = await api("create_generation", FLEX, idempotency_key="replay-me")
    assert again.id == first.id
    counters = emulator.counters()
    assert (counters["tasks_created"], counters["idempotent_replays"]) == (1, 1)
    assert (await api("get_credits")).current_credits == 1000 - 14


async def test_same_key_other_body_is_a_conflict_and_not_retried(
    api: Api, emulator: RunningEmulator
) -> None:
    await api("create_generation", FLEX, idempotency_key="clash")
    other = FLEX.model_copy(update={"prompt": "a lighthouse at dusk"})
    with pytest.raises(IdempotencyConflictError) as caught:
        await api("create_generation", other, idempotency_key="clash")
    assert (caught.value.status_code, caught.value.in_flight) == (409, False)
    assert requests_to(emulator, CREATE) == 2


async def test_answered_polls_leave_nothing_for_the_garbage_collector(
    emulator: RunningEmulator,
) -> None:
    # A triggerer polls thousands of waits through this client: garbage in reference cycles
    # from each poll makes the collector's passes, which stop the event loop, come often.
    async with AsyncRivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        task = await client.acreate_generation(FLEX)
        await client.aget_generation(task.id)  # connections and caches set up
        gc.collect()
        gc.disable()
        try:
            for _ in range(200):
                await client.aget_generation(task.id)
            in_cycles = gc.collect()
        finally:
            gc.enable()
    assert in_cycles < 50, f"{in_cycles} objects in reference cycles after 200 polls"


def _connections_to(emulator: RunningEmulator) -> set[tuple[str, int]]:
    """The local ends of this process's established connections to the emulator."""
    port = httpx.URL(emulator.base_url).port
    return {
        tuple(conn.laddr)
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    }


async def test_the_async_client_keeps_its_connection_for_the_next_call(
    emulator: RunningEmulator,
) -> None:
    # The async client reads each answer whole and hands the connection back: a triggerer's
    # thousands of polls must not each open a connection of their own.
    async with AsyncRivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        task = await client.acreate_generation(FLEX)
        first = _connections_to(emulator)
        for _ in range(5):
            await client.aget_generation(task.id)
        assert len(first) == 1
        assert _connections_to(emulator) == first


async def test_the_async_client_sends_more_at_once_to_a_distant_server(
    emulator: RunningEmulator,
) -> None:
    # Answers 300 ms late, as from across an ocean: the wait is the network's, so the client
    # opens more connections than the 50 it once had as a fixed limit, up to its ceiling, where
    # a fixed 50 would poll 50 times per round trip whatever was due.
    async with AsyncRivyaClient(
        api_key=emulator.api_key, base_url=emulator.base_url, max_in_flight=100
    ) as client:
        task = await client.acreate_generation(FLEX)
        emulator.set_faults(latency_seconds=0.3)
        polls = await asyncio.gather(*(client.aget_generation(task.id) for _ in range(600)))
        opened = _connections_to(emulator)
    assert {poll.id for poll in polls} == {task.id}
    assert 50 < len(opened) <= 100, len(opened)


def test_a_call_leaves_no_request_deadline_behind_in_its_thread(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    # The deadline a request starts bounds that request only: one left behind would bound
    # whatever read it next in this thread.
    before = sync_transports._DEADLINE.get()
    with RivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        task = client.wait_for_generation(client.create_generation(FLEX).id, poll_interval=0.05)
        assert sync_transports._DEADLINE.get() == before
        client.download(task.result_urls[0], tmp_path / "result")
        assert sync_transports._DEADLINE.get() == before


class _RecordedVariable:
    """Stands in for the sync client's deadline variable, and counts what sets it."""

    def __init__(self) -> None:
        self.sets = 0

    def get(self) -> None:
        return None

    def set(self, value: object) -> object:
        self.sets += 1
        return object()

    def reset(self, token: object) -> None:
        pass


async def test_an_async_call_sets_no_context_variable_in_its_task(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Async requests carry their deadlines themselves: a context variable set at every poll
    # would give each waiting trigger's task a new context map, which outlives the poll.
    recorded = _RecordedVariable()
    monkeypatch.setattr(sync_transports, "_DEADLINE", recorded)
    async with AsyncRivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        created = await client.acreate_generation(FLEX)
        task = await client.await_for_generation(created.id, poll_interval=0.05)
        await client.adownload(task.result_urls[0], tmp_path / "result")
    assert task.status is TaskStatus.SUCCEEDED
    assert recorded.sets == 0


def test_a_worker_task_against_an_http_server_builds_no_tls_context(
    emulator: RunningEmulator,
) -> None:
    # Loading the CA bundle costs a task process about 35 ms of CPU it does not need here.
    with RivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        task = client.wait_for_generation(client.create_generation(FLEX).id, poll_interval=0.05)
        assert task.status is TaskStatus.SUCCEEDED
        assert client._transports.https.built is None  # type: ignore[attr-defined]


async def test_a_create_still_in_flight_is_waited_for_and_then_replayed(
    emulator: RunningEmulator,
) -> None:
    emulator.set_faults(create_delay_seconds=0.4)
    async with AsyncRivyaClient(
        api_key=emulator.api_key, base_url=emulator.base_url, retry=RETRY
    ) as client:
        # No Retry-After on the in-flight 409 (the docs promise none): conflict_wait waits it out.
        first, second = await asyncio.gather(
            client.acreate_generation(FLEX, idempotency_key="racing", conflict_wait=30),
            client.acreate_generation(FLEX, idempotency_key="racing", conflict_wait=30),
        )
    assert first.id == second.id
    counters = emulator.counters()
    assert counters["tasks_created"] == 1
    assert counters["responses"].get("409", 0) >= 1


async def test_a_dropped_create_response_is_retried_into_one_task(
    api: Api, emulator: RunningEmulator
) -> None:
    emulator.set_faults(drop_next_creates=1)
    created = await api("create_generation", FLEX)
    counters = emulator.counters()
    assert counters["dropped_responses"] == 1
    assert counters["tasks_created"] == 1
    assert counters["idempotent_replays"] == 1
    assert counters["credits_reserved"] == 14
    assert (await api("get_generation", created.id)).id == created.id


async def test_rate_limits_are_retried_after_the_servers_pause(
    api: Api, emulator: RunningEmulator
) -> None:
    emulator.set_faults(rate_limited_next=2, retry_after_seconds=2)
    assert (await api("get_credits")).current_credits == 1000
    # Never sooner than the server asked, plus a random extra of at most as much again.
    first, second = api.sleeps
    assert 2.0 <= first <= 4.0
    assert 2.0 <= second <= 6.0  # the extra's range doubles on the second 429 in a row
    assert requests_to(emulator, "GET /api/v1/credits") == 3


async def test_rate_limit_outlasting_the_retry_budget_surfaces(
    api: Api, emulator: RunningEmulator
) -> None:
    emulator.set_faults(rate_limited_next=10, retry_after_seconds=1)
    with pytest.raises(RateLimitedError) as caught:
        await api("get_credits")
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 1)
    assert requests_to(emulator, "GET /api/v1/credits") == RETRY.max_attempts


async def test_server_errors_are_retried(api: Api, emulator: RunningEmulator) -> None:
    emulator.set_faults(server_errors_next=2)
    assert (await api("get_credits")).current_credits == 1000
    assert len(api.sleeps) == 2
    emulator.set_faults(server_errors_next=5)
    with pytest.raises(ServerError) as caught:
        await api("get_credits")
    assert (caught.value.code, caught.value.status_code) == ("internal_error", 500)


async def test_a_disabled_api_is_retried_then_reported(api: Api, emulator: RunningEmulator) -> None:
    emulator.set_faults(api_disabled=True)
    with pytest.raises(ServiceUnavailableError) as caught:
        await api("get_credits")
    assert (caught.value.code, caught.value.status_code) == ("public_api_disabled", 503)
    assert caught.value.retry_after is not None
    assert requests_to(emulator, "GET /api/v1/credits") == RETRY.max_attempts


async def test_read_timeout_reaches_the_wire(
    api_for: ApiFactory, emulator: RunningEmulator
) -> None:
    emulator.set_faults(latency_seconds=0.5)
    impatient = api_for(timeouts=Timeouts(connect=2, read=0.1, write=2, pool=2))
    with pytest.raises(RivyaTransportError, match="ReadTimeout") as caught:
        await impatient("get_credits")
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_file_objects_and_bytes_upload_under_the_given_name(api: Api) -> None:
    from_stream = await api("upload_file", io.BytesIO(image_bytes("jpeg")), name="a.jpg")
    from_bytes = await api("upload_file", image_bytes("webp"), name="b.webp")
    assert (from_stream.name, from_stream.mime_type) == ("a.jpg", "image/jpeg")
    assert (from_bytes.name, from_bytes.mime_type) == ("b.webp", "image/webp")
