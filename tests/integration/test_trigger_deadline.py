"""A deferred wait ends at its deadline, plus at most one poll's own bound.

The deadline is absolute (the generation's submission plus ``generation_timeout``): a
triggerer must not hold a wait, nor its task, past it. A server that answers every poll with a
429 and a ``Retry-After`` of thirty years is the worst case: the only thing that ends each poll
is the wait's own clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rivya_provider.triggers.generation import RivyaGenerationTrigger
from tests.hostile import HostileServer, answer

KEY = "rvya_sk_trigger_deadline_0123456789"
CONN_ID = "rivya_rate_limited"
#: Seconds from now to the wait's deadline.
DEADLINE_IN = 1.0
#: One poll's own bound once the deadline has passed: connect + read timeouts of the
#: Connection below.
POLL_BOUND = 1 + 2
SLACK = 1.0


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    """A server rate-limiting every request, and the Connection ``CONN_ID`` to it."""
    limited = {"error": {"code": "rate_limited", "message": "slow down", "requestId": "req_1"}}
    with HostileServer(script=answer(429, limited, Retry_After="1000000000")).running() as running:
        conn = {
            "conn_type": "rivya",
            "host": running.base_url,
            "password": KEY,
            "extra": {"timeout": 2, "connect_timeout": 1},
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
        yield running


async def test_a_rate_limited_wait_ends_by_its_deadline(server: HostileServer) -> None:
    deadline = time.time() + DEADLINE_IN
    trigger = RivyaGenerationTrigger(
        generation_id="task_1", deadline=deadline, rivya_conn_id=CONN_ID, poll_interval=1.0
    )

    events: list[dict[str, Any]] = [event.payload async for event in trigger.run()]
    ended = time.time()

    assert [event["status"] for event in events] == ["timeout"]
    assert ended - deadline <= POLL_BOUND + SLACK, f"{ended - deadline:.1f}s past the deadline"
    assert server.seen, "the wait polled at least once"
