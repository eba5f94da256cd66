"""The demo's results: one card per campaign asset, as a table and as a self-contained gallery.

``index.html`` uses relative links and inline CSS only, so it opens straight from the file system.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from PIL import Image

from demo.airflow_run import DagTestResult
from rivya_provider.manifest import GenerationManifest

THUMBNAIL_PIXELS = 480


@dataclass(frozen=True)
class AssetCard:
    """What happened to one asset of the campaign."""

    name: str
    model: str
    prompt: str
    params: Mapping[str, Any]
    status: str
    generation_id: str | None = None
    credits: int | float | None = None
    generation_seconds: float | None = None
    task_seconds: float | None = None
    tries: int = 0
    image: Path | None = None
    error: str | None = None


def asset_cards(
    campaign: Mapping[str, Any], summary: Mapping[str, Any] | None, run: DagTestResult
) -> list[AssetCard]:
    """Join the campaign, the DAG's summary and the task instances into one card per asset.

    :param campaign: the campaign file's content.
    :param summary: the DAG's ``summary.json``, or ``None`` when the run ended before writing it.
    :param run: how ``airflow dags test`` ended.
    """
    manifests = {m["client_request_id"]: m for m in (summary or {}).get("assets", [])}
    mapped = {t.label: t for t in run.tasks if t.task_id == "generate"}
    cards = []
    for asset in campaign["assets"]:
        name = asset["name"]
        manifest, task = manifests.get(name), mapped.get(name)
        card = AssetCard(
            name=name,
            model=asset["model"],
            prompt=asset["prompt"],
            params=asset.get("params", {}),
            status="not run" if task is None else task.word,
            task_seconds=task.seconds if task else None,
            tries=task.try_number if task else 0,
            error=run.error_of(task) if task and task.word != "done" else None,
        )
        if manifest:
            card = _with_manifest(card, manifest)
        cards.append(card)
    return cards


def _with_manifest(card: AssetCard, value: Mapping[str, Any]) -> AssetCard:
    manifest = GenerationManifest.read(dict(value))
    if manifest is None:
        return card
    return replace(
        card,
        status=manifest.status,
        params=manifest.params or card.params,
        generation_id=manifest.generation_id,
        credits=manifest.charged_credits,
        generation_seconds=manifest.seconds,
        image=Path(urlparse(manifest.files[0].path).path) if manifest.files else None,
    )


def table(cards: Sequence[AssetCard]) -> str:
    """Return the plain-text summary table: asset, model, status, credits, seconds."""
    rows = [("asset", "model", "status", "credits", "seconds")]
    for card in cards:
        seconds = f"{card.task_seconds:.1f}" if card.task_seconds is not None else "-"
        credits = str(card.credits) if card.credits is not None else "-"
        rows.append((card.name, card.model, card.status, credits, seconds))
    rows.append(("total", "", "", str(sum(c.credits or 0 for c in cards)), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, lines[1])
    return "\n".join(line.rstrip() for line in lines)


def write_gallery(folder: Path, cards: Sequence[AssetCard], *, title: str, source: str) -> Path:
    """Write ``index.html`` (and thumbnails) into ``folder``; return the page's path.

    :param folder: the run's output folder; the images must be inside it.
    :param cards: one per asset.
    :param title: the page heading.
    :param source: where the images came from, shown under the heading.
    """
    thumbs = folder / "thumbs"
    thumbs.mkdir(exist_ok=True)
    articles = [_article(folder, thumbs, card) for card in cards]
    done = sum(card.status == "succeeded" for card in cards)
    credits = sum(card.credits or 0 for card in cards)
    page = _PAGE.format(
        title=html.escape(title),
        summary=html.escape(
            f"{done} of {len(cards)} assets generated · {credits} credits · {source}"
        ),
        cards="\n".join(articles),
    )
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _article(folder: Path, thumbs: Path, card: AssetCard) -> str:
    if card.image and card.image.is_file():
        thumb = thumbs / f"{card.name}.jpg"
        with Image.open(card.image) as image:
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            image.convert("RGB").save(thumb, "JPEG", quality=85)
        full, small = _relative(card.image, folder), _relative(thumb, folder)
        picture = f'<a href="{full}"><img src="{small}" alt="{html.escape(card.name)}"></a>'
    else:
        picture = '<div class="missing">no image</div>'
    facts = {
        "params": json.dumps(dict(card.params)),
        "Rivya task": card.generation_id or "-",
        "generation": _seconds(card.generation_seconds),
        "Airflow task": f"generate[{card.name}], {_seconds(card.task_seconds)}, try {card.tries}",
    }
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items())
    credits = "" if card.credits is None else f" · {card.credits} credits"
    return (
        f'<article class="card {html.escape(card.status)}">{picture}'
        f'<p class="prompt">{html.escape(card.prompt)}</p>'
        f'<p class="asset"><strong>{html.escape(card.name)}</strong> · '
        f"{html.escape(card.model)}{html.escape(credits)} "
        f'<span class="status">{html.escape(card.status)}</span></p>'
        f"{_what_to_do(card)}"
        f"<details><summary>Technical details</summary><dl>{rows}</dl></details></article>"
    )


def _what_to_do(card: AssetCard) -> str:
    """Say, on a card that has no picture, what went wrong and what to do about it."""
    if card.status == "succeeded":
        return ""
    if card.status == "not run":
        advice = (
            "It did not run: an earlier task failed (see the errors printed by the demo and "
            "airflow.log in this folder)."
        )
    elif card.status in {"queued", "running", "waiting", "retrying"}:
        advice = (
            f"It was still {card.status} when the demo stopped: run the demo again with a "
            "longer --timeout."
        )
    else:
        advice = (
            "What to do: fix what the error below names (the whole story is in airflow.log in "
            "this folder), then run the demo again."
        )
    error = f'<p class="error">{html.escape(card.error)}</p>' if card.error else ""
    return f'<p class="todo">{html.escape(advice)}</p>{error}'


def _relative(path: Path, folder: Path) -> str:
    return html.escape(path.resolve().relative_to(folder.resolve()).as_posix(), quote=True)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem; background: #f6f6f4; color: #222; }}
header p {{ color: #555; }}
main {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1.2rem; }}
.card {{ background: #fff; border-radius: 10px; padding: 1rem; box-shadow: 0 1px 4px #0002; }}
.card img {{ width: 100%; height: 240px; object-fit: contain; background: #eee;
  border-radius: 6px; }}
.prompt {{ font-size: 1.05rem; margin: .6rem 0 .3rem; }}
.asset {{ color: #555; font-size: .9rem; margin: 0 0 .4rem; }}
.status {{ font-size: .8rem; padding: .1rem .5rem; border-radius: 1rem; background: #d8f0dc; }}
.card:not(.succeeded) .status {{ background: #f6d5d5; }}
.todo {{ font-size: .9rem; }}
details {{ font-size: .85rem; color: #555; }}
summary {{ cursor: pointer; }}
.error {{ color: #a01616; font-family: monospace; font-size: .85rem; overflow-wrap: anywhere; }}
.missing {{ height: 240px; display: grid; place-items: center; background: #eee; color: #888;
  border-radius: 6px; }}
dl {{ display: grid; grid-template-columns: auto 1fr; gap: .1rem .8rem; font-size: .85rem; }}
dt {{ color: #777; }} dd {{ margin: 0; overflow-wrap: anywhere; }}
</style></head>
<body><header><h1>{title}</h1><p>{summary}</p></header>
<main>
{cards}
</main></body></html>
"""
