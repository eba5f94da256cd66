"""Record the timers a test's event loop schedules."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import pytest


class Timer(NamedTuple):
    when: float  #: the loop's time it is due at
    callback: Any


def record_timers(monkeypatch: pytest.MonkeyPatch) -> list[Timer]:
    """The timers the running loop schedules from now on (``call_at``), in order."""
    loop = asyncio.get_running_loop()
    scheduled: list[Timer] = []
    call_at = loop.call_at

    def recording(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        scheduled.append(Timer(when, callback))
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", recording)
    return scheduled
