"""``make demo``'s code path for real: an emulator, ``airflow dags test`` in a child process, the
gallery. Checks what a user looks at: the exit code, the table, the failing tasks, ``index.html``.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from demo.__main__ import DAGS_FOLDER, main, new_run_folder

CAMPAIGN = json.loads((DAGS_FOLDER / "campaign.json").read_text())


class Gallery(HTMLParser):
    """The cards of ``index.html`` and every file it links to or shows."""

    def __init__(self, page: Path) -> None:
        super().__init__()
        self.cards: list[str] = []
        self.links: list[str] = []
        self.external: list[str] = []
        self.feed(page.read_text())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "article":
            self.cards.append(found.get("class") or "")
        for name in ("src", "href"):
            if value := found.get(name):
                target = self.external if "://" in value or value.startswith("//") else self.links
                target.append(value)


def only_run(output: Path) -> Path:
    (folder,) = output.iterdir()
    return folder


def test_demo_runs_the_campaign_and_builds_the_gallery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--output", str(tmp_path)]) == 0

    printed = capsys.readouterr().out
    folder = only_run(tmp_path)
    gallery = Gallery(folder / "index.html")
    assert gallery.cards == ["card succeeded"] * len(CAMPAIGN["assets"])
    assert gallery.external == []  # opens from the file system, offline
    assert len(gallery.links) == 2 * len(CAMPAIGN["assets"])  # a thumbnail and its image
    for link in gallery.links:
        with Image.open(folder / link) as image:
            image.verify()
    summary = json.loads(next(folder.glob("*/summary.json")).read_text())
    assert [m["client_request_id"] for m in summary["assets"]] == [
        a["name"] for a in CAMPAIGN["assets"]
    ]
    # The table: one row per asset and the credits the emulator charged (14/4/8 per model).
    for asset in CAMPAIGN["assets"]:
        assert f"{asset['name']}" in printed
    assert summary["credits"] == 58
    total_row = next(line for line in printed.splitlines() if line.startswith("total "))
    assert total_row.split() == ["total", "58"]
    # Progress named tasks as they waited in the triggerer and finished.
    assert "generate[hero-banner]" in printed
    assert " waiting " in printed
    assert "Emulator stopped." in printed


def test_demo_on_a_real_account_exits_non_zero_naming_the_failure_and_never_writes_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--real`` takes the key from RIVYA_API_KEY; it reaches Airflow only through the
    connection's environment variable. The "account" here is a closed port, so the run fails.
    """
    monkeypatch.setenv("RIVYA_API_KEY", "rvya_sk_not_a_real_key_0123456789abcdef")
    monkeypatch.setenv("RIVYA_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY", "0")
    campaign = tmp_path / "campaign.json"
    campaign.write_text(json.dumps({**CAMPAIGN, "assets": CAMPAIGN["assets"][:1]}))
    output = tmp_path / "out"

    assert main(["--real", "--output", str(output), "--campaign", str(campaign)]) == 1

    captured = capsys.readouterr()
    assert "Rivya: http://127.0.0.1:9 (real account" in captured.out
    assert "generate[hero-banner]: RivyaTransportError" in captured.err
    assert "Connection refused" in captured.err
    assert "summarise: AirflowFailException: 1 of 1 assets failed: hero-banner" in captured.err
    folder = only_run(output)
    gallery = Gallery(folder / "index.html")
    assert gallery.cards == ["card failed"]
    assert gallery.links == []
    summary = json.loads(next(folder.glob("*/summary.json")).read_text())
    assert (summary["failed"], summary["credits"]) == (["hero-banner"], 0)
    written = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"airflow.log", "index.html", "summary.json"}
    for path in written:
        assert b"rvya_sk_not_a_real_key" not in path.read_bytes(), path
    assert "rvya_sk_not_a_real_key" not in captured.out + captured.err


def test_each_demo_run_gets_its_own_folder(tmp_path: Path) -> None:
    first, second = new_run_folder(tmp_path), new_run_folder(tmp_path)

    assert first != second
    assert first.is_dir()
    assert second.is_dir()
