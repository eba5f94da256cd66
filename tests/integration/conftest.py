"""Emulator fixtures: each test gets its own server on a free loopback port, stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
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


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    """A raw httpx client for ``emulator``, sending its API key."""
    with httpx.Client(
        base_url=emulator.base_url, headers={"Authorization": f"Bearer {emulator.api_key}"}
    ) as client:
        yield client


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[RunningEmulator]:
    """One emulator per test module, with instant tasks; use it through ``reused_emulator``."""
    with run_emulator(queued_seconds=0, processing_seconds=0, credits=START_CREDITS) as running:
        yield running


@pytest.fixture
def reused_emulator(module_emulator: RunningEmulator) -> RunningEmulator:
    """The module's emulator, reset: for many small cases that need clean state, not a server."""
    module_emulator.reset()
    return module_emulator


@pytest.fixture
def reused_http(reused_emulator: RunningEmulator) -> Iterator[httpx.Client]:
    """A raw httpx client for ``reused_emulator``, sending its API key."""
    with httpx.Client(
        base_url=reused_emulator.base_url,
        headers={"Authorization": f"Bearer {reused_emulator.api_key}"},
    ) as client:
        yield client
