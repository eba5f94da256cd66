"""The credits page's spend-over-time chart: inline SVG, every value escaped, no script.

One stacked bar per UTC day, a colour per DAG (the DAGs charged the most get their own colour,
the others share one). Every bar segment and every day has a ``<title>`` tooltip, and the same
numbers are in a table under the chart, so nothing needs the picture to be read. The colours
come from CSS classes, so the chart follows the page's light or dark scheme.
"""

from __future__ import annotations

import math
from datetime import date
from html import escape

from rivya_provider.ui.daily import DailySpend

#: DAGs with a colour of their own; the others are drawn together as "other DAGs".
COLOURS = 6
#: The SVG's coordinate box; it scales to the page's width (up to ``MAX_WIDTH_PX``).
WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 26
MAX_WIDTH_PX = 880
#: A day label every this many days, counting back from the current day.
LABEL_EVERY = 7
OTHER = "other"

CHART_CSS = f"""
svg.chart{{display:block;width:100%;max-width:{MAX_WIDTH_PX}px;height:auto;margin:4px 0}}
svg.chart text{{fill:currentColor;font-size:11px}} svg.chart .grid{{stroke:#e2e8f0}}
svg.chart .axis{{stroke:#718096}} svg.chart .hit{{fill:transparent}}
svg.chart .day:hover .hit{{fill:rgba(113,128,150,.15)}}
.legend{{list-style:none;margin:4px 0;padding:0;display:flex;flex-wrap:wrap;gap:4px 14px}}
.swatch{{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}}
.c0{{fill:#3182ce;background:#3182ce}} .c1{{fill:#dd6b20;background:#dd6b20}}
.c2{{fill:#38a169;background:#38a169}} .c3{{fill:#805ad5;background:#805ad5}}
.c4{{fill:#d53f8c;background:#d53f8c}} .c5{{fill:#319795;background:#319795}}
.c-{OTHER}{{fill:#718096;background:#718096}}
details.days{{margin:6px 0 0}} details.days table{{width:auto;min-width:50%}}
@media (prefers-color-scheme: dark){{svg.chart .grid{{stroke:#4a5568}}
svg.chart .axis{{stroke:#a0aec0}}
.c0{{fill:#63b3ed;background:#63b3ed}} .c1{{fill:#f6ad55;background:#f6ad55}}
.c2{{fill:#68d391;background:#68d391}} .c3{{fill:#b794f4;background:#b794f4}}
.c4{{fill:#f687b3;background:#f687b3}} .c5{{fill:#4fd1c5;background:#4fd1c5}}
.c-{OTHER}{{fill:#a0aec0;background:#a0aec0}}}}
"""


def _number(value: float) -> str:
    return f"{value:g}"


def _day(day: date) -> str:
    return day.isoformat()


def _short(day: date) -> str:
    return f"{day:%b} {day.day}"


def nice_top(largest: float, *, steps: int = 4) -> tuple[float, float]:
    """Return the top of the credits axis and its step: ``steps`` round steps (1, 2, 2.5 or 5
    times a power of ten) that reach ``largest``.

    :param largest: the largest day's credits (more than 0).
    :param steps: about how many grid lines the axis gets.
    """
    rough = largest / steps
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough)
    return step * math.ceil(largest / step - 1e-9), step


def colour_classes(spend: DailySpend) -> dict[str, str]:
    """The CSS class of each DAG's colour: ``c0``... for the DAGs charged the most, then
    ``c-other``."""
    return {dag_id: f"c{n}" if n < COLOURS else f"c-{OTHER}" for n, dag_id in enumerate(spend.dags)}


def _segments(spend: DailySpend, day: date) -> list[tuple[str, str, float]]:
    """``(label, css class, credits)`` of one day's bar, bottom up: coloured DAGs, then others."""
    classes = colour_classes(spend)
    on_day = spend.on(day)
    own = [
        (d, classes[d], on_day[d]) for d in spend.dags if d in on_day and classes[d] != f"c-{OTHER}"
    ]
    if other := [c for d, c in on_day.items() if classes[d] == f"c-{OTHER}"]:
        own.append((f"{len(other)} other DAG(s)", f"c-{OTHER}", sum(other)))
    return own


def _svg(spend: DailySpend) -> str:
    top, step = nice_top(max(spend.day_total(day) for day in spend.days))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(spend.days)
    bar = max(slot * 0.7, 1.0)
    parts = []
    ticks = round(top / step)
    for n in range(ticks + 1):
        y = TOP + plot_h - plot_h * n / ticks
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(step * n)}</text>'
        )
    last = len(spend.days) - 1
    for n, day in enumerate(spend.days):
        x = LEFT + n * slot
        total = spend.day_total(day)
        tip = escape(f"{_day(day)}: {_number(total)} credits")
        rects = [
            f'<rect class="hit" x="{x:.1f}" y="{TOP}" width="{slot:.1f}" height="{plot_h}"/>',
        ]
        base = float(TOP + plot_h)
        for label, css, credits in _segments(spend, day):
            height = plot_h * credits / top
            base -= height
            title = escape(f"{_day(day)} · {label}: {_number(credits)} credits")
            rects.append(
                f'<rect class="{css}" x="{x + (slot - bar) / 2:.1f}" y="{base:.1f}" '
                f'width="{bar:.1f}" height="{max(height, 0.5):.1f}"><title>{title}</title></rect>'
            )
        parts.append(f'<g class="day"><title>{tip}</title>{"".join(rects)}</g>')
        if (last - n) % LABEL_EVERY == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{escape(_short(day))}</text>"
            )
    bottom = TOP + plot_h
    axis = f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}"/>'
    summary = (
        f"Credits charged per UTC day from {_day(spend.first)} to {_day(spend.last)}: "
        f"{_number(spend.total)} in all"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
        f"{''.join(parts)}{axis}</svg>"
    )


def _legend(spend: DailySpend) -> str:
    classes = colour_classes(spend)
    items = [
        f'<li><span class="swatch {classes[d]}"></span>{escape(d)} '
        f'<span class="muted">{_number(spend.dag_total(d))}</span></li>'
        for d in spend.dags
        if classes[d] != f"c-{OTHER}"
    ]
    others = [d for d in spend.dags if classes[d] == f"c-{OTHER}"]
    if others:
        credits = sum(spend.dag_total(d) for d in others)
        items.append(
            f'<li><span class="swatch c-{OTHER}"></span>{len(others)} other DAG(s) '
            f'<span class="muted">{_number(credits)}</span></li>'
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


def _table(spend: DailySpend) -> str:
    rows = []
    for day in reversed(spend.days):
        on_day = spend.on(day)
        if not on_day:
            continue
        by_dag = ", ".join(f"{escape(d)} {_number(c)}" for d, c in on_day.items())
        rows.append(
            f"<tr><td>{_day(day)}</td><td class=num>{_number(sum(on_day.values()))}</td>"
            f"<td>{by_dag}</td></tr>"
        )
    return (
        '<details class="days"><summary>Credits per day, as a table</summary>'
        "<table><thead><tr><th>Day (UTC)</th><th class=num>Credits</th><th>By DAG</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="muted">Days without a charge are left out.</p></details>'
    )


def spend_chart(spend: DailySpend) -> str:
    """Render the chart of ``spend``, its legend, the note on how days are counted and the same
    numbers as a table; or a sentence when nothing was charged in the window.

    :param spend: what :func:`~rivya_provider.ui.daily.daily_spend` summed.
    """
    days = len(spend.days)
    note = (
        f'<p class="muted">Credits charged per UTC day over the last {days} days, from '
        f"{_day(spend.first)} to {_day(spend.last)}, in every run of the DAGs you can read. A "
        "generation counts on the day of its run's <code>run_after</code> (when the run was due "
        "or triggered), as period budgets count it: a run due at 23:59 that generates after "
        "midnight counts on the day it was due.</p>"
    )
    if spend.total <= 0:
        return f"<p>No credits charged in the last {days} days.</p>{note}"
    return f"{_svg(spend)}{_legend(spend)}{note}{_table(spend)}"
