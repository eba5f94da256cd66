"""Credit budgets: the estimate, the messages, and what the guard promises under concurrency.

The concurrency tests run the real generate operator against the emulator in threads, with the
run's XCom held in memory: every task instance reads the others' manifests before any of them
pushes its own (what many mapped tasks starting at once do), which ``dag.test()`` cannot show
because it runs task instances one at a time.
"""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rivya_provider.budget import budget_value, estimate, generation_list, spent_by
from rivya_provider.client import RequestValidationError
from rivya_provider.client.catalog import CATALOG
from rivya_provider.emulator import RunningEmulator
from rivya_provider.exceptions import RivyaBudgetExceededError
from rivya_provider.operators.budget import affordability_problem
from rivya_provider.operators.generate import RivyaGenerateOperator

FLEX = 14


class RunXCom:
    """The return values of one DAG run's task instances, as ``xcom_pull`` serves them."""

    def __init__(self, *, readers_at_once: int = 1) -> None:
        self.values: dict[tuple[str, int], Any] = {}
        self.lock = threading.Lock()
        # Each reader waits here after reading until all have read: they all start at once.
        self.barrier = threading.Barrier(readers_at_once)

    def pull(self, task_ids: list[str]) -> list[Any]:
        with self.lock:
            seen = [v for (task_id, _), v in sorted(self.values.items()) if task_id in task_ids]
        self.barrier.wait(timeout=30)
        return seen


class FakeTI:
    """The parts of a running task instance the generate operator uses."""

    def __init__(self, xcom: RunXCom, map_index: int) -> None:
        self.xcom = xcom
        self.dag_id, self.task_id, self.run_id = "budget", "generate", "run-1"
        self.map_index, self.try_number = map_index, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass  # only the extra link uses it

    def xcom_pull(self, task_ids: list[str]) -> list[Any]:
        return self.xcom.pull(task_ids)


def run_generation(xcom: RunXCom, map_index: int, budget: int) -> str:
    """Execute one mapped instance; push its manifest as Airflow does when it succeeds."""
    operator = RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt=f"poster {map_index}",
        credit_budget=budget,
        budget_task_ids=["generate"],
        deferrable=False,
        poll_interval=0.05,
        first_poll_delay=0.05,
    )
    ti = FakeTI(xcom, map_index)
    try:
        manifest = operator.execute({"ti": ti, "run_id": ti.run_id})
    except RivyaBudgetExceededError as exc:
        return f"refused: {exc}"
    with xcom.lock:
        xcom.values[("generate", map_index)] = manifest
    return "generated"


@pytest.mark.usefixtures("rivya_default")
def test_sequential_tasks_stop_at_the_budget(emulator: RunningEmulator) -> None:
    xcom = RunXCom()

    outcomes = [run_generation(xcom, index, budget=40) for index in range(4)]

    assert outcomes[:2] == ["generated", "generated"]
    assert outcomes[2] == (
        "refused: credit budget of this run spent: 28 of 40 credits already used by its "
        "generations, this one needs 14 (short by 2); nothing was submitted"
    )
    assert outcomes[3].startswith("refused: ")
    assert emulator.counters()["credits_charged"] == 2 * FLEX <= 40


@pytest.mark.usefixtures("rivya_default")
def test_concurrent_tasks_overspend_by_at_most_the_others_in_flight(
    emulator: RunningEmulator,
) -> None:
    in_flight = 3  # e.g. max_active_tis_per_dag=3: all three read before any manifest exists
    budget = 30  # sequentially, only two would fit
    xcom = RunXCom(readers_at_once=in_flight)

    with ThreadPoolExecutor(in_flight) as pool:
        outcomes = list(pool.map(lambda i: run_generation(xcom, i, budget), range(in_flight)))

    assert outcomes == ["generated"] * in_flight
    charged = emulator.counters()["credits_charged"]
    assert charged == in_flight * FLEX == 42  # over the budget of 30 ...
    assert charged - budget <= (in_flight - 1) * FLEX  # ... by at most the others in flight
    # Once their manifests exist, the next task sees them and is refused.
    xcom.barrier = threading.Barrier(1)
    assert run_generation(xcom, in_flight, budget).startswith(
        "refused: credit budget of this run spent: 42 of 30"
    )
    assert emulator.counters()["credits_charged"] == charged


def test_the_estimate_prices_each_model_from_the_catalogue() -> None:
    wanted = [{"model": "flux-2-flex"}] * 3 + [{"model": "flux-kontext-pro"}] * 2
    wanted.append({"model": "flux-kontext-max"})

    cost = estimate(wanted, CATALOG)

    assert (cost.credits, cost.generations) == (58, 6)
    assert cost.as_dict()["per_model"]["flux-kontext-pro"] == {
        "count": 2,
        "credits_each": 4,
        "credits": 8,
    }


def test_a_model_without_a_price_cannot_be_estimated() -> None:
    with pytest.raises(RequestValidationError, match=r"generations\[1\].model: model 'x-new'"):
        estimate([{"model": "flux-2-flex"}, {"model": "x-new"}], CATALOG)


def test_generation_lists_come_as_lists_mappings_or_json() -> None:
    assert generation_list('[{"model": "flux-2-flex"}]') == [{"model": "flux-2-flex"}]
    assert generation_list({"model": "m"}) == [{"model": "m"}]
    with pytest.raises(RequestValidationError, match="generations"):
        generation_list([{"prompt": "no model"}])
    with pytest.raises(RequestValidationError, match="generations"):
        generation_list("not json")


def test_spend_counts_charges_reservations_of_unfinished_ones_and_each_generation_once() -> None:
    shape = {"model": "flux-2-flex", "origin": "submitted", "charged_credits": 0}
    done = {**shape, "generation_id": "t1", "status": "succeeded", "reserved_credits": 14}
    done["charged_credits"] = 14
    waiting = {**shape, "generation_id": "t2", "status": "queued", "reserved_credits": 8}
    # Read as manifests: a dict without a manifest's fields is another task's value.
    partial = {"generation_id": "t3", "status": "succeeded", "charged_credits": 5}
    assert spent_by([done, dict(done), waiting, None, "other", {"status": "x"}, partial]) == 22


@pytest.mark.parametrize(
    ("given", "expected"), [(40, 40), ("40", 40), ("12.5", 12.5), ("", None), (None, None)]
)
def test_budgets_are_read_as_given_or_rendered(given: Any, expected: Any) -> None:
    assert budget_value(given) == expected


@pytest.mark.parametrize("bad", [-1, "lots", True, float("nan")])
def test_a_bad_budget_names_the_field(bad: Any) -> None:
    with pytest.raises(RequestValidationError, match="credit_budget"):
        budget_value(bad)


def test_the_shortfall_names_the_tighter_limit_first() -> None:
    over_budget = affordability_problem(needed=58, budget=40, balance=1000)
    assert str(over_budget) == (
        "run needs 58 credits, budget 40 (short by 18); balance 1000; nothing was submitted"
    )
    over_balance = affordability_problem(needed=58, budget=100, balance=50)
    assert str(over_balance) == (
        "run needs 58 credits, balance 50 (short by 8); budget 100; nothing was submitted"
    )
    no_budget = affordability_problem(needed=58, budget=None, balance=50)
    assert "budget not set" in str(no_budget)
    assert affordability_problem(needed=58, budget=58, balance=58) is None


def test_the_budget_error_fails_fast_and_pickles() -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    error = RivyaBudgetExceededError("short", 58, 10, 40, 1000)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, AirflowFailException)
    assert isinstance(copy, RivyaBudgetExceededError)
    assert (str(copy), copy.needed, copy.spent, copy.budget, copy.balance) == (
        "short",
        58,
        10,
        40,
        1000,
    )


def preflight(budget: Any) -> dict[str, Any]:
    from rivya_provider.operators.budget import RivyaCreditBudgetOperator

    operator = RivyaCreditBudgetOperator(
        task_id="preflight",
        generations=[{"model": "flux-2-flex", "prompt": "a"}] * 2,
        credit_budget=budget,
    )
    result: dict[str, Any] = operator.execute({})
    return result


def test_an_unreadable_balance_leaves_the_budget_to_decide(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.emulator_fixtures import connection_json

    monkeypatch.setenv(
        "AIRFLOW_CONN_RIVYA_DEFAULT", connection_json(emulator, max_attempts=1, retry_budget=0)
    )
    emulator.set_faults(api_disabled=True)  # every API request: 503 public_api_disabled

    # The catalogue falls back to the built-in one; the balance is unknown.
    assert preflight(28)["balance"] is None
    with pytest.raises(
        RivyaBudgetExceededError,
        match=r"run needs 28 credits, budget 27 \(short by 1\); balance not read",
    ):
        preflight(27)


def test_the_connection_extra_is_the_budget_when_none_is_given(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.emulator_fixtures import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", connection_json(emulator, credit_budget=20))

    with pytest.raises(RivyaBudgetExceededError, match=r"budget 20 \(short by 8\); balance 1000"):
        preflight(None)
    assert preflight(100)["budget"] == 100
