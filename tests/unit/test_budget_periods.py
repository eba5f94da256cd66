"""Period budgets: the UTC calendar periods, their labels, and the refusal messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from rivya_provider.client import RequestValidationError
from rivya_provider.operators._period import (
    PeriodBudget,
    generation_problem,
    preflight_problem,
    register_key,
    run_moment,
)
from rivya_provider.period import Period, period_kind, period_of

UTC = timezone.utc


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    *,
    tz: timezone = UTC,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=tz)


@pytest.mark.parametrize(
    ("kind", "moment", "start", "end", "label"),
    [
        ("day", at(2026, 12, 7, 3, 15), at(2026, 12, 7), at(2026, 12, 8), "2026-12-07"),
        ("day", at(2026, 12, 31, 23, 59), at(2026, 12, 31), at(2027, 1, 1), "2026-12-31"),
        # Weeks run Monday to Sunday; 7 December 2026 is a Monday.
        ("week", at(2026, 12, 7), at(2026, 12, 7), at(2026, 12, 14), "2026-W50"),
        ("week", at(2026, 12, 13, 23, 59), at(2026, 12, 7), at(2026, 12, 14), "2026-W50"),
        # An ISO week that straddles the new year belongs to the year of its Thursday.
        ("week", at(2027, 1, 2), at(2026, 12, 28), at(2027, 1, 4), "2026-W53"),
        ("month", at(2026, 12, 7), at(2026, 12, 1), at(2027, 1, 1), "2026-12"),
        ("month", at(2028, 2, 29, 12), at(2028, 2, 1), at(2028, 3, 1), "2028-02"),
        ("month", at(2027, 1, 1), at(2027, 1, 1), at(2027, 2, 1), "2027-01"),
    ],
)
def test_periods_are_utc_calendar_periods(
    kind: str, moment: datetime, start: datetime, end: datetime, label: str
) -> None:
    period = period_of(kind, moment)

    assert (period.start, period.end, period.label) == (start, end, label)
    assert moment in period
    assert end not in period  # the end belongs to the next period
    assert period_of(kind, end).start == end


def test_a_moment_elsewhere_counts_in_its_utc_period() -> None:
    # 1 January 00:30 in Paris is still 31 December in UTC.
    paris_new_year = at(2027, 1, 1, 0, 30, tz=timezone(timedelta(hours=1)))

    assert period_of("month", paris_new_year).label == "2026-12"
    assert period_of("day", paris_new_year).label == "2026-12-31"
    # A naive time is taken to be UTC, as Airflow stores times.
    assert period_of("day", datetime(2027, 1, 1, 0, 30)).label == "2027-01-01"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("month", "month"), (" Week ", "week"), ("day", "day"), ("", None), (None, None)],
)
def test_periods_are_read_as_given_or_rendered(given: Any, expected: str | None) -> None:
    assert period_kind(given) == expected


@pytest.mark.parametrize("bad", ["year", "monthly", 30, "quarter"])
def test_a_bad_period_names_the_field_and_the_allowed_periods(bad: Any) -> None:
    with pytest.raises(RequestValidationError) as caught:
        period_kind(bad)

    assert "budget_period: must be one of 'day', 'week', 'month' (UTC)" in str(caught.value)
    with pytest.raises(RequestValidationError, match="budget_period"):
        period_of(str(bad), at(2026, 12, 7))


def test_a_run_counts_in_the_period_it_was_due_in_not_when_it_started() -> None:
    # Due at the last second of November, started (or cleared and re-run) in December.
    run = SimpleNamespace(
        run_after=at(2026, 11, 30, 23, 59, 59),
        logical_date=None,
        start_date=at(2026, 12, 1, 0, 5),
    )

    assert period_of("month", run_moment(run)).label == "2026-11"
    assert run_moment(SimpleNamespace(logical_date=at(2026, 5, 1))) == at(2026, 5, 1)


def test_the_register_is_one_variable_per_dag_and_period() -> None:
    period = period_of("month", at(2026, 12, 7))

    assert register_key("marketing", period) == "rivya_spend:marketing:2026-12"
    assert register_key("marketing", period_of("week", at(2026, 12, 7))).endswith(":2026-W50")


def december(credits: float) -> PeriodBudget:
    return PeriodBudget(credits, period_of("month", at(2026, 12, 7)))


def test_the_preflight_names_what_is_left_of_the_period() -> None:
    problem = preflight_problem(needed=58, budget=december(500), spent=470)

    assert str(problem) == (
        "run needs 58 credits, period budget 500 for 2026-12 has 30 left (470 spent by this "
        "DAG); nothing was submitted"
    )
    assert problem is not None
    assert (problem.needed, problem.spent, problem.budget) == (58, 470, 500)
    assert preflight_problem(needed=30, budget=december(500), spent=470) is None
    # Spent past the budget (concurrent runs): nothing is left, never a negative amount.
    assert "has 0 left (520 spent" in str(
        preflight_problem(needed=1, budget=december(500), spent=520)
    )


def test_the_guard_names_the_period_spend_and_the_shortfall() -> None:
    problem = generation_problem(needed=14, budget=december(40), spent=28)

    assert str(problem) == (
        "period budget for 2026-12 spent: 28 of 40 credits already used by this DAG's runs, "
        "this one needs 14 (short by 2); nothing was submitted"
    )
    assert generation_problem(needed=12, budget=december(40), spent=28) is None


def test_periods_compare_by_value() -> None:
    assert period_of("week", at(2026, 12, 9)) == Period("week", at(2026, 12, 7), at(2026, 12, 14))


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"budget_period": "year"}, "budget_period: must be one of 'day', 'week', 'month'"),
        ({"period_budget": -5}, "period_budget: must be a number of credits >= 0"),
        ({"period_budget": "lots"}, "period_budget"),
    ],
)
def test_a_bad_period_budget_is_refused_when_the_operator_is_built(
    arguments: dict[str, Any], field: str
) -> None:
    from rivya_provider.operators.budget import RivyaCreditBudgetOperator
    from rivya_provider.operators.generate import RivyaGenerateOperator

    with pytest.raises(RequestValidationError, match="arguments of task 'generate'") as caught:
        RivyaGenerateOperator(task_id="generate", model="flux-2-flex", prompt="x", **arguments)
    assert field in str(caught.value)
    with pytest.raises(RequestValidationError, match=field):
        RivyaCreditBudgetOperator(task_id="preflight", generations=[], **arguments)


def test_templated_period_arguments_are_checked_once_rendered() -> None:
    from rivya_provider.operators.generate import RivyaGenerateOperator

    operator = RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="x",
        period_budget="{{ params.budget }}",
        budget_period="{{ params.period }}",
    )
    assert operator.budget_period == "{{ params.period }}"


def hook_with_extras(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Any:
    import json

    from rivya_provider.hooks.rivya import RivyaHook

    conn = {
        "conn_type": "rivya",
        "host": "https://rivya.ai",
        "password": "rvya_sk_x",
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(conn))
    return RivyaHook()


def test_the_connection_may_hold_the_period_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = hook_with_extras(monkeypatch, period_budget=500, budget_period="week")
    assert (hook.period_budget, hook.budget_period) == (500, "week")

    hook = hook_with_extras(monkeypatch, credit_budget=40)
    assert (hook.credit_budget, hook.period_budget, hook.budget_period) == (40, None, None)


def test_a_bad_period_in_the_connection_names_the_extra_and_the_allowed_periods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = hook_with_extras(monkeypatch, period_budget=500, budget_period="year")

    with pytest.raises(RequestValidationError) as caught:
        _ = hook.budget_period
    assert caught.value.fields == ["extra.budget_period"]
    assert "'day', 'week' or 'month'" in str(caught.value)


class Variables:
    """Airflow Variables as the Task SDK serves them, kept in memory.

    ``interleave`` runs once, right after the next write: another run's write landing between
    this one and its read-back (a read-modify-write that read before this write).
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0
        self.interleave: Any = None

    def get(self, key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, description: str | None = None, **_: Any) -> None:
        self.values[key] = value
        self.writes += 1
        interleave, self.interleave = self.interleave, None
        if interleave is not None:
            interleave()


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> Variables:
    from rivya_provider.operators import _period

    store = Variables()
    monkeypatch.setattr(_period, "Variable", store)
    return store


def test_a_run_is_registered_once_per_period(variables: Variables) -> None:
    from rivya_provider.operators._period import RunRegister

    register = RunRegister("marketing", period_of("month", at(2026, 12, 7)))

    assert register.enter("run-a") == ["run-a"]
    assert register.enter("run-b") == ["run-a", "run-b"]
    assert register.enter("run-a") == ["run-a", "run-b"]  # already there: nothing written
    assert variables.writes == 2
    assert variables.values == {"rivya_spend:marketing:2026-12": {"runs": ["run-a", "run-b"]}}


def test_a_registration_replaced_by_a_concurrent_one_is_written_again(
    variables: Variables,
) -> None:
    from rivya_provider.operators._period import RunRegister

    key = "rivya_spend:marketing:2026-12"
    register = RunRegister("marketing", period_of("month", at(2026, 12, 7)))
    register.enter("run-a")
    # Run c read the register (run-a only) before run b wrote, and writes after it.
    variables.interleave = lambda: variables.values.update({key: {"runs": ["run-a", "run-c"]}})

    runs = register.enter("run-b")

    assert sorted(runs) == ["run-a", "run-b", "run-c"]
    assert sorted(variables.values[key]["runs"]) == ["run-a", "run-b", "run-c"]


@pytest.mark.parametrize("stored", [["run-a"], {"runs": "run-a"}, {"runs": [1]}, "text"])
def test_a_register_that_cannot_be_read_fails_the_check(variables: Variables, stored: Any) -> None:
    from rivya_provider.operators._period import RunRegister

    variables.values["rivya_spend:marketing:2026-W50"] = stored

    with pytest.raises(RequestValidationError, match=r"Variable rivya_spend:marketing:2026-W50"):
        RunRegister("marketing", period_of("week", at(2026, 12, 7))).enter("run-b")
