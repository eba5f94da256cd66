"""Many tasks and keys over time: status changes and key expiry keep their exact timing."""

from __future__ import annotations

from collections import Counter

import httpx

from rivya_provider.emulator.routes import public_router
from tests.emulator_fixtures import EmulatorFactory
from tests.integration.emulator_support import KONTEXT, SteppedClock, bearer

CREATE = "/api/v1/generations"
DAY = 24 * 3600


def test_tasks_created_at_different_times_change_status_on_their_own_schedule(
    emulator_factory: EmulatorFactory,
) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock, queued_seconds=2, processing_seconds=4, credits=400)
    emulator.set_faults(fail_next_tasks=3)
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        ids = []
        for _ in range(30):
            ids.append(http.post(CREATE, json=KONTEXT).json()["id"])
            clock.advance(1)
        # Task i was created at t=i and is now 30-i seconds old.
        statuses = [http.get(f"{CREATE}/{task_id}").json()["status"] for task_id in ids]
        balance = http.get("/api/v1/credits").json()["current_credits"]
    # Done at age >= 6 (i <= 24), processing at age 2 to 6 (i = 25..28), queued below 2.
    expected = ["failed"] * 3 + ["succeeded"] * 22 + ["processing"] * 4 + ["queued"]
    assert statuses == expected
    # 30 reserved; the 3 failed are refunded; the 27 others are still reserved or charged.
    assert balance == 400 - 27 * 4
    counters = emulator.counters()
    assert (counters["credits_charged"], counters["credits_refunded"]) == (22 * 4, 3 * 4)
    state = emulator.backend.snapshot()["tasks"]["by_status"]
    assert state == dict(Counter(expected))


def test_idempotency_keys_expire_in_creation_order(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock)
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:

        def create(key: str) -> httpx.Response:
            return http.post(CREATE, json=KONTEXT, headers={"Idempotency-Key": key})

        early = [create(f"early-{i}").json()["id"] for i in range(3)]
        clock.advance(DAY / 2)
        late = [create(f"late-{i}").json()["id"] for i in range(2)]
        clock.advance(DAY / 2)
        assert emulator.backend.snapshot()["idempotency_keys"] == 5
        # The next create expires the three early keys, and only them.
        renewed = create("early-0")
        assert emulator.backend.snapshot()["idempotency_keys"] == 3
        assert renewed.json()["id"] not in early
        assert "Idempotent-Replayed" not in renewed.headers
        assert create("late-1").json()["id"] == late[1]
        clock.advance(DAY / 2)
        assert create("early-0").json()["id"] == renewed.json()["id"]
        assert create("late-1").headers.get("Idempotent-Replayed") is None
    assert emulator.counters()["tasks_created"] == 3 + 2 + 2


def test_counter_keys_are_the_full_paths_under_the_routers_own_prefix(
    emulator_factory: EmulatorFactory,
) -> None:
    emulator = emulator_factory()
    router = public_router(emulator.backend)
    assert router.prefix == "/api/v1"
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        for path in ("/api/v1/models", "/api/v1/credits", "/api/v1/files/file_x"):
            http.get(path)
    assert emulator.counters()["requests"] == {
        "GET /api/v1/models": 1,
        "GET /api/v1/credits": 1,
        "GET /api/v1/files/{fileId}": 1,
    }
