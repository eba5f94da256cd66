"""The period budget's guard across concurrent runs of one DAG.

As in test_budget_guard.py, the real generate operator runs against the emulator in threads
that all pass their guard before any of them pushes its manifest (``dag.test()`` runs one task
instance at a time, so it cannot show this). The DAG's XCom and its Variables are held in
memory, shared by every run, as the API server would share them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from rivya_provider.emulator import RunningEmulator
from rivya_provider.exceptions import RivyaBudgetExceededError
from rivya_provider.operators.generate import RivyaGenerateOperator

FLEX = 14
DECEMBER = datetime(2026, 12, 7, tzinfo=timezone.utc)


class DagStore:
    """The DAG's return values per run and its Variables, as the Task SDK serves them."""

    def __init__(self) -> None:
        self.xcom: dict[tuple[str, int], Any] = {}  # (run_id, map_index) -> manifest
        self.variables: dict[str, Any] = {}
        self.lock = threading.Lock()

    def pull(self, run_id: str) -> list[Any]:
        with self.lock:
            return [value for (run, _), value in sorted(self.xcom.items()) if run == run_id]

    # Variable.get / Variable.set of the Task SDK
    def get(self, key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        with self.lock:
            return self.variables.get(key, default)

    def set(self, key: str, value: Any, description: str | None = None, **_: Any) -> None:
        with self.lock:
            self.variables[key] = value


class FakeTI:
    """The parts of a running task instance the generate operator uses."""

    def __init__(self, store: DagStore, run_id: str, map_index: int) -> None:
        self.store = store
        self.dag_id, self.task_id, self.run_id = "campaign", "generate", run_id
        self.map_index, self.try_number = map_index, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass  # only the extra link uses it

    def xcom_pull(self, task_ids: list[str], run_id: str | None = None) -> list[Any]:
        assert task_ids == ["generate"]
        return self.store.pull(run_id or self.run_id)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> DagStore:
    from rivya_provider.operators import _period

    shared = DagStore()
    monkeypatch.setattr(_period, "Variable", shared)
    return shared


def generation(
    store: DagStore, run_id: str, map_index: int, budget: int, *, then: threading.Barrier
) -> str:
    """Execute one task instance of ``run_id``; push its manifest once every one has checked."""
    operator = RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt=f"{run_id} poster {map_index}",
        period_budget=budget,
        budget_period="month",
        budget_task_ids=["generate"],
        deferrable=False,
        poll_interval=0.05,
        first_poll_delay=0.05,
    )
    ti = FakeTI(store, run_id, map_index)
    context = {"ti": ti, "run_id": run_id, "dag_run": SimpleNamespace(run_after=DECEMBER)}
    try:
        manifest = operator.execute(context)
    except RivyaBudgetExceededError as exc:
        return f"refused: {exc}"
    finally:
        then.wait(timeout=60)
    with store.lock:
        store.xcom[(run_id, map_index)] = manifest
    return "generated"


@pytest.mark.usefixtures("rivya_default")
def test_concurrent_runs_overspend_the_period_by_at_most_the_others_in_flight(
    emulator: RunningEmulator, store: DagStore
) -> None:
    budget = 30  # one after the other, only two 14-credit generations would fit
    in_flight = [("run-1", 0), ("run-1", 1), ("run-2", 0)]  # two runs at once
    all_checked = threading.Barrier(len(in_flight))

    with ThreadPoolExecutor(len(in_flight)) as pool:
        outcomes = list(
            pool.map(
                lambda ti: generation(store, ti[0], ti[1], budget, then=all_checked), in_flight
            )
        )

    assert outcomes == ["generated"] * 3
    charged = emulator.counters()["credits_charged"]
    assert charged == 3 * FLEX == 42  # over the budget of 30 ...
    assert charged - budget <= (len(in_flight) - 1) * FLEX  # ... by at most the others in flight
    # Both runs are registered for December, whatever order their writes landed in.
    assert sorted(store.variables["rivya_spend:campaign:2026-12"]["runs"]) == ["run-1", "run-2"]

    # A later run of the month sees what both spent, and is refused.
    alone = threading.Barrier(1)
    assert generation(store, "run-3", 0, budget, then=alone) == (
        "refused: period budget for 2026-12 spent: 42 of 30 credits already used by this DAG's "
        "runs, this one needs 14 (short by 26); nothing was submitted"
    )
    assert emulator.counters()["credits_charged"] == charged


@pytest.mark.usefixtures("rivya_default")
def test_sequential_runs_stop_at_the_period_budget(
    emulator: RunningEmulator, store: DagStore
) -> None:
    alone = threading.Barrier(1)

    outcomes = [generation(store, f"run-{n}", 0, 40, then=alone) for n in range(4)]

    assert outcomes[:2] == ["generated", "generated"]
    assert outcomes[2].startswith("refused: period budget for 2026-12 spent: 28 of 40")
    assert outcomes[3].startswith("refused: ")
    assert emulator.counters()["credits_charged"] == 2 * FLEX
