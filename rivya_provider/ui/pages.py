"""Server-rendered HTML of the Rivya pages: inline CSS, every value escaped, no scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from rivya_provider.ui.airflow_links import dag_url
from rivya_provider.ui.board import Board, Card, Generation, task_name
from rivya_provider.ui.chart import CHART_CSS, spend_chart
from rivya_provider.ui.daily import DailySpend
from rivya_provider.ui.data import DagSpend, is_stored

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#1a202c;background:#fff}
h1{font-size:18px;margin:0 0 4px} h2{font-size:15px;margin:20px 0 4px}
p.sub{color:#4a5568;margin:0 0 12px}
a{color:#2b6cb0} a:visited{color:#6b46c1}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #e2e8f0;padding:6px 8px;
text-align:left;vertical-align:top} th{background:#f7fafc;font-weight:600}
code{font-size:12px;white-space:pre-wrap;word-break:break-word} .num{text-align:right}
.status-succeeded{color:#276749} .status-failed{color:#c53030} .muted{color:#718096}
.card{display:inline-block;border:1px solid #e2e8f0;border-radius:6px;padding:10px 16px;
margin:0 0 16px}
.big{font-size:24px;font-weight:600}
.board{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,300px),1fr));gap:16px}
.asset{border:1px solid #e2e8f0;border-radius:8px;padding:12px;min-width:0;
overflow-wrap:anywhere}
.asset h2{font-size:15px;margin:0 0 8px;display:flex;gap:6px;flex-wrap:wrap;align-items:center}
.frame{display:flex;align-items:center;justify-content:center;background:#edf2f7;
border-radius:4px;min-height:120px;margin:0 0 8px}
img.shot{display:block;max-width:100%;max-height:360px;width:auto;height:auto;
object-fit:contain}
.mark{font-size:12px;font-weight:600;border-radius:10px;padding:1px 8px;border:1px solid}
.mark-approved,.mark-published{color:#276749} .mark-rejected,.mark-failed{color:#c53030}
.mark-retake,.mark-in-progress,.mark-waiting{color:#975a16} .mark-answered{color:#4a5568}
.lightbox{display:none} .lightbox:target{display:flex;position:fixed;inset:0;z-index:10;
align-items:center;justify-content:center;background:rgba(0,0,0,.85);cursor:zoom-out}
.lightbox img{width:96vw;height:96vh;object-fit:contain} .enlarge{cursor:zoom-in}
dl.params{display:grid;grid-template-columns:max-content 1fr;gap:2px 8px;margin:4px 0}
dl.params dt{color:#4a5568} dl.params dd{margin:0}
.facts{margin:4px 0 0;padding:0;list-style:none}
@media (prefers-color-scheme: dark){body{background:#1a202c;color:#e2e8f0}
a{color:#90cdf4} a:visited{color:#d6bcfa}
th{background:#2d3748} th,td,.card,.asset{border-color:#4a5568} p.sub,.muted,dl.params dt
{color:#a0aec0} .frame{background:#2d3748}
.status-succeeded,.mark-approved,.mark-published{color:#9ae6b4}
.status-failed,.mark-rejected,.mark-failed{color:#feb2b2}
.mark-retake,.mark-in-progress,.mark-waiting{color:#fbd38d} .mark-answered{color:#cbd5e0}}
"""


#: How often the page of a run still under way reloads itself, in seconds.
REFRESH_SECONDS = 10


@dataclass(frozen=True)
class Balance:
    """What the overview says about the credit balance: a number, or why there is none."""

    credits: float | None
    note: str = ""


def _page(title: str, body: str, *, refresh: bool = False) -> str:
    # A run still under way reloads itself: the board changes without a click, and no script.
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{escape(title)}</title><style>{_CSS}{CHART_CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def _credits(value: float) -> str:
    return f"{value:g}"


def _http_url(url: str | None) -> str | None:
    """Return ``url`` when the browser may load it (http or https), else ``None``."""
    return url if url and url.startswith(("https://", "http://")) else None


def file_url(*, run_id: str, index: int, file_index: int) -> str:
    """Return the URL of one result file of a run's generation, relative to the run's page.

    Relative, so it works wherever the api-server is mounted (behind a proxy's path too).

    :param run_id: the run (the last segment of the page's URL).
    :param index: the generation's number in the run.
    :param file_index: the file's position in that generation's manifest.
    """
    return f"./{quote(run_id, safe='')}/files/{index}/{file_index}"


def _image(generation: Generation, *, run_id: str) -> str:
    """The image at its own aspect ratio; a click shows it enlarged over the page.

    Airflow shows the view in a frame sandboxed with ``allow-forms`` only: no scripts, no new tab,
    no navigating the window. So the enlarged image is a CSS ``:target`` overlay of the page's
    own (a link to a fragment is allowed), and a click on it closes it.
    """
    manifest = generation.manifest
    src = None
    for position, result in enumerate(manifest.files):
        if is_stored(result):
            src = file_url(run_id=run_id, index=generation.index, file_index=position)
            break
    src = src or _http_url(manifest.primary_url)
    if src is None:
        return '<div class="frame"><span class="muted">no image</span></div>'
    alt = escape(f"Result of {manifest.generation_id}")
    view = f"view-{generation.index}"
    return (
        f'<a class="enlarge" href="#{view}" title="Enlarge"><div class="frame">'
        f'<img class="shot" src="{escape(src)}" alt="{alt}"></div></a>'
        f'<a class="lightbox" id="{view}" href="#board" title="Close">'
        f'<img src="{escape(src)}" alt="{alt}" loading="lazy"></a>'
    )


def _value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _params(params: dict[str, object]) -> str:
    if not params:
        return ""
    items = "".join(
        f"<dt>{escape(str(key))}</dt><dd>{escape(_value(value))}</dd>"
        for key, value in sorted(params.items())
    )
    return f'<dl class="params">{items}</dl>'


def _mark(kind: str, text: str, title: str | None = None) -> str:
    css = f"mark mark-{kind.replace(' ', '-')}"
    hint = f' title="{escape(title)}"' if title else ""
    return f'<span class="{css}"{hint}>{escape(text)}</span>'


def _marks(card: Card) -> str:
    marks = []
    if card.retake:
        marks.append(_mark("retake", "retake"))
    if card.review is not None:
        review = card.review
        text = review.verdict if review.verdict != "answered" else ", ".join(review.chosen)
        asked = task_name(review.task_id, review.map_index)
        marks.append(_mark(review.verdict, text, f"Answered in task {asked}"))
    if card.published_by is not None:
        publisher = task_name(card.published_by.task_id, card.published_by.map_index)
        marks.append(_mark("published", "published", f"Published by task {publisher}"))
    if card.generation is None:
        marks.append(_mark(card.status, card.status))
    return "".join(marks)


def _credits_text(card: Card) -> str:
    if card.in_progress:
        if card.credits is None:
            return "in progress"
        return f"{_credits(card.credits)} credits reserved"
    return f"{_credits(card.credits or 0.0)} credits"


def _card(card: Card, *, run_id: str) -> str:
    task = card.task
    where = escape(task_name(task.task_id, task.map_index))
    parts = [f'<h2><span class="label">{escape(card.label)}</span>{_marks(card)}</h2>']
    facts = []
    if card.generation is not None:
        m = card.generation.manifest
        parts.append(_image(card.generation, run_id=run_id))
        if m.prompt:
            parts.append(f'<p class="prompt">{escape(m.prompt)}</p>')
        status = f'<span class="status-{escape(m.status)}">{escape(m.status)}</span>'
        facts.append(f"{status} · {escape(_credits_text(card))}")
    else:
        reason = f" · {escape(card.reason)}" if card.reason else ""
        facts.append(f"{escape(_credits_text(card))}{reason}")
    if card.model:
        facts.append(f"Model: <code>{escape(card.model)}</code>")
    if card.generation is not None:
        m = card.generation.manifest
        generation_id = escape(m.generation_id)
        link = _http_url(m.primary_url)
        if link:
            anchor = f'<a href="{escape(link)}">'  # in the frame: the sandbox allows no more
            generation_id = f"{anchor}{generation_id}</a>"
        facts.append(f'Generation {generation_id} <span class="muted">{escape(m.origin)}</span>')
    facts.append(f'<span class="muted">Task {where}</span>')
    parts.append('<ul class="facts">' + "".join(f"<li>{f}</li>" for f in facts) + "</ul>")
    if card.generation is not None:
        parts.append(_params(card.generation.manifest.params))
    return '<article class="asset">' + "".join(parts) + "</article>"


def run_page(*, dag_id: str, run_id: str, board: Board) -> str:
    """Render a DAG run's review board: one card per generation, in progress ones included.

    :param dag_id: the DAG.
    :param run_id: the run.
    :param board: what :func:`~rivya_provider.ui.data.run_board` found.
    """
    cards = board.cards
    summary = f"{len(cards)} generation(s), {_credits(board.charged)} credits charged"
    if board.reserved:
        summary += f", {_credits(board.reserved)} reserved"
    if board.run_state:
        summary += f"; run {escape(board.run_state)}"
    head = (
        f"<h1>Rivya generations</h1><p class=sub>{escape(dag_id)} / {escape(run_id)}: {summary}</p>"
    )
    if not cards:
        body = head + "<p>This run has no Rivya generations.</p>"
        return _page("Rivya generations", body, refresh=board.live)
    grid = "".join(_card(card, run_id=run_id) for card in cards)
    return _page(
        "Rivya generations", f'{head}<div class="board" id="board">{grid}</div>', refresh=board.live
    )


def _dag_link(dag_id: str) -> str:
    """The DAG's name, a link to its page in the Airflow UI.

    No ``target="_top"``: Airflow shows the credits page in a frame sandboxed without
    ``allow-top-navigation`` (Airflow 3.1 to 3.3), where such a link does nothing. A plain link
    opens the DAG's page in the frame, which Airflow 3.3 mirrors in the address bar.
    """
    return f'<a href="{escape(dag_url(dag_id))}" title="The DAG in Airflow">{escape(dag_id)}</a>'


def overview_page(
    *, balance: Balance, spends: Iterable[DagSpend], runs_per_dag: int, daily: DailySpend
) -> str:
    """Render the credit balance, the spend per day and the spend per DAG.

    :param balance: the balance of the ``rivya_default`` account, or why it is not shown.
    :param spends: credits per DAG over each DAG's recent runs, from the manifests.
    :param runs_per_dag: how many recent runs of each DAG were summed.
    :param daily: credits per DAG and UTC day over the last days, from the same manifests.
    """
    shown = _credits(balance.credits) if balance.credits is not None else "&mdash;"
    note = f"<div class=muted>{escape(balance.note)}</div>" if balance.note else ""
    card = (
        "<div class=card><div class=muted>Credit balance</div>"
        f"<div class=big>{shown}</div>{note}</div>"
    )
    rows = "".join(
        f"<tr><td>{_dag_link(s.dag_id)}</td><td class=num>{len(s.runs)}</td>"
        f"<td class=num>{s.generations}</td><td class=num>{_credits(s.credits)}</td></tr>"
        for s in spends
    )
    table = (
        "<table><thead><tr><th>DAG</th><th class=num>Runs with generations</th>"
        "<th class=num>Generations</th><th class=num>Credits charged</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if rows
        else "<p>No Rivya generations in the recent runs of the DAGs you can read.</p>"
    )
    sub = f"<p class=sub>Spend over the last {runs_per_dag} runs of each DAG you can read.</p>"
    chart = f"<h2>Spend over time</h2>{spend_chart(daily)}"
    per_dag = f"<h2>Spend per DAG</h2>{sub}{table}"
    return _page("Rivya credits", f"<h1>Rivya credits</h1>{card}{chart}{per_dag}")
