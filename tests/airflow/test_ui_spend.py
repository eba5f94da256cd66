"""The credits page's spend per day, read from a real metadata DB after ``dag.test()`` runs.

The runs are placed on the calendar by their ``run_after`` (in March 2033, which no other test
uses), while they really run now: the chart must count each on its ``run_after``'s UTC day, the
day the period budgets count it on, not on the day it ran.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

from tests.airflow.conftest import RunDag
from tests.airflow.examples import task_states, xcom

pytestmark = pytest.mark.usefixtures("rivya_connection")

DAG_ID = "rivya_period_budget"
FLEX = {"model": "flux-2-flex", "prompt": "poster"}  # 14 credits
PRO = {"model": "flux-kontext-pro", "prompt": "poster"}  # 4 credits
#: A day period budget, so the runs of a day are registered and counted by its pre-flight.
DAY = {"preflight_period_budget": 100, "period_budget": 100, "budget_period": "day"}


def run_at(run_dag: RunDag, when: datetime, *generations: dict[str, str], **conf: Any) -> Any:
    run = run_dag(
        DAG_ID, run_after=when, logical_date=when, run_conf={"generations": generations, **conf}
    )
    assert str(run.state) == "success", task_states(run)
    return run


def test_each_run_counts_on_the_utc_day_of_its_run_after(run_dag: RunDag) -> None:
    from rivya_provider.ui.data import spend_per_day

    utc = timezone.utc
    run_at(run_dag, datetime(2033, 2, 8, 12, tzinfo=utc), FLEX)  # before the 30 days
    run_at(run_dag, datetime(2033, 3, 10, 0, 0, tzinfo=utc), FLEX, **DAY)
    late = run_at(run_dag, datetime(2033, 3, 10, 23, 59, tzinfo=utc), PRO, **DAY)
    run_at(run_dag, datetime(2033, 3, 11, 0, 0, tzinfo=utc), PRO, PRO)

    now = datetime(2033, 3, 11, 12, tzinfo=utc)
    spend = spend_per_day(dag_ids={DAG_ID, "no_such_dag"}, now=now)

    assert spend.first == date(2033, 2, 10)
    assert spend.last == date(2033, 3, 11)
    assert spend.credits == {DAG_ID: {date(2033, 3, 10): 18.0, date(2033, 3, 11): 8.0}}
    # The day period budget of the 23:59 run saw the same day: the earlier run's 14 credits.
    assert xcom(late, "preflight")["period"]["period"] == "2033-03-10"
    assert xcom(late, "preflight")["period"]["spent"] + 4 == spend.day_total(date(2033, 3, 10))
    # Only the DAGs asked about (those the user may read) are read.
    assert spend_per_day(dag_ids={"another_dag"}, now=now).credits == {}


def test_spend_per_dag_sums_each_dags_latest_runs(run_dag: RunDag) -> None:
    from rivya_provider.ui.data import spend_per_dag

    utc = timezone.utc
    run_at(run_dag, datetime(2033, 4, 1, tzinfo=utc), FLEX)  # older than the latest two
    second = run_at(run_dag, datetime(2033, 4, 2, tzinfo=utc), PRO)
    third = run_at(run_dag, datetime(2033, 4, 3, tzinfo=utc), PRO, PRO)

    (spend,) = spend_per_dag(dag_ids={DAG_ID, "no_such_dag"}, runs_per_dag=2)

    assert spend.dag_id == DAG_ID
    assert spend.runs == {second.run_id, third.run_id}
    assert (spend.generations, spend.credits) == (3, 12.0)
    assert spend_per_dag(dag_ids={"another_dag"}, runs_per_dag=2) == []
