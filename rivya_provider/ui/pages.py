"""Server-rendered HTML of the Rivya pages: inline CSS, every value escaped, no scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from rivya_provider.ui.data import DagSpend, Generation, is_stored

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#1a202c;background:#fff}
h1{font-size:18px;margin:0 0 4px} p.sub{color:#4a5568;margin:0 0 12px}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #e2e8f0;padding:6px 8px;
text-align:left;vertical-align:top} th{background:#f7fafc;font-weight:600}
img.thumb{width:120px;height:120px;object-fit:cover;border-radius:4px;background:#edf2f7}
code{font-size:12px;white-space:pre-wrap;word-break:break-word} .num{text-align:right}
.status-succeeded{color:#276749} .status-failed{color:#c53030} .muted{color:#718096}
.card{display:inline-block;border:1px solid #e2e8f0;border-radius:6px;padding:10px 16px;
margin:0 0 16px}
.big{font-size:24px;font-weight:600}
@media (prefers-color-scheme: dark){body{background:#1a202c;color:#e2e8f0}
th{background:#2d3748} th,td,.card{border-color:#4a5568} p.sub,.muted{color:#a0aec0}}
"""


@dataclass(frozen=True)
class Balance:
    """What the overview says about the credit balance: a number, or why there is none."""

    credits: float | None
    note: str = ""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>"
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


def _thumbnail(generation: Generation, *, run_id: str) -> str:
    manifest = generation.manifest
    src = None
    for position, result in enumerate(manifest.files):
        if is_stored(result):
            src = file_url(run_id=run_id, index=generation.index, file_index=position)
            break
    src = src or _http_url(manifest.primary_url)
    if src is None:
        return '<span class="muted">no image</span>'
    alt = escape(f"Result of {manifest.generation_id}")
    return f'<img class="thumb" src="{escape(src)}" alt="{alt}" loading="lazy">'


def _row(generation: Generation, *, run_id: str) -> str:
    m = generation.manifest
    task = escape(generation.task_id)
    if generation.map_index >= 0:
        task += f' <span class="muted">[{generation.map_index}]</span>'
    params = json.dumps(m.params, sort_keys=True, ensure_ascii=False) if m.params else ""
    link = _http_url(m.primary_url)
    generation_id = escape(m.generation_id)
    if link:
        anchor = f'<a href="{escape(link)}" target="_blank" rel="noopener">'
        generation_id = f"{anchor}{generation_id}</a>"
    cells = [
        _thumbnail(generation, run_id=run_id),
        escape(m.prompt or ""),
        escape(m.model),
        f"<code>{escape(params)}</code>",
        f'<span class="status-{escape(m.status)}">{escape(m.status)}</span>',
        f'<span class="num">{_credits(float(m.charged_credits))}</span>',
        task,
        f"{generation_id}<br><span class=muted>{escape(m.origin)}</span>",
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def run_page(*, dag_id: str, run_id: str, generations: list[Generation]) -> str:
    """Render the list of a DAG run's generations.

    :param dag_id: the DAG.
    :param run_id: the run.
    :param generations: what :func:`~rivya_provider.ui.data.run_generations` found.
    """
    total = sum(float(g.manifest.charged_credits) for g in generations)
    head = (
        f"<h1>Rivya generations</h1><p class=sub>{escape(dag_id)} / {escape(run_id)}: "
        f"{len(generations)} generation(s), {_credits(total)} credits charged</p>"
    )
    if not generations:
        return _page("Rivya generations", head + "<p>This run has no Rivya generations.</p>")
    columns = ["Image", "Prompt", "Model", "Params", "Status", "Credits", "Task", "Generation"]
    rows = "".join(_row(g, run_id=run_id) for g in generations)
    table = (
        "<table><thead><tr>"
        + "".join(f"<th>{c}</th>" for c in columns)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )
    return _page("Rivya generations", head + table)


def overview_page(*, balance: Balance, spends: Iterable[DagSpend], runs_per_dag: int) -> str:
    """Render the credit balance and the spend per DAG.

    :param balance: the balance of the ``rivya_default`` account, or why it is not shown.
    :param spends: credits per DAG, from the manifests.
    :param runs_per_dag: how many recent runs of each DAG were summed.
    """
    shown = _credits(balance.credits) if balance.credits is not None else "&mdash;"
    note = f"<div class=muted>{escape(balance.note)}</div>" if balance.note else ""
    card = (
        "<div class=card><div class=muted>Credit balance</div>"
        f"<div class=big>{shown}</div>{note}</div>"
    )
    rows = "".join(
        f"<tr><td>{escape(s.dag_id)}</td><td class=num>{len(s.runs)}</td>"
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
    return _page("Rivya credits", f"<h1>Rivya credits</h1>{card}{sub}{table}")
