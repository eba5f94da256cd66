from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from rivya_provider.client import CATALOG, RetryPolicy
from rivya_provider.client.catalog.live import CACHE
from tests.clients import FLAVOURS, Api, make_api

API_KEY = "rvya_sk_unit_test_secret_1234567890"
BASE_URL = "https://rivya.test"

TASK = {
    "id": "task_abc",
    "status": "queued",
    "model": "flux-2-flex",
    "reserved_credits": 14,
    "final_credits": 0,
    "created_at": "2026-05-11T00:00:00.000Z",
    "updated_at": "2026-05-11T00:00:00.000Z",
    "result": None,
    "error": None,
}


def envelope(status: int, code: str, message: str = "nope", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "requestId": f"req_{code}"}}
    return httpx.Response(status, json=body, headers=headers)


def task(**changes: Any) -> httpx.Response:
    return httpx.Response(200, json={**TASK, **changes})


class Script:
    """A MockTransport handler that answers from a list and records every request."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[..., Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)  # type: ignore[no-any-return]
        # A fresh copy: one response object cannot be consumed twice (retries, both flavours).
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())

    def json_bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture(autouse=True)
def _known_catalogue(_fresh_model_catalogue: None) -> None:
    """Rule tests see the built-in catalogue without a ``/models`` request; catalogue tests clear
    it (``clear_catalog_cache()``) to see the fetch."""
    CACHE.put(BASE_URL, CATALOG, ttl=3600)


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def script() -> Script:
    return Script(httpx.Response(200, json={"current_credits": 7}))


@pytest.fixture
async def api(flavour: str, script: Script) -> AsyncIterator[Api]:
    client = make_api(
        flavour,
        api_key=API_KEY,
        base_url=BASE_URL,
        handler=script,
        retry=RetryPolicy(max_attempts=4, backoff_initial=0.5, backoff_max=8, retry_after_cap=30),
    )
    yield client
    await client.close()
