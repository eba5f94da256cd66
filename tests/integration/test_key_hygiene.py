"""A canary key appears in no log line (DEBUG, httpx and httpcore included), error or repr,
whatever the server answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from rivya_provider.client import AsyncRivyaClient, Limits, RetryPolicy, RivyaClient, RivyaError
from rivya_provider.hooks.rivya import RivyaHook, settings_from_connection
from tests.hostile import HostileServer, Seen, answer, drip

CANARY = "rvya_sk_CANARY_4d1e8b2f90"
ECHO = f"key={CANARY}; Authorization: Bearer {CANARY}"

SCRIPTS = {
    "401 echo": answer(401, {"error": {"code": "api_key_invalid", "message": ECHO}}),
    "500 echo": answer(500, ECHO),
    "429 echo": answer(429, {"error": {"code": "rate_limited", "message": ECHO}}, Retry_After="0"),
    "200 envelope echo": answer(200, {"error": {"code": "boom", "message": ECHO}}),
    "200 garbage echo": answer(200, ECHO),
    "redirect echo": answer(302, b"", Location=f"http://10.0.0.1/{CANARY}"),
    "drip": drip(
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n" + CANARY.encode(), every=0.2, limit=5
    ),
}


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer().running() as running:
        yield running


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "rivya_provider", "airflow"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog


def _texts(error: BaseException) -> str:
    chain, seen = [], error
    while seen is not None:
        chain += [str(seen), repr(seen), repr(getattr(seen, "__dict__", ""))]
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return " ".join(chain)


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_no_answer_puts_the_key_in_logs_or_errors(
    case: str, server: HostileServer, every_log: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    server.script = SCRIPTS[case]
    limits = Limits(request_deadline=1.0, download_deadline=1.0)
    retry = RetryPolicy(max_attempts=2, backoff_initial=0)
    errors: list[BaseException] = []
    with RivyaClient(api_key=CANARY, base_url=server.base_url, retry=retry, limits=limits) as api:
        assert CANARY not in repr(api)
        for call in (
            api.get_credits,
            lambda: api.get_generation("task_1"),
            lambda: api.download(server.url("/r.png"), tmp_path / "r.png"),
        ):
            try:
                call()
            except RivyaError as exc:
                errors.append(exc)
    assert errors, "every scripted answer is an error"
    assert CANARY not in every_log.text
    for error in errors:
        assert CANARY not in _texts(error)


def test_the_async_client_logs_no_key(
    server: HostileServer, every_log: pytest.LogCaptureFixture
) -> None:
    server.script = SCRIPTS["500 echo"]

    async def run() -> str:
        retry = RetryPolicy(max_attempts=3, backoff_initial=0)
        async with AsyncRivyaClient(api_key=CANARY, base_url=server.base_url, retry=retry) as api:
            try:
                await api.aget_credits()
            except RivyaError as exc:
                return _texts(exc)
        return ""

    text = asyncio.run(run())
    assert text
    assert CANARY not in text
    assert CANARY not in every_log.text


@pytest.mark.parametrize(
    "password",
    [f"{CANARY}\nrest", f"{CANARY}\x00", f"{CANARY}é", f"{CANARY} tail", f"\t{CANARY}\r\nX: y"],
)
def test_a_malformed_key_is_refused_naming_password_only(password: str) -> None:
    from airflow.sdk import Connection

    conn = Connection(conn_id="k", conn_type="rivya", host="rivya.ai", password=password)
    with pytest.raises(RivyaError) as caught:
        settings_from_connection(conn)
    assert "password" in str(caught.value)
    assert CANARY not in _texts(caught.value)


def test_test_connection_shows_no_echoed_key(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script = SCRIPTS["401 echo"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_RIVYA_CANARY",
        f'{{"conn_type": "rivya", "host": "{server.base_url}", "password": "{CANARY}"}}',
    )
    ok, message = RivyaHook(rivya_conn_id="rivya_canary").test_connection()
    assert not ok
    assert "api_key_invalid" in message
    assert CANARY not in message


def test_the_key_never_reaches_a_foreign_host(server: HostileServer) -> None:
    with HostileServer().running() as foreign:

        async def to_foreign(seen: Seen, writer: asyncio.StreamWriter) -> None:
            writer.write(
                f"HTTP/1.1 307 Go\r\nLocation: {foreign.url('/steal')}\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )

        server.script = to_foreign
        with (
            RivyaClient(
                api_key=CANARY, base_url=server.base_url, retry=RetryPolicy(max_attempts=1)
            ) as api,
            pytest.raises(RivyaError),
        ):
            api.get_credits()
        assert foreign.seen == []
