"""Emulator fixtures: each test gets its own server on a free loopback port, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rivya_provider.emulator import RunningEmulator, run_emulator
from tests.emulator_fixtures import START_CREDITS


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
