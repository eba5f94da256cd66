"""The client's request rules, checked against httpx.MockTransport for both flavours."""

from __future__ import annotations

import logging
import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from rivya_provider import __version__
from rivya_provider.client import (
    AuthenticationError,
    GenerationRequest,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestValidationError,
    RivyaAPIError,
    RivyaClient,
    RivyaTransportError,
    ServerError,
    ServiceUnavailableError,
    Timeouts,
    UnexpectedResponseError,
    ValidationFailedError,
)
from rivya_provider.client.config import normalise_base_url
from rivya_provider.client.rules.answers import parse_retry_after
from tests.clients import Api, make_api
from tests.unit.conftest import API_KEY, BASE_URL, TASK, Script, envelope, task

pytestmark = pytest.mark.no_airflow

FLEX = GenerationRequest(model="flux-2-flex", prompt="a lighthouse at dawn")


async def test_authenticated_call_sends_key_user_agent_and_url(api: Api, script: Script) -> None:
    credits = await api("get_credits")
    assert credits.current_credits == 7
    (request,) = script.requests
    assert str(request.url) == f"{BASE_URL}/api/v1/credits"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["user-agent"] == f"airflow-provider-rivya/{__version__}"
    assert request.headers["accept"] == "application/json"


async def test_a_calls_own_headers_stay_with_that_call(api: Api, script: Script) -> None:
    # The client's headers and the key are merged once; one call's additions must not stick.
    script.answers = [
        httpx.Response(201, json=TASK),
        httpx.Response(200, json={"current_credits": 7}),
    ]
    await api("create_generation", FLEX, idempotency_key="dag.task.run.0")
    await api("get_credits")
    create, credits = script.requests
    for request in (create, credits):
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["user-agent"] == f"airflow-provider-rivya/{__version__}"
        assert request.headers["accept"] == "application/json"
        assert "gzip" in request.headers["accept-encoding"]
    assert create.headers["idempotency-key"] == "dag.task.run.0"
    assert "idempotency-key" not in credits.headers
    assert "content-type" not in credits.headers


async def test_the_catalogue_is_fetched_with_the_key(api: Api, script: Script) -> None:
    # /models is public, but an account may see models others do not.
    script.answers = [httpx.Response(200, json={"object": "list", "data": [{"id": "m1"}]})]
    models = await api("list_models")
    assert [m.id for m in models] == ["m1"]
    assert script.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


async def test_timeouts_reach_the_wire(flavour: str) -> None:
    script = Script(httpx.Response(200, json={"current_credits": 1}))
    api = make_api(
        flavour,
        api_key=API_KEY,
        base_url=BASE_URL,
        handler=script,
        timeouts=Timeouts(connect=1.5, read=7, write=8, pool=2.5),
    )
    await api("get_credits")
    await api.close()
    assert script.requests[0].extensions["timeout"] == {
        "connect": 1.5,
        "read": 7,
        "write": 8,
        "pool": 2.5,
    }


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (401, "api_key_missing", AuthenticationError),
        (401, "api_key_invalid", AuthenticationError),
        (401, "api_key_revoked", AuthenticationError),
        (401, "api_key_expired", AuthenticationError),
        (403, "api_scope_denied", PermissionDeniedError),
        (400, "validation_failed", ValidationFailedError),
        (404, "not_found", NotFoundError),
        (409, "idempotency_conflict", IdempotencyConflictError),
        (402, "insufficient_credits", InsufficientCreditsError),
        (400, "some_new_code", RivyaAPIError),
    ],
)
async def test_permanent_errors_are_typed_and_not_retried(
    api: Api, script: Script, status: int, code: str, error_class: type[RivyaAPIError]
) -> None:
    script.answers = [envelope(status, code, "it went wrong")]
    with pytest.raises(error_class) as caught:
        await api("get_credits")
    error = caught.value
    assert type(error) is error_class
    assert (error.status_code, error.code, error.message, error.request_id) == (
        status,
        code,
        "it went wrong",
        f"req_{code}",
    )
    assert code in str(error)
    assert f"req_{code}" in str(error)
    assert len(script.requests) == 1
    assert api.sleeps == []


@pytest.mark.parametrize(
    ("response", "error_class", "code"),
    [
        (envelope(429, "rate_limited"), RateLimitedError, "rate_limited"),
        (envelope(503, "public_api_disabled"), ServiceUnavailableError, "public_api_disabled"),
        (envelope(500, "internal_error"), ServerError, "internal_error"),
        (httpx.Response(502, text="<html>bad gateway</html>"), ServerError, "http_502"),
    ],
)
async def test_transient_errors_are_retried_until_attempts_run_out(
    api: Api, script: Script, response: httpx.Response, error_class: type[RivyaAPIError], code: str
) -> None:
    script.answers = [response]
    with pytest.raises(error_class) as caught:
        await api("get_credits")
    assert caught.value.code == code
    assert len(script.requests) == 4
    assert len(api.sleeps) == 3
    # Exponential backoff with full jitter: attempt n waits at most min(8, 0.5 * 2**n).
    for attempt, pause in enumerate(api.sleeps, start=1):
        assert 0 <= pause <= min(8, 0.5 * 2**attempt)


async def test_retry_after_seconds_is_honoured(api: Api, script: Script) -> None:
    script.answers = [
        envelope(429, "rate_limited", **{"Retry-After": "3"}),
        envelope(503, "public_api_disabled", **{"Retry-After": "1.5"}),
        httpx.Response(200, json={"current_credits": 5}),
    ]
    assert (await api("get_credits")).current_credits == 5
    # Never earlier than asked, plus a random extra (at most the wait, at least up to 1 s) so
    # that clients told the same Retry-After do not all come back in the same instant.
    first, second = api.sleeps
    assert 3.0 <= first <= 6.0
    assert 1.5 <= second <= 1.5 + 3.0  # the extra's range doubles on the second in a row


async def test_retry_after_is_capped(api: Api, script: Script) -> None:
    script.answers = [
        envelope(429, "rate_limited", **{"Retry-After": "900"}),
        httpx.Response(200, json={"current_credits": 5}),
    ]
    await api("get_credits")
    (pause,) = api.sleeps
    assert 30.0 <= pause <= 30.0 + 8.0  # the cap, plus at most backoff_max of jitter


def test_retry_after_http_date_is_read_relative_to_now() -> None:
    now = datetime(2026, 5, 11, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=20), usegmt=True)
    assert parse_retry_after(header, now=now.timestamp()) == 20
    assert parse_retry_after("not a date") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-4") == 0


async def test_in_flight_idempotency_conflict_is_retried_other_conflicts_are_not(
    api: Api, script: Script
) -> None:
    script.answers = [
        envelope(409, "idempotency_conflict", "still running", **{"Retry-After": "1"}),
        httpx.Response(201, json=TASK),
    ]
    assert (await api("create_generation", FLEX)).id == "task_abc"
    (pause,) = api.sleeps
    assert 1.0 <= pause <= 2.0
    script.answers = [envelope(409, "idempotency_conflict", "different body")]
    with pytest.raises(IdempotencyConflictError) as caught:
        await api("create_generation", FLEX, idempotency_key="k-1")
    assert caught.value.in_flight is False
    assert len(script.requests) == 3
    # Without conflict_wait nothing is waited out, but the error names the refused key.
    assert caught.value.idempotency_key == "k-1"
    assert "a generation may exist under this key already" in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
)
async def test_transport_errors_are_retried_then_wrapped(
    api: Api, script: Script, failure: Exception
) -> None:
    script.answers = [failure]
    with pytest.raises(RivyaTransportError) as caught:
        await api("get_credits")
    assert caught.value.__cause__ is failure
    assert "GET /api/v1/credits" in str(caught.value)
    assert len(script.requests) == 4


async def test_every_attempt_of_one_create_reuses_its_idempotency_key(
    api: Api, script: Script
) -> None:
    script.answers = [
        httpx.ConnectError("reset"),
        envelope(500, "internal_error"),
        httpx.Response(201, json=TASK),
    ]
    created = await api("create_generation", FLEX)
    assert created.id == "task_abc"
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(script.requests) == 3
    assert len(keys) == 1
    await api("create_generation", FLEX)
    assert script.requests[-1].headers["idempotency-key"] not in keys


async def test_given_idempotency_key_and_body_reach_the_wire(api: Api, script: Script) -> None:
    script.answers = [httpx.Response(201, json=TASK)]
    request = GenerationRequest(
        model="flux-kontext-pro",
        prompt="make it blue",
        params={"enableTranslation": False, "safetyTolerance": "3"},
        client_request_id="trace-1",
    )
    await api("create_generation", request, idempotency_key="dag.task.run.0")
    (sent,) = script.requests
    assert sent.headers["idempotency-key"] == "dag.task.run.0"
    assert sent.headers["content-type"] == "application/json"
    assert script.json_bodies() == [
        {
            "model": "flux-kontext-pro",
            "prompt": "make it blue",
            "params": {"enableTranslation": "false", "safetyTolerance": 3},
            "client_request_id": "trace-1",
        }
    ]


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
async def test_bad_idempotency_key_is_rejected_before_sending(
    api: Api, script: Script, key: str
) -> None:
    with pytest.raises(RequestValidationError, match="idempotency_key"):
        await api("create_generation", FLEX, idempotency_key=key)
    assert script.requests == []


async def test_invalid_params_are_rejected_before_any_request(api: Api, script: Script) -> None:
    bad = GenerationRequest(model="flux-2-flex", prompt="x", params={"resolution": "4K"})
    with pytest.raises(RequestValidationError) as caught:
        await api("create_generation", bad)
    assert caught.value.fields == ["params.resolution"]
    assert "'4K'" in str(caught.value)
    assert "1K, 2K" in str(caught.value)
    assert script.requests == []


async def test_unknown_model_is_sent_as_is(api: Api, script: Script) -> None:
    script.answers = [httpx.Response(201, json={**TASK, "model": "flux-9-ultra"})]
    request = GenerationRequest(model="flux-9-ultra", prompt="", params={"anything": [1, 2]})
    await api("create_generation", request)
    assert script.json_bodies()[0] == {
        "model": "flux-9-ultra",
        "prompt": "",
        "params": {"anything": [1, 2]},
    }


async def test_validation_can_be_turned_off_for_params_newer_than_the_catalogue(
    api: Api, script: Script
) -> None:
    script.answers = [httpx.Response(201, json=TASK)]
    request = GenerationRequest(model="flux-2-flex", prompt="x", params={"seed": 42})
    await api("create_generation", request, validate=False)
    assert script.json_bodies()[0]["params"] == {"seed": 42}


async def test_unexpected_success_body_is_a_clear_error(api: Api, script: Script) -> None:
    script.answers = [httpx.Response(200, json={"credits": "lots"})]
    with pytest.raises(UnexpectedResponseError, match="not a Credits"):
        await api("get_credits")


async def test_responses_ignore_unknown_fields(api: Api, script: Script) -> None:
    script.answers = [task(status="processing", brand_new_field={"x": 1})]
    fetched = await api("get_generation", "task_abc")
    assert fetched.status == "processing"
    assert not fetched.status.is_terminal


async def test_the_key_never_appears_in_reprs_errors_or_logs(
    api: Api, script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script.answers = [envelope(503, "public_api_disabled", **{"Retry-After": "1"})]
    with pytest.raises(ServiceUnavailableError) as caught:
        await api("get_credits")
    texts = [repr(api.client), repr(api.client.config), str(caught.value), repr(caught.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("retrying" in text for text in texts)
    assert all(API_KEY not in text for text in texts)


@pytest.mark.parametrize(
    "error",
    [
        RateLimitedError(
            status_code=429, code="rate_limited", message="m", request_id="r", retry_after=2
        ),
        RequestValidationError([]),
    ],
)
def test_errors_survive_pickling(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://rivya.ai", "https://rivya.ai"),
        ("https://rivya.ai/", "https://rivya.ai"),
        ("https://rivya.ai/api/v1/", "https://rivya.ai"),
        ("rivya.ai", "https://rivya.ai"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
    ],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    assert normalise_base_url(given) == expected


@pytest.mark.parametrize("bad", ["ftp://rivya.ai", "file:///etc/passwd"])
def test_base_url_must_be_http(bad: str) -> None:
    with pytest.raises(ValueError, match="http"):
        normalise_base_url(bad)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="api_key: must be a Rivya API key"):
        RivyaClient(api_key="  ")
