"""Emulator fixtures shared by every test package (registered by the root conftest)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from rivya_provider.emulator import RunningEmulator, run_emulator

#: Fast enough for tests, slow enough that each status is seen at least once by a poller.
FAST_SCHEDULE: dict[str, Any] = {"queued_seconds": 0.05, "processing_seconds": 0.1}
START_CREDITS = 1000

EmulatorFactory = Callable[..., RunningEmulator]


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Start emulators with :class:`EmulatorConfig` overrides; all stop when the test ends."""
    with ExitStack() as running:

        def start(**overrides: Any) -> RunningEmulator:
            settings = {**FAST_SCHEDULE, "credits": START_CREDITS, **overrides}
            return running.enter_context(run_emulator(**settings))

        yield start


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> RunningEmulator:
    """An emulator with the fast schedule and 1000 credits."""
    return emulator_factory()


def connection_json(emulator: RunningEmulator, **extra: Any) -> str:
    """The ``AIRFLOW_CONN_*`` JSON form of an Airflow Connection to ``emulator``."""
    conn: dict[str, Any] = {
        "conn_type": "rivya",
        "host": emulator.base_url,
        "password": emulator.api_key,
    }
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)
