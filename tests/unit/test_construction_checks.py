"""Settings that cannot work are refused when they are built, naming the field.

A bad setting accepted at construction fails only when it is first used: a poll interval below
zero after the generation was created (and paid for), a base URL at the first request. Each case
here raises ``RequestValidationError`` at once, and a server that records requests sees none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rivya_provider.client import (
    GenerationRequest,
    GenerationTask,
    PollPolicy,
    RequestValidationError,
    RetryPolicy,
    RivyaClient,
)
from tests.hostile import HostileServer, Seen, response

KEY = "rvya_sk_test_1234"


async def _rivya(seen: Seen, writer: asyncio.StreamWriter) -> None:
    """Rivya as far as a create and its first polls: an empty catalogue, a task processing."""
    task = {"id": "task_1", "status": "queued", "model": "flux-2-flex", "reserved_credits": 14}
    if seen.path == "/api/v1/models":
        writer.write(response(200, {"object": "list", "data": []}))
    elif seen.method == "POST":
        writer.write(response(201, task))
    else:
        writer.write(response(200, {**task, "status": "processing"}))
    await writer.drain()


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer(script=_rivya).running() as running:
        yield running


# --- poll and retry policies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ({"interval": -1}, "poll.interval"),
        ({"first_delay": -1}, "poll.first_delay"),
        ({"timeout": 0}, "poll.timeout"),
    ],
)
def test_a_poll_policy_that_cannot_wait_is_refused(setting: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        PollPolicy(**setting)
    assert caught.value.fields == [field]


def generate_and_wait(base_url: str, *, poll_interval: float) -> GenerationTask:
    """Build the policy and the client, create a generation and wait for it: the whole use."""
    poll = PollPolicy(interval=poll_interval, first_delay=0)
    retry = RetryPolicy(max_attempts=1)
    with RivyaClient(api_key=KEY, base_url=base_url, poll=poll, retry=retry) as client:
        task = client.create_generation(GenerationRequest(model="flux-2-flex", prompt="p"))
        return client.wait_for_generation(task.id)


def test_a_client_with_a_negative_poll_interval_never_sends_a_create(
    server: HostileServer,
) -> None:
    # The policy must fail before the create (which costs credits), not at the first pause
    # between polls.
    with pytest.raises(RequestValidationError) as caught:
        generate_and_wait(server.base_url, poll_interval=-1)
    assert caught.value.fields == ["poll.interval"]
    assert [f"{seen.method} {seen.path}" for seen in server.seen] == []


def test_a_retry_policy_without_attempts_is_refused_naming_the_field() -> None:
    with pytest.raises(RequestValidationError) as caught:
        RetryPolicy(max_attempts=0)
    assert caught.value.fields == ["retry.max_attempts"]


# --- base URL and Connection -------------------------------------------------------------------


@pytest.mark.parametrize("base_url", ["http://", "http://rivya .ai", "http://127.0.0.1:99999"])
def test_a_base_url_that_names_no_reachable_host_is_refused(base_url: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        RivyaClient(api_key=KEY, base_url=base_url)
    assert caught.value.fields == ["base_url"]


@pytest.mark.parametrize(
    ("host", "port", "field"),
    [("rivya .ai", None, "host"), ("http://", None, "host"), ("rivya.ai", 99999, "port")],
)
def test_a_connection_that_names_no_reachable_host_is_refused(
    host: str, port: int | None, field: str
) -> None:
    from airflow.sdk import Connection

    from rivya_provider.hooks.rivya import settings_from_connection

    conn = Connection(
        conn_id="rivya_misspelt", conn_type="rivya", host=host, port=port, password=KEY
    )
    with pytest.raises(RequestValidationError) as caught:
        settings_from_connection(conn)
    assert caught.value.fields == [field]
    assert "connection 'rivya_misspelt'" in str(caught.value)


# --- generation ids ----------------------------------------------------------------------------


def test_a_trigger_refuses_a_generation_id_no_status_path_can_hold(server: HostileServer) -> None:
    # The sensor hands the trigger the id Rivya answered with: an id of 4,000 characters went
    # into the trigger's kwargs (stored in Airflow's database), and failed only in the
    # triggerer, naming the client's ``task_id``.
    from rivya_provider.triggers.generation import RivyaGenerationTrigger

    with pytest.raises(RequestValidationError) as caught:
        RivyaGenerationTrigger(
            generation_id="x" * 4000, deadline=time.time() + 60, rivya_conn_id="rivya_default"
        )
    assert caught.value.fields == ["generation_id"]
    assert server.seen == []
