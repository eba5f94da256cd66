"""Credit budgets of a DAG run: the pre-flight check and the generate operator's guard.

``RivyaCreditBudgetOperator`` prices everything a run will generate before anything is
submitted, and fails the run when its budget, what is left of its DAG's period budget, or the
wallet cannot pay for it. The generate operator's guard (:func:`check_generation_budget`)
refuses one new generation when the manifests of the run's other generations already used up
the budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from rivya_provider.budget import CostEstimate, budget_value, estimate, generation_list
from rivya_provider.client import RivyaClient, RivyaError, is_retryable
from rivya_provider.exceptions import RivyaBudgetExceededError, failing_fast
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.operators._period import (
    PeriodBudget,
    RunRegister,
    checked_arguments,
    period_spend,
    preflight_problem,
    resolve_period_budget,
)
from rivya_provider.operators._spend import budget_task_ids, run_spend


def _shown(value: float | None, missing: str = "not set") -> str:
    return missing if value is None else f"{value:g}"


def affordability_problem(
    *, needed: float, budget: float | None, balance: float | None
) -> RivyaBudgetExceededError | None:
    """Return the error to raise when ``needed`` credits exceed the budget or the balance.

    :param needed: credits the run needs.
    :param budget: credits the run may spend (``None``: no budget).
    :param balance: credits in the wallet (``None``: not checked).
    """
    limits = [(name, limit) for name, limit in (("budget", budget), ("balance", balance))]
    # The tighter limit is the one to name first.
    for name, limit in sorted(
        ((n, v) for n, v in limits if v is not None), key=lambda entry: entry[1]
    ):
        if needed > limit:
            other, other_value = ("balance", balance) if name == "budget" else ("budget", budget)
            message = (
                f"run needs {needed:g} credits, {name} {limit:g} (short by {needed - limit:g}); "
                f"{other} {_shown(other_value, 'not read' if other == 'balance' else 'not set')}; "
                "nothing was submitted"
            )
            return RivyaBudgetExceededError(message, needed, 0, budget, balance)
    return None


class RivyaCreditBudgetOperator(BaseOperator):
    """Check, before any generation, that a run can afford everything it will generate.

    Prices each generation with the credits per model of Rivya's live catalogue (the built-in one
    when ``/models`` cannot be read), reads the balance (``GET /api/v1/credits``) and fails
    without retrying (``RivyaBudgetExceededError``) when the total exceeds the budget or the
    balance, naming the shortfall. Returns the estimate (credits, per model, budget, balance).

    When the balance cannot be read for a passing reason (an outage, rate limits past the
    retry budget), only the budget is checked and a warning logged: Rivya itself refuses a
    generation the wallet cannot pay.

    With a period budget, the credits the DAG's runs already spent in the period (their
    generate tasks' XCom manifests, this run's included) plus the estimate must fit in it too;
    a run that passes is registered for the period (an Airflow Variable,
    ``rivya_spend:<dag_id>:<period>``) so that later checks count what it spends.

    The estimate counts every generation as new: generations a cleared run reuses at no charge
    are counted too, so it errs on the safe side.

    :param generations: the generate arguments of the run, one mapping per generation (at
        least ``model``): typically the same list (or ``XComArg``) a mapped
        ``RivyaGenerateOperator`` expands over; one mapping, or a JSON string, also works.
    :param credit_budget: credits the run may spend; ``None`` falls back to the Connection's
        ``credit_budget`` extra, and with neither only the balance is checked.
    :param period_budget: credits all runs of this DAG may spend in one calendar period (UTC);
        ``None`` falls back to the Connection's ``period_budget`` extra, and with neither there
        is no period budget.
    :param budget_period: the period of ``period_budget``: ``"day"``, ``"week"`` (Monday to
        Sunday) or ``"month"``; ``None`` falls back to the Connection's ``budget_period`` extra,
        else a month.
    :param budget_task_ids: the tasks whose manifests count as spend (default: every
        ``RivyaGenerateOperator`` task of the DAG, mapped or not).
    :param rivya_conn_id: the Airflow Connection of type ``rivya``.
    :param check_balance: also fail when the wallet holds fewer credits than needed.
    """

    template_fields: Sequence[str] = (
        "generations",
        "credit_budget",
        "period_budget",
        "budget_period",
    )
    template_fields_renderers = {"generations": "json"}  # noqa: RUF012 - Airflow's own shape
    ui_color = "#fff3d6"

    def __init__(
        self,
        *,
        generations: Any,
        credit_budget: float | str | None = None,
        period_budget: float | str | None = None,
        budget_period: str | None = None,
        budget_task_ids: Sequence[str] | None = None,
        rivya_conn_id: str = RivyaHook.default_conn_name,
        check_balance: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generations = generations
        self.credit_budget = credit_budget
        self.period_budget = period_budget
        self.budget_period = budget_period
        self.budget_task_ids = budget_task_ids
        self.rivya_conn_id = rivya_conn_id
        self.check_balance = check_balance
        checked_arguments(
            period_budget=period_budget, budget_period=budget_period, task_id=self.task_id
        )

    @cached_property
    def hook(self) -> RivyaHook:
        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        with failing_fast(self.rivya_conn_id):
            try:
                return self._execute(context)
            finally:
                self.hook.close()

    def _execute(self, context: Any) -> dict[str, Any]:
        wanted = generation_list(self.generations)
        budget = budget_value(self.credit_budget)
        if budget is None:
            budget = self.hook.credit_budget
        period = resolve_period_budget(
            budget=self.period_budget,
            period=self.budget_period,
            hook=self.hook,
            dag_run=context.get("dag_run"),
        )
        client = self.hook.client
        cost: CostEstimate = estimate(wanted, client.model_catalog())
        balance = self._balance(client)
        problem = affordability_problem(needed=cost.credits, budget=budget, balance=balance)
        period_state: dict[str, Any] | None = None
        if period is not None:
            period_state, period_problem = self._period_check(context, period, cost.credits)
            run_limit = min((v for v in (budget, balance) if v is not None), default=math.inf)
            # The tighter limit is the one to name.
            if period_problem is not None and (problem is None or period_state["left"] < run_limit):
                problem = period_problem
        if problem is not None:
            raise problem
        if period is not None:
            # Only now: a run refused here spends nothing, and later checks need not read it.
            RunRegister(context["ti"].dag_id, period.period).enter(context["ti"].run_id)
        self.log.info(
            "Run needs %g credits for %d generation(s) (%s); budget %s, balance %s",
            cost.credits,
            cost.generations,
            ", ".join(f"{c.count} x {c.model} at {c.credits_each:g}" for c in cost.models),
            _shown(budget),
            _shown(balance, "not read"),
        )
        if period_state is not None:
            self.log.info(
                "Period budget %g for %s: %g spent by this DAG, %g left before this run",
                period_state["budget"],
                period_state["period"],
                period_state["spent"],
                period_state["left"],
            )
        return {**cost.as_dict(), "budget": budget, "balance": balance, "period": period_state}

    def _period_check(
        self, context: Any, period: PeriodBudget, needed: float
    ) -> tuple[dict[str, Any], RivyaBudgetExceededError | None]:
        """What the DAG spent in the period, and the error when ``needed`` does not fit."""
        ti = context["ti"]
        runs = RunRegister(ti.dag_id, period.period).runs()
        spent = period_spend(ti, self._spending_task_ids(context), runs)
        state = {**period.describe(), "spent": spent, "left": max(0, period.credits - spent)}
        return state, preflight_problem(needed=needed, budget=period, spent=spent)

    def _spending_task_ids(self, context: Any) -> list[str]:
        """The tasks whose manifests count: the given ones, else the DAG's generate tasks."""
        if self.budget_task_ids:
            return list(self.budget_task_ids)
        return budget_task_ids(context.get("dag") or self.dag)

    def _balance(self, client: RivyaClient) -> int | float | None:
        """Read the wallet; ``None`` when not asked for, or unreadable for a passing reason."""
        if not self.check_balance:
            return None
        try:
            return client.get_credits().current_credits
        except RivyaError as exc:
            if not is_retryable(exc):
                raise
            # Rivya itself refuses a generation the wallet cannot pay (insufficient_credits);
            # an outage only means the run's own failures will say so.
            self.log.warning("Could not read the balance, checking the budget only: %s", exc)
            return None


def check_generation_budget(
    *, ti: Any, task_ids: Iterable[str], budget: float, needed: float
) -> int | float:
    """Refuse a new generation the run's budget can no longer pay for; return the spend seen.

    :param ti: the running task instance.
    :param task_ids: the generate tasks whose manifests count.
    :param budget: credits the run may spend.
    :param needed: what this generation costs.
    :raises RivyaBudgetExceededError: naming spent, budget and needed credits.
    """
    spent = run_spend(ti, task_ids)
    if spent + needed > budget:
        short = spent + needed - budget
        raise RivyaBudgetExceededError(
            f"credit budget of this run spent: {spent:g} of {budget:g} credits already used by "
            f"its generations, this one needs {needed:g} (short by {short:g}); "
            "nothing was submitted",
            needed,
            spent,
            budget,
        )
    return spent
