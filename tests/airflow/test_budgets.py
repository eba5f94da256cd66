"""Credit budgets in real runs (``dag.test()`` against the emulator over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.airflow.conftest import RunDag
from tests.airflow.examples import task_states, xcom
from tests.airflow_compat import airflow_line, has_task_state_store

pytestmark = pytest.mark.usefixtures("rivya_connection")

#: Six generations as the marketing campaign makes them: 3 x 14 + 2 x 4 + 8 = 58 credits.
CAMPAIGN = [
    *({"model": "flux-2-flex", "prompt": f"poster {n}"} for n in range(3)),
    *({"model": "flux-kontext-pro", "prompt": f"banner {n}"} for n in range(2)),
    {"model": "flux-kontext-max", "prompt": "a print"},
]


def creates(emulator: RunningEmulator) -> int:
    return int(emulator.counters()["requests"].get("POST /api/v1/generations", 0))


def test_the_preflight_fails_over_budget_before_any_generation(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    run = run_dag("rivya_budget_preflight", run_conf={"generations": CAMPAIGN, "budget": 40})

    states = task_states(run)
    # Failed on the first of its three tries: retrying cannot make the budget larger.
    assert states[("preflight", -1)] == ("failed", 1)
    assert all(
        state == "upstream_failed" for (t, _), (state, _) in states.items() if t == "generate"
    )
    assert creates(rivya_connection) == 0
    assert rivya_connection.counters()["credits_charged"] == 0


def test_the_preflight_fails_when_the_balance_is_short(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    rivya_connection.set_credits(50)

    run = run_dag("rivya_budget_preflight", run_conf={"generations": CAMPAIGN, "budget": 100})

    assert task_states(run)[("preflight", -1)] == ("failed", 1)
    assert creates(rivya_connection) == 0


def test_the_preflight_passes_under_budget_and_returns_the_estimate(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    run = run_dag("rivya_budget_preflight", run_conf={"generations": CAMPAIGN, "budget": 58})

    states = task_states(run)
    assert all(state == ("success", 1) for state in states.values()), states
    estimate = xcom(run, "preflight")
    assert estimate["credits"] == 58
    assert estimate["generations"] == 6
    assert estimate["per_model"]["flux-2-flex"] == {"count": 3, "credits_each": 14, "credits": 42}
    assert estimate["budget"] == 58
    assert estimate["balance"] == 1000
    # The estimate is what the run then really spent.
    assert rivya_connection.counters()["credits_charged"] == 58
    assert creates(rivya_connection) == 6


def test_the_guard_stops_the_task_that_would_overspend_and_the_rest(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    # 14 credits each: two fit in 40 (28 spent), the third would make 42.
    run = run_dag("rivya_budget_guard", run_conf={"budget": 40})

    # dag.test() runs the mapped instances one at a time, in no fixed order.
    outcomes = sorted(state for (task, _), state in task_states(run).items() if task == "generate")
    # The first two are generated; the others are refused at once, their retries unused.
    assert outcomes == [("failed", 1), ("failed", 1), ("success", 1), ("success", 1)]
    assert creates(rivya_connection) == 2
    assert rivya_connection.counters()["credits_charged"] == 28


def test_the_guard_never_refuses_reusing_a_generation_already_paid_for(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    # Slow enough that the worker's look before deferring finds it running.
    rivya_connection.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=2.0)

    run = run_dag("rivya_budget_resume", run_conf={"blocker": str(tmp_path / "blocked")})

    assert creates(rivya_connection) == 1
    assert rivya_connection.counters()["credits_charged"] == 14
    if has_task_state_store():
        assert task_states(run) == {("generate", -1): ("success", 2)}
        assert xcom(run, "generate")["origin"] == "resumed"
    elif airflow_line() == "3.0":
        # dag.test() on 3.0 resumes the retry in execute_complete with the first try's trigger
        # event: nothing new is submitted, so there is nothing for the guard to judge.
        assert task_states(run) == {("generate", -1): ("success", 2)}
    else:
        # On 3.1 and 3.2 nothing tells the retry that the first try paid: it is judged as a new
        # generation and refused (nothing more is charged either way).
        assert task_states(run) == {("generate", -1): ("failed", 2)}


def test_the_marketing_refresh_over_its_budget_stops_before_any_generation(
    rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    from tests.airflow.examples import EXAMPLE_DAGS_DIR, run_example

    run = run_example(
        EXAMPLE_DAGS_DIR / "rivya_marketing_refresh.py",
        "rivya_marketing_refresh",
        run_conf={"output_root": str(tmp_path), "credit_budget": 40},  # the campaign costs 58
    )

    states = task_states(run)
    assert states[("load_campaign", -1)] == ("success", 1)
    assert states[("check_budget", -1)] == ("failed", 1)
    assert creates(rivya_connection) == 0
    assert str(run.state) == "failed"
