"""The demo gallery's cards: the picture and the prompt first, technical fields tucked away."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from demo.gallery import AssetCard, write_gallery

pytestmark = pytest.mark.no_airflow


class Card(HTMLParser):
    """The order of what one card shows, and what sits inside its collapsed details."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.order: list[str] = []
        self.shown: list[str] = []
        self.hidden: list[str] = []
        self.open_details = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "details":
            self.open_details = "open" in found
            self.order.append("details")
        elif tag in {"img", "div"} or (tag == "p" and found.get("class")):
            self.order.append(found.get("class") or tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self.order.append("/details")

    def handle_data(self, data: str) -> None:
        inside = self.order.count("details") > self.order.count("/details")
        (self.hidden if inside else self.shown).append(data)


def card(**changes: object) -> AssetCard:
    base = {
        "name": "hero-banner",
        "model": "flux-2-flex",
        "prompt": "A lighthouse at dawn",
        "params": {"aspectRatio": "16:9"},
        "status": "succeeded",
        "generation_id": "task_abc123",
        "credits": 14,
        "generation_seconds": 3.2,
        "task_seconds": 4.0,
        "tries": 1,
    }
    return AssetCard(**{**base, **changes})  # type: ignore[arg-type]


def test_a_card_leads_with_picture_and_prompt(tmp_path: Path) -> None:
    image = tmp_path / "2026-03-01" / "hero-banner" / "task_abc123-0.png"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (64, 36), "teal").save(image)

    page = write_gallery(tmp_path, [card(image=image)], title="Demo", source="the emulator")

    shown = Card(page.read_text())
    assert shown.order[:3] == ["img", "prompt", "asset"]
    assert shown.order[-2:] == ["details", "/details"]
    assert not shown.open_details, "technical fields start collapsed"
    visible = " ".join(shown.shown)
    assert "A lighthouse at dawn" in visible
    assert "hero-banner" in visible
    assert "flux-2-flex · 14 credits" in visible
    assert "task_abc123" not in visible
    assert "aspectRatio" not in visible
    hidden = " ".join(shown.hidden)
    assert '{"aspectRatio": "16:9"}' in hidden
    assert "task_abc123" in hidden
    assert "generate[hero-banner], 4.0 s, try 1" in hidden


def test_a_failed_card_says_what_to_do(tmp_path: Path) -> None:
    failed = card(
        status="failed", generation_id=None, credits=None, error="GenerationFailedError: no"
    )
    unrun = card(name="footer", status="not run", generation_id=None, credits=None)

    page = write_gallery(tmp_path, [failed, unrun], title="Demo", source="the emulator")

    text = page.read_text()
    assert text.count('<div class="missing">no image</div>') == 2
    assert "What to do: fix what the error below names" in text
    assert "GenerationFailedError: no" in text
    assert "It did not run: an earlier task failed" in text
