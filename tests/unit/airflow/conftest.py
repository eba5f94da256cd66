"""Shared pieces of the Airflow-layer unit tests: a real emulator, a connection, a state store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.emulator_fixtures import connection_json

# ``emulator`` and ``emulator_factory`` come from tests/emulator_fixtures.py (root conftest).

CONN_ID = "rivya_unit"
CONN_ENV = "AIRFLOW_CONN_RIVYA_UNIT"
DEFAULT_CONN_ENV = "AIRFLOW_CONN_RIVYA_DEFAULT"


class FakeStateStore:
    """A dict-backed stand-in for ``context["task_state_store"]`` (Airflow 3.3+).

    Like the real accessor it keeps JSON values only (they travel to the API server), so a value
    that would not survive the trip fails here too, and it refuses ``None``.
    """

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.writes: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.data.get(key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        self.data[key] = json.dumps(value)
        self.writes.append(key)


@pytest.fixture
def state_store() -> FakeStateStore:
    return FakeStateStore()


@pytest.fixture
def rivya_default(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    """Point ``rivya_default`` at the test's emulator, one attempt per request."""
    monkeypatch.setenv(DEFAULT_CONN_ENV, connection_json(emulator, max_attempts=1))
    return emulator
