"""Credits charged per UTC day and DAG over the last days: what the credits page's chart shows.

Pure: :mod:`rivya_provider.ui.data` reads the runs and manifests, this module puts each
generation's charged credits on a day. A generation counts on the UTC day of its run's
``run_after`` (when the run was due, or was triggered), the moment period budgets count a run
by (:func:`rivya_provider.operators._period.run_moment`), so the chart and a ``day`` period
budget agree on what a day spent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from rivya_provider.period import period_of

#: Days the chart covers: the current UTC day and the days before it.
CHART_DAYS = 30


@dataclass(frozen=True)
class DailySpend:
    """Credits charged per DAG and UTC day, over ``days`` (oldest first, no day left out)."""

    days: tuple[date, ...]
    #: ``{dag_id: {day: credits}}``; only days on which the DAG was charged something.
    credits: dict[str, dict[date, float]]

    @property
    def first(self) -> date:
        return self.days[0]

    @property
    def last(self) -> date:
        return self.days[-1]

    @property
    def dags(self) -> list[str]:
        """The DAGs charged in the window, the most credits first (then by name)."""
        return sorted(self.credits, key=lambda dag_id: (-self.dag_total(dag_id), dag_id))

    def dag_total(self, dag_id: str) -> float:
        """Credits ``dag_id`` was charged over the window."""
        return sum(self.credits.get(dag_id, {}).values())

    def on(self, day: date) -> dict[str, float]:
        """Credits charged on ``day``, per DAG (DAGs charged nothing that day left out)."""
        return {
            dag_id: by_day[day] for dag_id, by_day in sorted(self.credits.items()) if day in by_day
        }

    def day_total(self, day: date) -> float:
        """Credits charged on ``day`` by all DAGs."""
        return sum(self.on(day).values())

    @property
    def total(self) -> float:
        """Credits charged over the window by all DAGs."""
        return sum(self.dag_total(dag_id) for dag_id in self.credits)


def window(now: datetime, *, days: int = CHART_DAYS) -> tuple[datetime, datetime]:
    """Return the chart's window: the start of the UTC day ``days - 1`` days before ``now``'s,
    and the end of ``now``'s UTC day.

    :param now: the current time; a naive one is taken to be UTC.
    :param days: how many UTC days the window holds.
    """
    today = period_of("day", now)
    return today.start - timedelta(days=days - 1), today.end


def daily_spend(
    charges: Iterable[tuple[str, datetime, float]], *, now: datetime, days: int = CHART_DAYS
) -> DailySpend:
    """Sum charges per DAG and UTC day over the ``days`` UTC days up to ``now``'s.

    :param charges: ``(dag_id, run_after, charged_credits)`` of each generation; a naive
        ``run_after`` is taken to be UTC; one outside the window, or a charge of nothing (a
        failed generation), is left out.
    :param now: the current time; a naive one is taken to be UTC.
    :param days: how many UTC days the window holds.
    """
    start, end = window(now, days=days)
    credits: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for dag_id, run_after, charged in charges:
        day = period_of("day", run_after)
        if charged > 0 and start <= day.start < end:
            credits[dag_id][day.start.date()] += charged
    shown = tuple((start + timedelta(days=n)).date() for n in range(days))
    return DailySpend(shown, {dag_id: dict(by_day) for dag_id, by_day in credits.items()})
