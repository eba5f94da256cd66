"""A hostile or broken server cannot leak the key, reach other hosts or paths, exhaust memory,
or outlive a timeout: one case per class, against a raw-socket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rivya_provider.client import (
    AsyncRivyaClient,
    AuthenticationError,
    GenerationTask,
    Limits,
    RequestValidationError,
    RetryPolicy,
    RivyaClient,
    RivyaTransportError,
    UnexpectedResponseError,
)
from rivya_provider.client.errors import (
    InsufficientCreditsError,
    ResponseTooLargeError,
    ServerError,
    UnsafeURLError,
)
from rivya_provider.links import RivyaResultLink
from rivya_provider.outputs import copy_results
from tests.clients import FLAVOURS, make_api
from tests.hostile import HostileServer, Seen, answer, drip, gzip_bomb, raw, response

if TYPE_CHECKING:
    from rivya_provider.triggers.generation import RivyaGenerationTrigger

KEY = "rvya_sk_hostile_canary_7f3a9c"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
#: Seconds one API request of the triggers below may take: their servers would take far longer.
REQUEST_DEADLINE = 2.0


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer().running() as running:
        yield running


@pytest.fixture
def other() -> Iterator[HostileServer]:
    """A second local server: another port, as a metadata service would be."""
    with HostileServer(script=answer(200, PNG, Content_Type="image/png")).running() as running:
        yield running


def client(server: HostileServer, **kwargs: Any) -> RivyaClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=1))
    return RivyaClient(api_key=KEY, base_url=server.base_url, sleep=lambda _: None, **kwargs)


def async_client(server: HostileServer, limits: Limits) -> AsyncRivyaClient:
    return AsyncRivyaClient(
        api_key=KEY, base_url=server.base_url, retry=RetryPolicy(max_attempts=1), limits=limits
    )


async def get_task(
    server: HostileServer, flavour: str, *, limits: Limits | None = None
) -> GenerationTask:
    """``task_1`` read by the client of ``flavour``: each reads answers its own way."""
    api = make_api(
        flavour,
        api_key=KEY,
        base_url=server.base_url,
        retry=RetryPolicy(max_attempts=1),
        limits=limits,
    )
    try:
        return await api("get_generation", "task_1")  # type: ignore[no-any-return]
    finally:
        await api.close()


both_clients = pytest.mark.parametrize("flavour", FLAVOURS)


def task_with(urls: list[str], task_id: str = "task_1") -> dict[str, Any]:
    return {"id": task_id, "status": "succeeded", "result": {"urls": urls}}


# --- key leaks ---------------------------------------------------------------------------------


def test_a_401_echoing_the_key_is_redacted(server: HostileServer) -> None:
    server.script = answer(
        401, {"error": {"code": "api_key_invalid", "message": f"key {KEY} unknown (Bearer {KEY})"}}
    )
    with client(server) as api, pytest.raises(AuthenticationError) as caught:
        api.get_credits()
    text = f"{caught.value} {caught.value!r} {caught.value.message}"
    assert KEY not in text
    assert "api_key_invalid" in text


def test_a_5xx_echoing_the_key_stays_redacted_through_retries(
    server: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script = answer(500, f"internal error for Authorization: Bearer {KEY}")
    caplog.set_level("DEBUG")
    retry = RetryPolicy(max_attempts=3, backoff_initial=0)
    with client(server, retry=retry) as api, pytest.raises(ServerError) as caught:
        api.get_credits()
    assert len(server.seen) == 3
    assert KEY not in caplog.text
    assert KEY not in str(caught.value)


# --- paths and URLs ----------------------------------------------------------------------------


def test_task_ids_are_percent_encoded_in_paths(server: HostileServer) -> None:
    server.script = answer(200, {"id": "a", "status": "queued"})
    with client(server) as api:
        api.get_generation("task:a@b+c")
        for hostile in ("..", "../credits", "a/../../credits", "a?b", "a#b", "a%2Fb"):
            with pytest.raises(RequestValidationError, match="task_id"):
                api.get_generation(hostile)
    assert [seen.path for seen in server.seen] == ["/api/v1/generations/task%3Aa%40b%2Bc"]


def test_a_hostile_task_id_cannot_place_files_outside_output_path(
    server: HostileServer, tmp_path: Path
) -> None:
    server.script = answer(200, PNG, Content_Type="image/png")
    out = tmp_path / "out"
    task = GenerationTask.model_validate(
        task_with([server.url("/img.png")], task_id="../../../../tmp/x/pwn")
    )
    with client(server) as api:
        copies = copy_results(api, task, str(out), max_bytes=10_000)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert written == [Path(copies[0].path)]
    assert Path(copies[0].path).parent == out


def test_results_on_another_local_port_are_refused(
    server: HostileServer, other: HostileServer, tmp_path: Path
) -> None:
    with client(server) as api, pytest.raises(UnsafeURLError, match="private"):
        api.download(other.url("/latest/meta-data/iam"), tmp_path / "x")
    assert other.seen == []
    assert list(tmp_path.iterdir()) == []


def test_redirects_to_another_local_port_or_scheme_are_refused(
    server: HostileServer, other: HostileServer, tmp_path: Path
) -> None:
    for target in (other.url("/latest/meta-data"), "file:///etc/passwd"):
        server.script = answer(302, b"", Location=target)
        with client(server) as api, pytest.raises(UnsafeURLError):
            api.download(server.url("/img.png"), tmp_path / "x")
    assert other.seen == []
    assert list(tmp_path.iterdir()) == []


def test_an_allow_listed_host_may_serve_results(
    server: HostileServer, other: HostileServer, tmp_path: Path
) -> None:
    with client(server, allowed_hosts=[f"127.0.0.1:{other.port}"]) as api:
        done = api.download(other.url("/img.png"), tmp_path / "x.png")
    assert done.size_bytes == len(PNG)


def test_a_redirect_loop_is_a_typed_error(server: HostileServer, tmp_path: Path) -> None:
    server.script = answer(302, b"", Location="/again")
    with client(server) as api, pytest.raises(UnexpectedResponseError, match="TooManyRedirects"):
        api.download(server.url("/img.png"), tmp_path / "x")
    assert len(server.seen) == Limits().max_redirects + 1


def test_downloads_carry_no_key(server: HostileServer, tmp_path: Path) -> None:
    server.script = answer(200, PNG, Content_Type="image/png")
    with client(server) as api:
        api.download(server.url("/img.png"), tmp_path / "x.png")
    assert "authorization" not in server.seen[0].headers


def test_a_javascript_result_url_is_never_the_link() -> None:
    task = GenerationTask.model_validate(task_with(["javascript:alert(1)"]))
    assert RivyaResultLink.url_for(task) == ""


# --- unbounded ---------------------------------------------------------------------------------


@both_clients
async def test_a_gzip_bomb_fails_with_bounded_memory(server: HostileServer, flavour: str) -> None:
    bomb = gzip_bomb(1024 * 1024 * 1024)
    server.script = answer(200, bomb, Content_Encoding="gzip", Content_Type="application/json")
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError):
            await get_task(server, flavour)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


@both_clients
async def test_a_huge_status_body_is_refused_before_reading(
    server: HostileServer, flavour: str
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 209715200\r\nContent-Type: application/json\r\n\r\n"

    async def script(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(head + b"{" * 65536)
        await writer.drain()

    server.script = script
    with pytest.raises(ResponseTooLargeError, match="209715200"):
        await get_task(server, flavour)


@both_clients
async def test_a_chunked_endless_body_stops_at_the_cap(server: HostileServer, flavour: str) -> None:
    async def script(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(200):  # 13 MB, beyond the 1 MB cap below
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    server.script = script
    with pytest.raises(ResponseTooLargeError):
        await get_task(server, flavour, limits=Limits(max_response_bytes=1024 * 1024))


@both_clients
async def test_a_thousand_result_urls_keep_the_first_sixteen(
    server: HostileServer, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The generation is paid: a list longer than any image model gives is cut, never refused.
    urls = [server.url(f"/{i}.png") for i in range(1000)]
    server.script = answer(200, task_with(urls))
    with caplog.at_level(logging.WARNING, logger="rivya_provider"):
        task = await get_task(server, flavour)
    assert task.result_urls == urls[:16]
    assert task.result_count == 1000
    assert "Rivya listed 1000 result URL(s); keeping 16 and leaving out 984" in caplog.text


# --- time --------------------------------------------------------------------------------------

DRIP_HEAD = b'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"id": "task_1", "status": "queued"}    '


def test_a_dripping_server_fails_the_sync_request_at_its_deadline(server: HostileServer) -> None:
    # Without a wall-clock deadline the drip completes after ~12 s and the call succeeds.
    server.script = drip(DRIP_HEAD, every=0.1, limit=60)
    with (
        client(server, limits=Limits(request_deadline=1.0)) as api,
        pytest.raises(RivyaTransportError, match="ReadTimeout"),
    ):
        api.get_generation("task_1")


async def test_a_dripping_server_fails_the_async_request_at_its_deadline(
    server: HostileServer,
) -> None:
    server.script = drip(DRIP_HEAD, every=0.1, limit=60)
    async with async_client(server, Limits(request_deadline=1.0)) as api:
        with pytest.raises(RivyaTransportError, match="ReadTimeout"):
            await api.aget_generation("task_1")


def test_a_dripping_download_fails_at_its_deadline(server: HostileServer, tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\nContent-Type: image/png\r\n\r\n"
    server.script = drip(head + b"x" * 200, every=0.05, limit=60)
    with (
        client(server, limits=Limits(download_deadline=1.0)) as api,
        pytest.raises(RivyaTransportError, match="ReadTimeout"),
    ):
        api.download(server.url("/img.png"), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


async def test_a_dripping_download_fails_at_its_deadline_in_the_async_client(
    server: HostileServer, tmp_path: Path
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\nContent-Type: image/png\r\n\r\n"
    server.script = drip(head + b"x" * 200, every=0.05, limit=60)
    async with async_client(server, Limits(download_deadline=1.0)) as api:
        with pytest.raises(RivyaTransportError, match="ReadTimeout"):
            await api.adownload(server.url("/img.png"), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def hostile_connection(server: HostileServer) -> Iterator[str]:
    conn_id = "rivya_hostile"
    env = f"AIRFLOW_CONN_{conn_id.upper()}"
    os.environ[env] = json.dumps(
        {
            "conn_type": "rivya",
            "host": server.base_url,
            "password": KEY,
            "extra": {
                "max_attempts": 1,
                "retry_after_cap": 0.2,
                "request_deadline": REQUEST_DEADLINE,
            },
        }
    )
    yield conn_id
    os.environ.pop(env, None)


def _trigger(connection_id: str, *, deadline_in: float) -> RivyaGenerationTrigger:
    """A trigger polling ``task_1`` every 0.1 s until ``deadline_in`` seconds from now."""
    from rivya_provider.triggers.generation import RivyaGenerationTrigger

    return RivyaGenerationTrigger(
        generation_id="task_1",
        deadline=time.time() + deadline_in,
        rivya_conn_id=connection_id,
        poll_interval=0.1,
    )


async def test_the_trigger_caps_retry_after(server: HostileServer, hostile_connection: str) -> None:
    server.script = answer(
        429, {"error": {"code": "rate_limited", "message": "slow down"}}, Retry_After="1000000000"
    )
    trigger = _trigger(hostile_connection, deadline_in=10.0)
    event = await trigger.watch()
    assert event.status == "timeout"
    # Capped at 0.2 s, plus a random extra whose range doubles per 429 in a row (1, 2, 4 s): four
    # polls fit in 7.6 s at most. Without the cap: one poll, a sleep to the deadline, one more.
    assert len(server.seen) >= 4


async def test_the_trigger_ends_by_its_own_clock_against_a_drip(
    server: HostileServer, hostile_connection: str
) -> None:
    # The answer would take ~40 s; the poll ends at the connection's request deadline, and with
    # the wait's deadline passed by then, the wait ends there: one poll, no second one.
    server.script = drip(DRIP_HEAD, every=0.5, limit=60)
    trigger = _trigger(hostile_connection, deadline_in=1.0)
    started = time.monotonic()
    event = await trigger.watch()
    assert event.status == "timeout"
    assert len(server.seen) == 1
    assert time.monotonic() - started < REQUEST_DEADLINE + 10, "the drip, not our clock, ended it"


# --- raw or lossy errors -----------------------------------------------------------------------


@both_clients
async def test_a_200_error_envelope_keeps_rivyas_code(server: HostileServer, flavour: str) -> None:
    server.script = answer(
        200, {"error": {"code": "insufficient_credits", "message": "top up", "requestId": "r1"}}
    )
    with pytest.raises(InsufficientCreditsError) as caught:
        await get_task(server, flavour)
    assert caught.value.request_id == "r1"


@both_clients
async def test_a_broken_gzip_answer_is_a_typed_error(server: HostileServer, flavour: str) -> None:
    server.script = answer(200, b"not gzip at all", Content_Encoding="gzip")
    with pytest.raises(UnexpectedResponseError, match="compression"):
        await get_task(server, flavour)


def test_raw_framing_garbage_is_a_transport_error(server: HostileServer) -> None:
    server.script = raw(b"NOT HTTP AT ALL\r\n\r\n")
    with client(server) as api, pytest.raises(RivyaTransportError):
        api.get_generation("task_1")


UNPARSABLE = {
    "no status line": b"NOT HTTP AT ALL\r\n\r\n",
    "broken header": b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 2\r\n\r\n{}",
    "broken chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n",
}


@pytest.mark.parametrize("framing", UNPARSABLE)
async def test_an_unparsable_answer_is_a_transport_error_for_the_async_client(
    server: HostileServer, framing: str
) -> None:
    server.script = raw(UNPARSABLE[framing])
    async with AsyncRivyaClient(
        api_key=KEY, base_url=server.base_url, retry=RetryPolicy(max_attempts=1)
    ) as api:
        with pytest.raises(RivyaTransportError, match="RemoteProtocolError"):
            await api.aget_generation("task_1")


async def test_the_trigger_waits_out_unparsable_answers(
    server: HostileServer, hostile_connection: str
) -> None:
    garbage = raw(UNPARSABLE["no status line"])
    done = answer(200, task_with(["https://cdn.example/a.png"]))

    async def script(seen: Seen, writer: asyncio.StreamWriter) -> None:
        # The generation may be paid: two garbled answers must not end the wait.
        await (garbage if len(server.seen) <= 2 else done)(seen, writer)

    server.script = script
    trigger = _trigger(hostile_connection, deadline_in=30.0)
    event = await trigger.watch()
    assert event.status == "success"
    assert len(server.seen) == 3


def test_response_helper_frames_bodies() -> None:
    assert response(200, b"ab").endswith(b"\r\n\r\nab")
