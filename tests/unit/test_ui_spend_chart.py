"""The credits page's spend over time: charges put on UTC days per DAG, and the chart of them."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from rivya_provider.ui.chart import COLOURS, colour_classes, nice_top, spend_chart
from rivya_provider.ui.daily import CHART_DAYS, DailySpend, daily_spend, window
from rivya_provider.ui.data import DagSpend
from rivya_provider.ui.pages import Balance, overview_page

HOSTILE = '<script>alert("x")</script>'
UTC = timezone.utc
#: 03:00 UTC on Monday 7 December 2026: the window runs from 8 November to 7 December.
NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def test_the_window_is_the_last_30_utc_days_up_to_today() -> None:
    start, end = window(NOW)
    assert start == datetime(2026, 11, 8, tzinfo=UTC)
    assert end == datetime(2026, 12, 8, tzinfo=UTC)
    spend = daily_spend([], now=NOW)
    assert len(spend.days) == CHART_DAYS == 30
    assert (spend.first, spend.last) == (date(2026, 11, 8), date(2026, 12, 7))
    # Every day is there, in order, none left out.
    assert all(b - a == timedelta(days=1) for a, b in pairwise(spend.days))


def test_charges_are_summed_per_dag_and_utc_day() -> None:
    charges = [
        ("a", datetime(2026, 12, 6, 0, 0, tzinfo=UTC), 14.0),
        ("a", datetime(2026, 12, 6, 23, 59, 59, tzinfo=UTC), 4.0),
        ("b", datetime(2026, 12, 6, 12, tzinfo=UTC), 2.5),
        ("a", datetime(2026, 12, 7, 0, 0, tzinfo=UTC), 4.0),
    ]
    spend = daily_spend(charges, now=NOW)
    assert spend.credits == {
        "a": {date(2026, 12, 6): 18.0, date(2026, 12, 7): 4.0},
        "b": {date(2026, 12, 6): 2.5},
    }
    assert spend.on(date(2026, 12, 6)) == {"a": 18.0, "b": 2.5}
    assert spend.day_total(date(2026, 12, 6)) == 20.5
    assert spend.day_total(date(2026, 12, 5)) == 0
    assert spend.dags == ["a", "b"]
    assert spend.total == 24.5


def test_days_are_utc_days_whatever_the_time_zone_of_run_after() -> None:
    # 23:30 in New York on 5 December is 04:30 UTC on 6 December; naive times are UTC.
    new_york = timezone(timedelta(hours=-5))
    charges = [
        ("a", datetime(2026, 12, 5, 23, 30, tzinfo=new_york), 1.0),
        ("a", datetime(2026, 12, 5, 23, 30), 2.0),
    ]
    spend = daily_spend(charges, now=NOW)
    assert spend.credits == {"a": {date(2026, 12, 6): 1.0, date(2026, 12, 5): 2.0}}


@pytest.mark.parametrize(
    "run_after",
    [
        datetime(2026, 11, 7, 23, 59, 59, tzinfo=UTC),  # the day before the window
        datetime(2026, 12, 8, 0, 0, tzinfo=UTC),  # tomorrow (a run due later)
    ],
)
def test_charges_outside_the_window_are_left_out(run_after: datetime) -> None:
    edge = datetime(2026, 11, 8, 0, 0, tzinfo=UTC)
    spend = daily_spend([("a", run_after, 5.0), ("a", edge, 1.0)], now=NOW)
    assert spend.credits == {"a": {date(2026, 11, 8): 1.0}}


def test_a_window_without_charges_is_empty_and_says_so() -> None:
    spend = daily_spend([("a", NOW, 0.0)], now=NOW)  # a failed generation charges nothing
    assert spend.credits == {}
    assert spend.total == 0
    html = spend_chart(spend)
    assert "No credits charged in the last 30 days." in html
    assert "<svg" not in html
    assert "run_after" in html  # how days are counted is still said


def test_the_dags_charged_most_get_their_own_colour_the_others_share_one() -> None:
    charges = [(f"dag{n}", NOW, float(n + 1)) for n in range(COLOURS + 2)]
    spend = daily_spend(charges, now=NOW)
    classes = colour_classes(spend)
    assert classes[f"dag{COLOURS + 1}"] == "c0"  # the most credits
    assert classes["dag2"] == f"c{COLOURS - 1}"
    assert classes["dag1"] == classes["dag0"] == "c-other"
    html = spend_chart(spend)
    assert "2 other DAG(s)" in html
    assert "<title>2026-12-07 · 2 other DAG(s): 3 credits</title>" in html


@pytest.mark.parametrize(
    ("largest", "top", "step"),
    [(1, 1, 0.25), (18, 20, 5), (38, 40, 10), (40, 40, 10), (1234, 1500, 500), (0.3, 0.3, 0.1)],
)
def test_the_credits_axis_ends_on_a_round_number(largest: float, top: float, step: float) -> None:
    assert nice_top(largest) == pytest.approx((top, step))


def chart() -> str:
    charges = [
        ("campaign", datetime(2026, 12, 6, 23, 59, tzinfo=UTC), 14.0),
        ("campaign", datetime(2026, 12, 6, 8, tzinfo=UTC), 4.0),
        (HOSTILE, datetime(2026, 12, 6, 9, tzinfo=UTC), 2.5),
        (HOSTILE, datetime(2026, 11, 20, 9, tzinfo=UTC), 7.0),
    ]
    return spend_chart(daily_spend(charges, now=NOW))


def test_the_chart_escapes_every_dag_name() -> None:
    html = chart()
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    # In the legend, a bar's tooltip and the table.
    assert html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 4


def test_each_days_numbers_are_readable_without_the_picture() -> None:
    html = chart()
    # Tooltips: the day's total, and each DAG's part of the bar.
    assert "<title>2026-12-06: 20.5 credits</title>" in html
    assert "<title>2026-12-06 · campaign: 18 credits</title>" in html
    assert "<title>2026-11-20: 7 credits</title>" in html
    # The table: days with a charge only, the latest first.
    rows = re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td><td class=num>([\d.]+)</td>", html)
    assert rows == [("2026-12-06", "20.5"), ("2026-11-20", "7")]
    assert "&lt;/script&gt; 2.5, campaign 18</td>" in html  # each DAG's part, by name
    # One bar group per day of the window, and the credits axis up to a round 30.
    assert html.count('<g class="day">') == 30
    assert re.findall(r'text-anchor="end">([\d.]+)</text>', html) == ["0", "10", "20", "30"]
    assert "Credits charged per UTC day from 2026-11-08 to 2026-12-07: 27.5 in all" in html


def test_the_chart_says_which_day_a_generation_counts_on() -> None:
    html = chart()
    assert "<code>run_after</code>" in html
    assert "as period budgets count it" in html


def test_the_chart_follows_the_dark_scheme_and_the_page_width() -> None:
    page = overview_page(
        balance=Balance(1.0), spends=[], runs_per_dag=25, daily=daily_spend([], now=NOW)
    )
    dark = page[page.rindex("prefers-color-scheme: dark") :]
    assert "svg.chart .grid{stroke:#4a5568}" in dark
    assert ".c0{fill:#63b3ed" in dark
    assert "svg.chart{display:block;width:100%;max-width:880px;height:auto" in page
    assert "svg.chart text{fill:currentColor" in page


def test_the_credits_page_shows_the_chart_and_the_table_per_dag() -> None:
    daily = daily_spend([("campaign", NOW, 14.0)], now=NOW)
    spends = [DagSpend(dag_id="campaign", runs={"r"}, generations=1, credits=14.0)]
    page = overview_page(balance=Balance(986.0), spends=spends, runs_per_dag=25, daily=daily)
    assert page.index("<h2>Spend over time</h2>") < page.index("<svg class=")
    assert page.index("</svg>") < page.index("<h2>Spend per DAG</h2>")
    assert "<title>2026-12-07 · campaign: 14 credits</title>" in page
    assert "<script" not in page


def test_an_empty_daily_spend_has_no_dags() -> None:
    spend = DailySpend(days=(date(2026, 12, 7),), credits={})
    assert spend.dags == []
    assert spend.on(date(2026, 12, 7)) == {}


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[n : n + 2], 16) / 255 for n in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(first: str, second: str) -> float:
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_bar_colour_stands_out_from_the_background_light_and_dark() -> None:
    from rivya_provider.ui.chart import CHART_CSS

    light_css, dark_css = CHART_CSS.split("prefers-color-scheme: dark")
    for css, background in ((light_css, "#ffffff"), (dark_css, "#1a202c")):
        fills = re.findall(r"\.c(?:\d|-other)\{fill:(#[0-9a-f]{6})", css)
        assert len(fills) == COLOURS + 1
        # WCAG's 3:1 for parts of a graphic.
        assert all(_contrast(fill, background) >= 3 for fill in fills), (background, fills)
