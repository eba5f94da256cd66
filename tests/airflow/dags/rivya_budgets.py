"""DAGs of the credit budget tests; prompts, budgets and paths come from ``dag_run.conf``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from rivya_provider.operators.budget import RivyaCreditBudgetOperator
from rivya_provider.operators.generate import RivyaGenerateOperator

START = datetime(2026, 1, 1)
FAST: dict[str, Any] = {"poll_interval": 0.2, "first_poll_delay": 0.1}

with DAG("rivya_budget_preflight", schedule=None, start_date=START):

    @task
    def wanted(*, dag_run: Any = None) -> list[dict[str, Any]]:
        """The generate arguments of the run, as a campaign loader would return them."""
        return list(dag_run.conf["generations"])

    generations = wanted()
    preflight = RivyaCreditBudgetOperator(
        task_id="preflight",
        generations=generations,
        credit_budget="{{ dag_run.conf.get('budget') }}",
        retries=2,
        retry_delay=timedelta(0),
    )
    generate = RivyaGenerateOperator.partial(
        task_id="generate", deferrable=False, **FAST
    ).expand_kwargs(generations)
    preflight >> generate

with DAG("rivya_budget_guard", schedule=None, start_date=START):
    RivyaGenerateOperator.partial(
        task_id="generate",
        model="flux-2-flex",
        credit_budget="{{ dag_run.conf['budget'] }}",
        deferrable=False,
        max_active_tis_per_dag=1,
        retries=2,
        retry_delay=timedelta(0),
        **FAST,
    ).expand(prompt=["a red bicycle", "a blue kite", "a green boat", "a yellow tram"])


class BlockedOnFirstCopy(RivyaGenerateOperator):
    """On the first try, put a file where the output folder goes once the generation is paid."""

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        blocker = context["dag_run"].conf["blocker"]
        if context["ti"].try_number == 1:
            with open(blocker, "w") as handle:
                handle.write("a file where the output folder must go")
        return super().execute_complete(context, event)


def unblock_output(context: Any) -> None:
    """Before the retry, remove the file that stood where the output folder must go."""
    import os

    os.remove(context["dag_run"].conf["blocker"])


with DAG("rivya_budget_resume", schedule=None, start_date=START):
    # The first try pays, then fails to copy; the retry's budget is 0: a new generation would
    # be refused, the one the first try paid for must not be.
    BlockedOnFirstCopy(
        task_id="generate",
        model="flux-2-flex",
        prompt="a lighthouse at dawn",
        output_path="{{ dag_run.conf['blocker'] }}/out",
        credit_budget="{{ 100 if ti.try_number == 1 else 0 }}",
        deferrable=True,
        retries=1,
        retry_delay=timedelta(0),
        on_retry_callback=unblock_output,
        **FAST,
    )

with DAG("rivya_period_budget", schedule=None, start_date=START):
    # The period budget comes from dag_run.conf: "preflight_period_budget" for the pre-flight,
    # "period_budget" for the guard (either may be left out), "budget_period" for both.

    @task
    def period_wanted(*, dag_run: Any = None) -> list[dict[str, Any]]:
        """The generate arguments of the run."""
        return list(dag_run.conf["generations"])

    period_generations = period_wanted()
    period_preflight = RivyaCreditBudgetOperator(
        task_id="preflight",
        generations=period_generations,
        period_budget="{{ dag_run.conf.get('preflight_period_budget') }}",
        budget_period="{{ dag_run.conf.get('budget_period', 'month') }}",
        retries=2,
        retry_delay=timedelta(0),
    )
    period_generate = RivyaGenerateOperator.partial(
        task_id="generate",
        period_budget="{{ dag_run.conf.get('period_budget') }}",
        budget_period="{{ dag_run.conf.get('budget_period', 'month') }}",
        deferrable=False,
        max_active_tis_per_dag=1,
        retries=2,
        retry_delay=timedelta(0),
        **FAST,
    ).expand_kwargs(period_generations)
    period_preflight >> period_generate
