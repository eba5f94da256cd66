"""Real Airflow runs (``dag.test()``) against a scripted Rivya whose answers are legal but odd.

The emulator answers the way rivya-api.md's default profile says; Rivya itself may not. Here a
raw-socket server on 127.0.0.1 plays Rivya with answers the docs allow: a new task whose
``created_at`` disagrees with the answer's ``Date`` header, and more result URLs than a
manifest keeps. A generation that Rivya created (and charged) must then still end the task in
success, with a manifest that says what happened.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.examples import run_example, task_states, xcom
from tests.hostile import HostileServer, Seen, response

KEY = "rvya_sk_scripted_rivya_0123456789"
DAG_FILE = Path(__file__).parent / "server_answer_dags" / "rivya_server_answers.py"
TASK_ID = "task_new"
MODES = ["polling", "deferred"]


def iso(when: datetime) -> str:
    """Rivya's timestamp format: ISO 8601 UTC with milliseconds and ``Z``."""
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ScriptedRivya:
    """Rivya's answers for one new generation, ``task_new``.

    :param created_ago: how far before the create's answer (its ``Date`` header, which is
        right) the task's ``created_at`` lies.
    :param processing_seconds: the task is processing this long after the create, then
        succeeded.
    :param results: how many result URLs the succeeded task lists.
    """

    created_ago: timedelta = timedelta(0)
    processing_seconds: float = 1.0
    results: int = 1
    base_url: str = ""
    #: Monotonic time of the create, once it came, and the task's ``created_at``.
    created: float | None = None
    created_at: str = ""
    requests: list[str] = field(default_factory=list)

    def urls(self) -> list[str]:
        return [f"{self.base_url}/files/{TASK_ID}-{n}.png" for n in range(self.results)]

    def task(self) -> dict[str, Any]:
        assert self.created is not None
        done = time.monotonic() - self.created >= self.processing_seconds
        return {
            "id": TASK_ID,
            "status": "succeeded" if done else "processing",
            "model": "flux-2-flex",
            "reserved_credits": 14,
            "final_credits": 14 if done else 0,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "result": {"urls": self.urls()} if done else None,
            "error": None,
        }

    def answer(self, seen: Seen) -> bytes:
        date = {"Date": email.utils.formatdate(usegmt=True)}  # the server's clock: now
        route = f"{seen.method} {seen.path}"
        self.requests.append(route)
        if route == "GET /api/v1/models":
            return response(200, {"object": "list", "data": []}, headers=date)
        if route == "POST /api/v1/generations":
            if self.created is None:
                self.created = time.monotonic()
                self.created_at = iso(datetime.now(timezone.utc) - self.created_ago)
            return response(201, {**self.task(), "status": "queued"}, headers=date)
        if route == f"GET /api/v1/generations/{TASK_ID}" and self.created is not None:
            return response(200, self.task(), headers=date)
        error = {"code": "not_found", "message": "no such thing", "requestId": "req_1"}
        return response(404, {"error": error}, headers=date)

    async def __call__(self, seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(self.answer(seen))
        await writer.drain()

    def creates(self) -> int:
        return self.requests.count("POST /api/v1/generations")


@pytest.fixture
def rivya(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedRivya]:
    """The scripted Rivya, with ``rivya_default`` pointing at it; tests set its answers."""
    scripted = ScriptedRivya()
    with HostileServer(script=scripted).running() as server:
        scripted.base_url = server.base_url
        conn = {"conn_type": "rivya", "host": server.base_url, "password": KEY}
        monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(conn))
        yield scripted


@pytest.mark.parametrize("mode", MODES)
def test_a_new_task_dated_a_day_back_is_waited_for_as_submitted(
    rivya: ScriptedRivya, mode: str
) -> None:
    # The create's answer has no replay header and a right Date: the task is new (and paid),
    # whatever its created_at says. It must not be judged found again, nor its deadline
    # counted from a day ago.
    rivya.created_ago = timedelta(days=1)
    rivya.processing_seconds = 4.0

    run = run_example(DAG_FILE, f"rivya_server_answers_{mode}")

    assert task_states(run) == {("generate", -1): ("success", 1)}
    manifest = xcom(run, "generate")
    assert manifest["origin"] == "submitted"
    assert manifest["generation_id"] == TASK_ID
    assert manifest["charged_credits"] == 14
    assert rivya.creates() == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_paid_task_with_twenty_results_keeps_sixteen_and_the_count(
    rivya: ScriptedRivya, mode: str
) -> None:
    rivya.results = 20

    run = run_example(DAG_FILE, f"rivya_server_answers_{mode}")

    assert task_states(run) == {("generate", -1): ("success", 1)}
    manifest = xcom(run, "generate")
    assert manifest["result_urls"] == rivya.urls()[:16]
    assert manifest["result_count"] == 20
    assert manifest["charged_credits"] == 14
    assert rivya.creates() == 1
