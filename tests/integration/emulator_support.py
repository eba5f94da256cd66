"""Helpers for the emulator's own tests (raw HTTP, no Rivya client classes)."""

from __future__ import annotations

import time
from typing import Any

import httpx

#: 2026-05-11T00:00:00.000Z
EPOCH_2026_05_11 = 1778457600.0
TERMINAL = frozenset({"succeeded", "failed"})
FLEX: dict[str, Any] = {"model": "flux-2-flex", "prompt": "a lighthouse at dawn"}
KONTEXT: dict[str, Any] = {"model": "flux-kontext-pro", "prompt": "make it night"}


class SteppedClock:
    """A clock that moves only when told, so task schedules run without sleeping."""

    def __init__(self, now: float = EPOCH_2026_05_11) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check the status and the envelope (its requestId matches the header); return ``error``."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["requestId"] == response.headers["X-Request-Id"]
    assert error["requestId"].startswith("req_")
    assert set(error) == {"code", "message", "requestId"}
    return error


def wait_for_status(
    client: httpx.Client, task_id: str, *, until: frozenset[str] = TERMINAL, attempts: int = 500
) -> dict[str, Any]:
    """Poll a task until its status is in ``until`` (bounded); return the task."""
    for _ in range(attempts):
        task: dict[str, Any] = client.get(f"/api/v1/generations/{task_id}").json()
        if task["status"] in until:
            return task
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} never reached {sorted(until)}")
