"""A daily DAG whose runs share one credit budget per calendar month (UTC).

Each day's pre-flight refuses the run, before anything is submitted, when the month's earlier
runs left too little of the 500 credits; the generate tasks' guard refuses a new generation
past it. See docs/budgets.md ("Period budgets").

Needs the Airflow Connection ``rivya_default``. Run by tests/airflow/test_period_budgets.py.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from rivya_provider.operators.budget import RivyaCreditBudgetOperator
from rivya_provider.operators.generate import RivyaGenerateOperator

#: Three banners a day at 4 credits each (flux-kontext-pro): 12 credits a run.
BANNERS = [
    {"model": "flux-kontext-pro", "prompt": f"A {season} banner for the shop's front page"}
    for season in ("spring", "summer", "autumn")
]

with DAG(
    dag_id="rivya_monthly_budget",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["rivya", "example"],
):
    # --8<-- [start:period]
    check_budget = RivyaCreditBudgetOperator(
        task_id="check_budget",
        generations=BANNERS,
        period_budget=500,  # credits for all runs of this DAG ...
        budget_period="month",  # ... per UTC calendar month ("day", "week" or "month")
    )
    generate = RivyaGenerateOperator.partial(
        task_id="generate",
        period_budget=500,
        budget_period="month",
        max_active_tis_per_dag=2,  # bounds what concurrent generations can overspend
    ).expand_kwargs(BANNERS)
    check_budget >> generate
    # --8<-- [end:period]
