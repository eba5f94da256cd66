"""A triggerer that restarts mid-wait picks the same generation up again: no second create."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncGenerator
from typing import Any, cast

from rivya_provider.client import GenerationRequest, RivyaClient
from rivya_provider.emulator import RunningEmulator
from rivya_provider.triggers.generation import RivyaGenerationTrigger


async def test_a_restarted_trigger_finishes_without_a_second_create(
    rivya_connection: RunningEmulator,
) -> None:
    emulator = rivya_connection
    emulator.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=4.0)
    with RivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        task = client.create_generation(
            GenerationRequest(model="flux-2-flex", prompt="a harbour at night")
        )
    deadline = time.time() + 60
    first = RivyaGenerationTrigger(generation_id=task.id, deadline=deadline, poll_interval=0.2)

    # The triggerer stops while the generation is still processing: the run is cancelled once
    # it has polled twice (about 0.5 s on an idle machine; a loaded one may take longer).
    events = cast(AsyncGenerator[Any], first.run())
    waiting = asyncio.ensure_future(anext(events))
    # The emulator counts in a thread of its own: there is no event to wait on.
    while _polls(emulator) < 2 and time.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert not waiting.done()
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await events.aclose()
    polls_before_restart = _polls(emulator)
    assert polls_before_restart >= 2

    # A new triggerer re-creates the trigger from its serialised form, as Airflow does.
    path, kwargs = first.serialize()
    assert kwargs["deadline"] == deadline
    module, _, name = path.rpartition(".")
    restarted = getattr(importlib.import_module(module), name)(**kwargs)
    payloads = [event.payload async for event in restarted.run()]

    assert len(payloads) == 1
    assert payloads[0]["status"] == "success"
    assert payloads[0]["generation_id"] == task.id
    counters = emulator.counters()
    assert counters["requests"]["POST /api/v1/generations"] == 1
    assert counters["tasks_created"] == 1
    assert _polls(emulator) > polls_before_restart


def _polls(emulator: RunningEmulator) -> int:
    polls: int = emulator.counters()["requests"].get("GET /api/v1/generations/{taskId}", 0)
    return polls
