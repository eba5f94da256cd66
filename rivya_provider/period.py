"""Calendar periods of a period budget: which UTC day, ISO week or month a DAG run falls in.

A run belongs to the period that holds its ``run_after`` (when it was due, or was triggered):
unlike its start date, clearing the run does not move it, so a cleared run stays in the period
it was first counted in. Nothing here talks to Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from rivya_provider.client import FieldProblem, RequestValidationError

#: The periods a budget can cover; each is a calendar period in UTC (weeks start on Monday).
PERIODS = ("day", "week", "month")
#: The period of a ``period_budget`` given without ``budget_period``.
DEFAULT_PERIOD = "month"


def period_kind(value: Any, *, field_name: str = "budget_period") -> str | None:
    """Read a period as given or rendered (``"month"``; ``None`` or ``""`` for not set).

    :param value: the period.
    :param field_name: the argument's name, for the error.
    :raises RequestValidationError: naming the field and the allowed periods.
    """
    if value is None or (isinstance(value, str) and value.strip() in {"", "None", "null"}):
        return None
    kind = value.strip().lower() if isinstance(value, str) else None
    if kind not in PERIODS:
        allowed = ", ".join(repr(name) for name in PERIODS)
        problem = FieldProblem(field_name, f"must be one of {allowed} (UTC), got {value!r}")
        raise RequestValidationError([problem], subject="period budget")
    return kind


@dataclass(frozen=True)
class Period:
    """One calendar period in UTC: ``start`` included, ``end`` excluded."""

    kind: str
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        """``2026-12-07`` for a day, ``2026-W49`` for an ISO week, ``2026-12`` for a month."""
        if self.kind == "day":
            return self.start.strftime("%Y-%m-%d")
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return self.start.strftime("%Y-%m")

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= _utc(moment) < self.end


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken to be UTC already (Airflow's own convention)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def period_of(kind: str, moment: datetime) -> Period:
    """Return the ``kind`` period (``day``, ``week`` or ``month``) that holds ``moment``.

    :param kind: one of :data:`PERIODS`.
    :param moment: a time; a naive one is taken to be UTC.
    """
    day = _utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        return Period(kind, day, day + timedelta(days=1))
    if kind == "week":
        monday = day - timedelta(days=day.weekday())
        return Period(kind, monday, monday + timedelta(days=7))
    if kind == "month":
        first = day.replace(day=1)
        following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        return Period(kind, first, following)
    period_kind(kind)  # raises, naming the allowed periods
    raise AssertionError(kind)  # pragma: no cover - period_kind accepted an unknown period
