"""Credit budgets of a DAG run: the pre-flight check and the generate operator's guard.

``RivyaCreditBudgetOperator`` prices everything a run will generate before anything is
submitted, and fails the run when its budget or the wallet cannot pay for it. The generate
operator's guard (:func:`check_generation_budget`) refuses one new generation when the
manifests of the run's other generations already used up the budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from rivya_provider.budget import (
    CostEstimate,
    budget_value,
    estimate,
    generation_list,
    spent_by,
)
from rivya_provider.client import RivyaClient, RivyaError, is_retryable
from rivya_provider.exceptions import RivyaBudgetExceededError, failing_fast
from rivya_provider.hooks.rivya import RivyaHook


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

    The estimate counts every generation as new: generations a cleared run reuses at no charge
    are counted too, so it errs on the safe side.

    :param generations: the generate arguments of the run, one mapping per generation (at
        least ``model``): typically the same list (or ``XComArg``) a mapped
        ``RivyaGenerateOperator`` expands over; one mapping, or a JSON string, also works.
    :param credit_budget: credits the run may spend; ``None`` falls back to the Connection's
        ``credit_budget`` extra, and with neither only the balance is checked.
    :param rivya_conn_id: the Airflow Connection of type ``rivya``.
    :param check_balance: also fail when the wallet holds fewer credits than needed.
    """

    template_fields: Sequence[str] = ("generations", "credit_budget")
    template_fields_renderers = {"generations": "json"}  # noqa: RUF012 - Airflow's own shape
    ui_color = "#fff3d6"

    def __init__(
        self,
        *,
        generations: Any,
        credit_budget: float | str | None = None,
        rivya_conn_id: str = RivyaHook.default_conn_name,
        check_balance: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generations = generations
        self.credit_budget = credit_budget
        self.rivya_conn_id = rivya_conn_id
        self.check_balance = check_balance

    @cached_property
    def hook(self) -> RivyaHook:
        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        with failing_fast(self.rivya_conn_id):
            try:
                return self._execute()
            finally:
                self.hook.close()

    def _execute(self) -> dict[str, Any]:
        wanted = generation_list(self.generations)
        budget = budget_value(self.credit_budget)
        if budget is None:
            budget = self.hook.credit_budget
        client = self.hook.client
        cost: CostEstimate = estimate(wanted, client.model_catalog())
        balance = self._balance(client)
        problem = affordability_problem(needed=cost.credits, budget=budget, balance=balance)
        if problem is not None:
            raise problem
        self.log.info(
            "Run needs %g credits for %d generation(s) (%s); budget %s, balance %s",
            cost.credits,
            cost.generations,
            ", ".join(f"{c.count} x {c.model} at {c.credits_each:g}" for c in cost.models),
            _shown(budget),
            _shown(balance, "not read"),
        )
        return {**cost.as_dict(), "budget": budget, "balance": balance}

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


def _operator_class(task: Any) -> Any:
    """The class a task runs: its own, or the one a mapped task expands into."""
    mapped_class = getattr(task, "operator_class", None)
    return mapped_class if isinstance(mapped_class, type) else type(task)


def budget_task_ids(dag: Any, *, kind: type, own_task_id: str) -> list[str]:
    """Return the ids of the DAG's tasks that run ``kind`` (mapped or not), this one included.

    :param dag: the DAG of the running task.
    :param kind: the generate operator class.
    :param own_task_id: the running task (its other map indexes count too).
    """
    found = [
        task_id
        for task_id, task in getattr(dag, "task_dict", {}).items()
        if issubclass(_operator_class(task), kind)
    ]
    return found if own_task_id in found else [*found, own_task_id]


def run_spend(ti: Any, task_ids: Iterable[str]) -> int | float:
    """Sum what the run's finished generations (their XCom manifests) account for.

    Without ``map_indexes`` ``xcom_pull`` returns every map index of every task id (Airflow
    3.0-3.3): mapped and plain tasks alike. The running task instance's own XCom was cleared
    when its try started, so it is not counted.

    :param ti: the running task instance.
    :param task_ids: the generate tasks of the run.
    """
    values = ti.xcom_pull(task_ids=list(task_ids))
    if isinstance(values, Mapping) or not isinstance(values, Iterable):
        values = [values]
    return spent_by(value for value in values if value is not None)


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
