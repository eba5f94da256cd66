"""Period budgets across runs of one DAG (``dag.test()`` against the emulator over HTTP).

Each run is placed in its period by its ``run_after`` (and logical date), so the tests choose
the calendar: runs of March 2031 share a budget, a run of April 2031 starts a new one. The
metadata DB lives for the test session, so each test uses months no other test uses.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.airflow.conftest import RunDag
from tests.airflow.examples import task_states, xcom
from tests.airflow.test_budgets import creates

pytestmark = pytest.mark.usefixtures("rivya_connection")

DAG_ID = "rivya_period_budget"
FLEX = {"model": "flux-2-flex"}  # 14 credits
PRO = {"model": "flux-kontext-pro"}  # 4 credits


def run_at(run_dag: RunDag, when: datetime, **conf: Any) -> Any:
    """Run the period budget DAG as if it were due at ``when``."""
    return run_dag(DAG_ID, run_after=when, logical_date=when, run_conf=conf)


def wanted(*models: dict[str, str]) -> list[dict[str, str]]:
    return [{**model, "prompt": f"poster {n}"} for n, model in enumerate(models)]


def generate_states(run: Any) -> dict[int, tuple[str, int]]:
    return {index: state for (task, index), state in task_states(run).items() if task == "generate"}


def test_runs_of_one_month_share_its_budget(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    budget = {"preflight_period_budget": 40, "period_budget": 40}

    # The first run of March spends 28 of the 40.
    first = run_at(
        run_dag, datetime(2031, 3, 5, tzinfo=timezone.utc), generations=wanted(FLEX, FLEX), **budget
    )
    assert str(first.state) == "success", task_states(first)
    assert xcom(first, "preflight")["period"] == {
        "period": "2031-03",
        "kind": "month",
        "budget": 40,
        "spent": 0,
        "left": 40,
    }
    assert creates(rivya_connection) == 2

    # A later run of March needs 14 with 12 left: its pre-flight refuses it, nothing is created.
    second = run_at(
        run_dag, datetime(2031, 3, 20, tzinfo=timezone.utc), generations=wanted(FLEX), **budget
    )
    states = task_states(second)
    assert states[("preflight", -1)] == ("failed", 1)  # no retries: waiting cannot help
    assert all(
        state == "upstream_failed" for (t, _), (state, _) in states.items() if t == "generate"
    )
    assert creates(rivya_connection) == 2
    assert rivya_connection.counters()["credits_charged"] == 28

    # Without the pre-flight's period budget, the guard stops the generation that would overrun
    # (14 more than 40) and admits the one that fits (4).
    third = run_at(
        run_dag,
        datetime(2031, 3, 31, 23, 59, tzinfo=timezone.utc),
        generations=wanted(FLEX, PRO),
        period_budget=40,
    )
    assert generate_states(third) == {0: ("failed", 1), 1: ("success", 1)}
    assert creates(rivya_connection) == 3
    assert rivya_connection.counters()["credits_charged"] == 32

    # April starts with its whole budget, whatever March spent.
    april = run_at(
        run_dag, datetime(2031, 4, 1, tzinfo=timezone.utc), generations=wanted(FLEX, FLEX), **budget
    )
    assert str(april.state) == "success", task_states(april)
    assert xcom(april, "preflight")["period"]["spent"] == 0
    assert xcom(april, "preflight")["period"]["period"] == "2031-04"
    assert creates(rivya_connection) == 5


def test_the_preflight_counts_every_earlier_run_of_the_day(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    day = {"preflight_period_budget": 50, "period_budget": 50, "budget_period": "day"}

    morning = run_at(
        run_dag, datetime(2031, 5, 6, 8, tzinfo=timezone.utc), generations=wanted(FLEX), **day
    )
    noon = run_at(
        run_dag, datetime(2031, 5, 6, 12, tzinfo=timezone.utc), generations=wanted(FLEX), **day
    )
    assert str(morning.state) == str(noon.state) == "success"
    # Both earlier runs of the day count: 28 spent, 22 left.
    evening = run_at(
        run_dag, datetime(2031, 5, 6, 18, tzinfo=timezone.utc), generations=wanted(PRO), **day
    )
    assert xcom(evening, "preflight")["period"] == {
        "period": "2031-05-06",
        "kind": "day",
        "budget": 50,
        "spent": 28,
        "left": 22,
    }
    # The next day is a new period.
    next_day = run_at(
        run_dag, datetime(2031, 5, 7, tzinfo=timezone.utc), generations=wanted(PRO), **day
    )
    assert xcom(next_day, "preflight")["period"]["spent"] == 0
    assert creates(rivya_connection) == 4


def test_the_connection_extras_are_the_period_budget_when_none_is_given(
    run_dag: RunDag, rivya_connection: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.emulator_fixtures import connection_json

    extras = {"period_budget": 20, "budget_period": "week", "max_attempts": 2}
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", connection_json(rivya_connection, **extras))
    # 2031-07-07 is a Monday: the Sunday after is the same week, the Monday after is not.
    monday, sunday = (
        datetime(2031, 7, 7, tzinfo=timezone.utc),
        datetime(2031, 7, 13, tzinfo=timezone.utc),
    )

    first = run_at(run_dag, monday, generations=wanted(FLEX), budget_period="")
    assert xcom(first, "preflight")["period"] == {
        "period": "2031-W28",
        "kind": "week",
        "budget": 20,
        "spent": 0,
        "left": 20,
    }
    refused = run_at(run_dag, sunday, generations=wanted(FLEX), budget_period="")
    assert task_states(refused)[("preflight", -1)] == ("failed", 1)
    next_week = run_at(
        run_dag, sunday + timedelta(days=1), generations=wanted(PRO), budget_period=""
    )
    assert xcom(next_week, "preflight")["period"]["period"] == "2031-W29"
    assert creates(rivya_connection) == 2


def test_a_bad_period_is_refused_before_anything_is_created(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    run = run_at(
        run_dag,
        datetime(2031, 6, 2, tzinfo=timezone.utc),
        generations=wanted(FLEX),
        preflight_period_budget=100,
        budget_period="year",
    )

    assert task_states(run)[("preflight", -1)] == ("failed", 1)
    assert creates(rivya_connection) == 0


def test_the_monthly_budget_example_counts_the_days_before(
    rivya_connection: RunningEmulator,
) -> None:
    from tests.airflow.examples import run_example

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "rivya_monthly_budget.py"
    days = [datetime(2031, 9, day, tzinfo=timezone.utc) for day in (10, 11)]

    runs = [
        run_example(example, "rivya_monthly_budget", run_after=day, logical_date=day)
        for day in days
    ]

    assert [str(run.state) for run in runs] == ["success", "success"]
    assert [xcom(run, "check_budget")["period"]["spent"] for run in runs] == [0, 12]
    assert xcom(runs[1], "check_budget")["period"]["left"] == 488
    assert creates(rivya_connection) == 6
