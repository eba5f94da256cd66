"""Period budgets: what all runs of a DAG may spend in one UTC calendar period.

A running task in Airflow 3 cannot open the metadata DB, and the Task SDK offers no public call
that lists a DAG's runs. It can read and write Variables, and read another run's XCom
(``xcom_pull(run_id=...)``). So the runs that may spend in a period are listed in one Variable
per DAG and period, ``rivya_spend:<dag_id>:<period>`` (``{"runs": [run ids]}``), and what each
run spent is read, as the run guard does, from its generate tasks' XCom manifests. The Variable
changes once per run (when the run first checks the budget), never per credit: a write lost
to a concurrent one costs a run's registration, which its next check puts back, not credits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import Variable

from rivya_provider.budget import budget_value, spent_by
from rivya_provider.client import FieldProblem, RequestValidationError
from rivya_provider.exceptions import RivyaBudgetExceededError
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.operators._spend import run_manifests
from rivya_provider.period import DEFAULT_PERIOD, Period, period_kind, period_of

log = logging.getLogger(__name__)

#: Writes of the register, each checked by reading it back, before a run gives up entering it.
REGISTER_ATTEMPTS = 3


def register_key(dag_id: str, period: Period) -> str:
    """The Variable that lists the runs of ``dag_id`` in ``period``."""
    return f"rivya_spend:{dag_id}:{period.label}"


class RunRegister:
    """The runs of one DAG that count against its budget for one period (an Airflow Variable).

    :param dag_id: the DAG.
    :param period: the period its runs fall in.
    """

    def __init__(self, dag_id: str, period: Period) -> None:
        self.dag_id = dag_id
        self.period = period
        self.key = register_key(dag_id, period)

    def runs(self) -> list[str]:
        """The run ids registered so far (none when the Variable does not exist yet)."""
        value = Variable.get(self.key, default=None, deserialize_json=True)
        if value is None:
            return []
        runs = value.get("runs") if isinstance(value, dict) else None
        if not isinstance(runs, list) or not all(isinstance(run, str) for run in runs):
            # Failing is the safe side: an unreadable register would hide the period's spend.
            problem = FieldProblem(
                f"Variable {self.key}", 'must hold {"runs": [run ids]}; delete it to start over'
            )
            raise RequestValidationError([problem], subject="period budget")
        return runs

    def enter(self, run_id: str) -> list[str]:
        """Register ``run_id`` unless it is already; return the runs registered, it included.

        Variables have no compare-and-set: each write is read back, and written again when a
        concurrent write (another run entering at the same moment) replaced it.
        """
        for _ in range(REGISTER_ATTEMPTS):
            runs = self.runs()
            if run_id in runs:
                return runs
            Variable.set(
                self.key,
                {"runs": [*runs, run_id]},
                description=f"Runs of DAG {self.dag_id} that count against its Rivya period "
                f"budget for {self.period.label}",
                serialize_json=True,
            )
        runs = self.runs()
        if run_id in runs:
            return runs
        # Variable.set logs and swallows a refused write; say what it means for the budget.
        log.warning(
            "Could not register run %s in Variable %s: other runs' period budget checks do not "
            "count its spend until one of its later checks registers it",
            run_id,
            self.key,
        )
        return [*runs, run_id]


@dataclass(frozen=True)
class PeriodBudget:
    """Credits the runs of a DAG may spend in the period its running run falls in."""

    credits: int | float
    period: Period

    def describe(self) -> dict[str, Any]:
        """The JSON form the pre-flight pushes with its estimate."""
        return {"period": self.period.label, "kind": self.period.kind, "budget": self.credits}


def run_moment(dag_run: Any) -> datetime:
    """When a run counts as started: its ``run_after`` (when it was due or triggered).

    Clearing a run moves its start date but not its ``run_after``, so a cleared run stays in
    the period it was registered in. ``logical_date`` and ``start_date`` are fallbacks.
    """
    for name in ("run_after", "logical_date", "start_date"):
        moment = getattr(dag_run, name, None)
        if isinstance(moment, datetime):
            return moment
    return datetime.now(timezone.utc)


def resolve_period_budget(
    *, budget: Any, period: Any, hook: RivyaHook, dag_run: Any
) -> PeriodBudget | None:
    """The period budget of the running run: the arguments, else the Connection's extras.

    :param budget: the operator's rendered ``period_budget``.
    :param period: the operator's rendered ``budget_period``.
    :param hook: the hook of the operator's Connection (its ``period_budget`` and
        ``budget_period`` extras are the fallbacks).
    :param dag_run: the running DAG run (``context["dag_run"]``).
    """
    kind = period_kind(period)  # a bad period is refused even when no budget is set
    credits = budget_value(budget, field_name="period_budget")
    if credits is None:
        credits = hook.period_budget
    if credits is None:
        return None
    kind = kind or hook.budget_period or DEFAULT_PERIOD
    return PeriodBudget(credits, period_of(kind, run_moment(dag_run)))


def period_spend(ti: Any, task_ids: Iterable[str], run_ids: Iterable[str]) -> int | float:
    """Sum the manifests of the generate tasks of the registered runs and of the running one.

    :param ti: the running task instance.
    :param task_ids: the generate tasks of the DAG.
    :param run_ids: the runs registered for the period.
    """
    ids = list(task_ids)
    runs = dict.fromkeys([*run_ids, ti.run_id])
    return spent_by(value for run_id in runs for value in run_manifests(ti, ids, run_id))


def preflight_problem(
    *, needed: float, budget: PeriodBudget, spent: float
) -> RivyaBudgetExceededError | None:
    """Return the error to raise when ``needed`` credits exceed what is left of ``budget``.

    :param needed: credits the run needs.
    :param budget: the period budget.
    :param spent: credits the DAG's runs of the period already spent.
    """
    left = max(0, budget.credits - spent)
    if needed <= left:
        return None
    return RivyaBudgetExceededError(
        f"run needs {needed:g} credits, period budget {budget.credits:g} for "
        f"{budget.period.label} has {left:g} left ({spent:g} spent by this DAG); "
        "nothing was submitted",
        needed,
        spent,
        budget.credits,
    )


def generation_problem(
    *, needed: float, budget: PeriodBudget, spent: float
) -> RivyaBudgetExceededError | None:
    """Return the error to raise when one new generation would overrun ``budget``.

    :param needed: what the generation costs.
    :param budget: the period budget.
    :param spent: credits the DAG's runs of the period already spent.
    """
    if spent + needed <= budget.credits:
        return None
    return RivyaBudgetExceededError(
        f"period budget for {budget.period.label} spent: {spent:g} of {budget.credits:g} "
        f"credits already used by this DAG's runs, this one needs {needed:g} "
        f"(short by {spent + needed - budget.credits:g}); nothing was submitted",
        needed,
        spent,
        budget.credits,
    )


def checked_arguments(*, period_budget: Any, budget_period: Any, task_id: str) -> None:
    """Check ``period_budget`` and ``budget_period`` when the operator is built (not templates).

    :raises RequestValidationError: naming the field and what is allowed.
    """
    for value, check in (
        (period_budget, lambda v: budget_value(v, field_name="period_budget")),
        (budget_period, period_kind),
    ):
        if not (isinstance(value, str) and "{{" in value):
            try:
                check(value)
            except RequestValidationError as exc:
                raise RequestValidationError(
                    exc.problems, subject=f"arguments of task {task_id!r}"
                ) from None
