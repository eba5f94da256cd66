"""RivyaHook: Connection to client settings, connection test, and the shared async clients."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from typing import Any

import pytest

from rivya_provider.client import (
    DEFAULT_BASE_URL,
    AsyncRivyaClient,
    RequestValidationError,
    RetryPolicy,
    ServerError,
    Timeouts,
)
from rivya_provider.emulator import RunningEmulator
from rivya_provider.hooks.rivya import (
    ClientSettings,
    ConnectionExtras,
    RivyaHook,
    base_url_of,
    settings_from_connection,
    shared_async_client,
)
from tests.emulator_fixtures import connection_json
from tests.unit.airflow.conftest import CONN_ENV, CONN_ID

SECRET = "rvya_sk_hook_secret_0123456789"


def make_connection(
    *,
    password: str | None = SECRET,
    host: str | None = "rivya.ai",
    port: int | None = None,
    login: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    from airflow.sdk import Connection

    return Connection(
        conn_id="rivya_test",
        conn_type="rivya",
        host=host,
        port=port,
        login=login,
        password=password,
        extra=json.dumps(extra) if extra is not None else None,
    )


# --- base URL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("rivya.ai", None, "https://rivya.ai"),
        ("rivya.ai/", None, "https://rivya.ai"),
        ("api.example.com", 8443, "https://api.example.com:8443"),
        ("127.0.0.1", 8765, "http://127.0.0.1:8765"),
        ("127.0.0.2", None, "http://127.0.0.2"),
        ("localhost", 8765, "http://localhost:8765"),
        ("[::1]:8765", None, "http://[::1]:8765"),
        ("10.0.0.5", 80, "https://10.0.0.5:80"),
        ("", None, DEFAULT_BASE_URL),
        ("   ", None, DEFAULT_BASE_URL),
        (None, None, DEFAULT_BASE_URL),
        ("http://rivya.internal", None, "http://rivya.internal"),
        ("https://127.0.0.1:9000/", None, "https://127.0.0.1:9000"),
        ("http://127.0.0.1", 9000, "http://127.0.0.1:9000"),
        # Port 0 is no port (the workaround for the Test button of Airflow 3.3.2).
        ("rivya.ai", 0, "https://rivya.ai"),
        ("http://127.0.0.1:8765", 0, "http://127.0.0.1:8765"),
        ("https://gateway.example.com:8443/rivya", 0, "https://gateway.example.com:8443/rivya"),
    ],
)
def test_base_url_of(host: str | None, port: int | None, expected: str) -> None:
    assert base_url_of(host, port) == expected


def test_bracketed_ipv6_loopback_without_port_in_host_means_http() -> None:
    assert base_url_of("[::1]", 8765) == "http://[::1]:8765"


def test_port_goes_before_a_path_prefix() -> None:
    url = base_url_of("https://gateway.example.com/rivya", 8443)
    assert url == "https://gateway.example.com:8443/rivya"


# --- settings_from_connection ----------------------------------------------------------------


def test_settings_take_the_key_from_the_password_and_the_url_from_the_host() -> None:
    settings = settings_from_connection(make_connection(password=f"  {SECRET}\n", port=8443))
    assert settings.api_key == SECRET
    assert settings.base_url == "https://rivya.ai:8443"
    assert settings.timeouts == Timeouts()
    assert settings.retry == RetryPolicy()


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_password_names_the_password_field(password: str | None) -> None:
    # A key in the login field is not picked up: the password is the only place for it.
    conn = make_connection(password=password, login=SECRET)
    with pytest.raises(RequestValidationError) as caught:
        settings_from_connection(conn)
    assert caught.value.fields == ["password"]
    assert "rivya_test" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_unknown_extra_names_the_key_and_lists_the_allowed_ones() -> None:
    conn = make_connection(extra={"timeot": 5})
    with pytest.raises(RequestValidationError) as caught:
        settings_from_connection(conn)
    assert "extra.timeot" in caught.value.fields
    message = str(caught.value)
    assert "timeot" in message
    for allowed in ConnectionExtras.model_fields:
        assert allowed in message


def test_a_key_pasted_into_the_extras_is_not_echoed() -> None:
    conn = make_connection(extra={"api_key": SECRET})
    with pytest.raises(RequestValidationError) as caught:
        settings_from_connection(conn)
    assert "api_key" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"timeout": 0}, "extra.timeout"),
        ({"max_attempts": 51}, "extra.max_attempts"),
        ({"requests_per_second": 0}, "extra.requests_per_second"),
        ({"retry_budget": -1}, "extra.retry_budget"),
        ({"backoff_max": -1}, "extra.backoff_max"),
        ({"connect_timeout": "soon"}, "extra.connect_timeout"),
    ],
)
def test_bad_extra_values_name_the_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        settings_from_connection(make_connection(extra=extra))
    assert field in caught.value.fields


def test_null_extras_from_empty_form_fields_mean_defaults() -> None:
    conn = make_connection(extra=dict.fromkeys(ConnectionExtras.model_fields))
    settings = settings_from_connection(conn)
    assert settings.timeouts == Timeouts()
    assert settings.retry == RetryPolicy()


def test_extras_reach_the_client_settings() -> None:
    extra = {
        "timeout": 7.5,
        "connect_timeout": 2,
        "max_attempts": 3,
        "backoff_max": 0,
        "retry_after_cap": 4,
    }
    settings = settings_from_connection(make_connection(extra=extra))
    assert settings.timeouts == Timeouts(connect=2, read=7.5, write=7.5, pool=Timeouts().pool)
    # 0 is a real value for the backoff (no pause), not "use the default".
    assert settings.retry == RetryPolicy(max_attempts=3, backoff_max=0, retry_after_cap=4)


def test_hook_client_is_built_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "rivya",
                "host": "rivya.example",
                "password": SECRET,
                "extra": {"timeout": 9, "max_attempts": 2},
            }
        ),
    )
    hook = RivyaHook(rivya_conn_id=CONN_ID)
    config = hook.get_conn().config
    assert hook.get_conn() is hook.client
    assert config.base_url == "https://rivya.example"
    assert config.api_key == SECRET
    assert config.timeouts == hook.settings.timeouts
    assert config.timeouts.read == 9
    assert config.retry.max_attempts == 2
    first = hook.client
    hook.close()
    assert hook.client is not first  # closed clients are not handed out again
    hook.close()


def test_retry_extras_reach_the_wire(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(emulator, max_attempts=1))
    emulator.set_faults(server_errors_next=1)
    hook = RivyaHook(rivya_conn_id=CONN_ID)
    with pytest.raises(ServerError):
        hook.client.get_credits()
    hook.close()
    assert emulator.counters()["requests"]["GET /api/v1/credits"] == 1

    monkeypatch.setenv(CONN_ENV, connection_json(emulator, max_attempts=2, backoff_max=0))
    emulator.set_faults(server_errors_next=1)
    hook = RivyaHook(rivya_conn_id=CONN_ID)
    assert hook.client.get_credits().current_credits == 1000
    hook.close()
    assert emulator.counters()["requests"]["GET /api/v1/credits"] == 3


# --- connections from the environment (no metadata DB, no supervisor) ------------------------


def test_connection_from_env_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONN_ENV, "rivya://:rvya_sk_abc@127.0.0.1:8765")
    settings = RivyaHook(rivya_conn_id=CONN_ID).settings
    assert settings.base_url == "http://127.0.0.1:8765"
    assert settings.api_key == "rvya_sk_abc"


def test_connection_from_env_uri_with_extras_in_the_query(monkeypatch: pytest.MonkeyPatch) -> None:
    # URI extras arrive as strings; they must still be read as numbers.
    monkeypatch.setenv(CONN_ENV, "rivya://:rvya_sk_abc@rivya.ai?max_attempts=2&timeout=7.5")
    settings = RivyaHook(rivya_conn_id=CONN_ID).settings
    assert settings.base_url == "https://rivya.ai"
    assert settings.retry.max_attempts == 2
    assert settings.timeouts.read == 7.5


def test_connection_from_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "rivya",
                "host": "http://127.0.0.1:9999",
                "password": "rvya_sk_json",
                "extra": {"retry_after_cap": 3},
            }
        ),
    )
    settings = RivyaHook(rivya_conn_id=CONN_ID).settings
    assert settings.base_url == "http://127.0.0.1:9999"
    assert settings.api_key == "rvya_sk_json"
    assert settings.retry.retry_after_cap == 3


async def test_async_lookup_from_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        CONN_ENV, json.dumps({"conn_type": "rivya", "host": "localhost", "password": SECRET})
    )
    hook = RivyaHook(rivya_conn_id=CONN_ID)
    settings = await hook.aget_settings()
    assert settings.base_url == "http://localhost"
    assert settings.api_key == SECRET
    client = await hook.aget_client()
    assert client is shared_async_client(settings)
    await client.aclose()


def test_default_connection_id() -> None:
    assert RivyaHook().rivya_conn_id == "rivya_default"


# --- secrets ---------------------------------------------------------------------------------


def test_reprs_never_show_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        CONN_ENV, json.dumps({"conn_type": "rivya", "host": "rivya.ai", "password": SECRET})
    )
    hook = RivyaHook(rivya_conn_id=CONN_ID)
    settings = hook.settings
    assert settings.api_key == SECRET  # it is there ...
    for text in (repr(hook), repr(settings), str(settings), repr(hook.client)):
        assert SECRET not in text  # ... but never shown
    assert CONN_ID in repr(hook)
    hook.close()


def test_error_texts_never_show_the_key() -> None:
    bad_extra = make_connection(extra={"timeout": -3, "max_attempts": "many"})
    with pytest.raises(RequestValidationError) as caught:
        settings_from_connection(bad_extra)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


# --- test_connection -------------------------------------------------------------------------


def test_test_connection_reports_the_balance(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(emulator))
    ok, message = RivyaHook(rivya_conn_id=CONN_ID).test_connection()
    assert ok is True
    assert "1000 credits" in message
    assert emulator.base_url in message
    counters = emulator.counters()
    assert counters["requests"] == {"GET /api/v1/credits": 1}  # free and read-only
    assert counters["credits_reserved"] == 0


def test_test_connection_with_port_zero_uses_the_base_url_port(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {
        "conn_type": "rivya",
        "host": emulator.base_url,
        "port": 0,
        "password": emulator.api_key,
    }
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    ok, message = RivyaHook(rivya_conn_id=CONN_ID).test_connection()
    assert ok is True, message
    assert message == f"Connected to {emulator.base_url}: 1000 credits"


def test_test_connection_with_a_wrong_key_names_the_code_and_request(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "rvya_sk_not_a_real_key_987654"
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps({"conn_type": "rivya", "host": emulator.base_url, "password": wrong}),
    )
    ok, message = RivyaHook(rivya_conn_id=CONN_ID).test_connection()
    assert ok is False
    assert "api_key_invalid" in message
    assert "requestId req_" in message
    # What to fix, and where: the password of this connection.
    assert f"the password of the Airflow connection {CONN_ID!r}: set that password" in message
    assert wrong not in message
    assert emulator.counters()["requests"] == {"GET /api/v1/credits": 1}  # 401 is not retried


def test_test_connection_with_a_misconfigured_connection_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "rivya", "host": "rivya.ai"}))
    ok, message = RivyaHook(rivya_conn_id=CONN_ID).test_connection()
    assert ok is False
    assert "password" in message


# --- shared async clients --------------------------------------------------------------------


def _settings(key: str = SECRET, **extra: Any) -> ClientSettings:
    return settings_from_connection(make_connection(password=key, extra=extra or None))


def test_shared_async_client_is_per_loop_and_per_settings() -> None:
    async def client_for(settings: ClientSettings) -> AsyncRivyaClient:
        return shared_async_client(settings)

    async def close_all() -> None:
        for settings in (_settings(), _settings(max_attempts=2), _settings("rvya_sk_other")):
            await shared_async_client(settings).aclose()

    loop, other_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first = loop.run_until_complete(client_for(_settings()))
        # Equal settings read from another Connection object share the client.
        assert loop.run_until_complete(client_for(_settings())) is first
        assert loop.run_until_complete(client_for(_settings(max_attempts=2))) is not first
        assert loop.run_until_complete(client_for(_settings("rvya_sk_other"))) is not first
        assert other_loop.run_until_complete(client_for(_settings())) is not first
        loop.run_until_complete(close_all())
        other_loop.run_until_complete(close_all())
    finally:
        loop.close()
        other_loop.close()


def test_the_loops_shared_clients_are_closed_when_it_shuts_down(
    emulator: RunningEmulator, recwarn: pytest.WarningsRecorder
) -> None:
    warnings.simplefilter("always", ResourceWarning)
    settings = settings_from_connection(
        make_connection(password=emulator.api_key, host=emulator.base_url)
    )

    async def poll() -> AsyncRivyaClient:
        client = shared_async_client(settings)
        await client.aget_credits()
        return client

    client = asyncio.run(poll())
    gc.collect()
    # Left open, aiohttp would log "Unclosed client session" as an error at the triggerer's exit.
    assert client.is_closed
    assert not [w for w in recwarn if "Unclosed" in str(w.message)]
    # A new loop gets clients of its own.
    assert asyncio.run(poll()) is not client


def test_shared_async_client_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        shared_async_client(_settings())
