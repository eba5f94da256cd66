"""``make demo``'s code path for real: an emulator, ``airflow dags test`` in a child process, the
gallery. Checks what a user looks at: the exit code, the table, the failing tasks, ``index.html``.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from PIL import Image

from demo.__main__ import DAGS_FOLDER, Target, emulator_starting, main, new_run_folder
from demo.airflow_run import airflow_env, migrate
from tests.airflow_compat import hitl_under_dag_test

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
    """The one run folder in ``output`` (beside the kept metadata database's folder)."""
    (folder,) = [path for path in output.iterdir() if not path.name.startswith(".")]
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
    page = (folder / "index.html").read_text()
    assert (
        "6 of 6 assets generated · 58 credits · placeholder images from the Rivya emulator" in page
    )
    assert len(gallery.links) == 2 * len(CAMPAIGN["assets"])  # a thumbnail and its image
    # Each card leads with the picture and the prompt; technical fields sit in <details>.
    for asset in CAMPAIGN["assets"]:
        assert f'<p class="prompt">{html.escape(asset["prompt"])}</p>' in page
    assert page.count("<details><summary>Technical details</summary>") == len(CAMPAIGN["assets"])
    for link in gallery.links:
        with Image.open(folder / link) as image:
            image.verify()
    summary = json.loads(next(folder.glob("*/*/summary.json")).read_text())
    assert [m["client_request_id"] for m in summary["assets"]] == [
        a["name"] for a in CAMPAIGN["assets"]
    ]
    # The table: one row per asset and the credits the emulator charged (14/4/8 per model).
    for asset in CAMPAIGN["assets"]:
        assert f"{asset['name']}" in printed
    assert summary["credits"] == 58
    total_row = next(line for line in printed.splitlines() if line.startswith("total "))
    assert total_row.split() == ["total", "58"]
    # Progress named each task as it finished (a quick generation finishes in the worker, a
    # slower one shows "waiting" while the triggerer polls it).
    assert re.search(r"generate\[hero-banner\]\s+done ", printed), printed
    assert "Emulator stopped." in printed


def test_demo_on_a_real_account_exits_non_zero_naming_the_failure_and_never_writes_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--real`` takes the key from RIVYA_API_KEY; it reaches Airflow only through the
    connection's environment variable. The "account" here is a closed port, so the run fails.
    """
    monkeypatch.setenv("RIVYA_API_KEY", "rvya_sk_not_a_real_key_0123456789abcdef")
    monkeypatch.setenv("RIVYA_BASE_URL", "http://127.0.0.1:9")
    # A closed port would otherwise be retried for the default two-minute budget per request.
    monkeypatch.setenv("RIVYA_CONN_EXTRA", json.dumps({"retry_budget": 1, "max_attempts": 2}))
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
    assert (
        "0 of 1 assets generated · 0 credits · generated by http://127.0.0.1:9"
        in (folder / "index.html").read_text()
    )
    assert gallery.links == []
    assert "What to do: fix what the error below names" in (folder / "index.html").read_text()
    summary = json.loads(next(folder.glob("*/*/summary.json")).read_text())
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


def test_a_kept_metadata_database_is_copied_instead_of_migrated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / "kept"
    homes = [tmp_path / "first", tmp_path / "second"]
    for home in homes:
        home.mkdir()
    envs = [airflow_env(home, dags_folder=DAGS_FOLDER, connections={}) for home in homes]
    migrate(envs[0], kept_in=kept)
    (copy,) = kept.iterdir()
    assert copy.name == f"airflow-{version('apache-airflow')}.db"

    def no_migration(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"airflow ran again: {args}")

    monkeypatch.setattr("demo.airflow_run.subprocess.run", no_migration)
    migrate(envs[1], kept_in=kept)
    revisions = []
    for home in homes:
        with closing(sqlite3.connect(home / "airflow.db")) as db:
            revisions.append(db.execute("SELECT version_num FROM alembic_version").fetchall())
    assert revisions[0] == revisions[1] != []


def test_demo_stops_airflow_at_the_timeout_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Airflow may carry on after SIGTERM: the demo kills it rather than wait for the whole run.
    assert main(["--output", str(tmp_path), "--timeout", "2"]) == 1

    captured = capsys.readouterr()
    assert "The run failed (airflow dags test stopped after --timeout)" in captured.err
    folder = only_run(tmp_path)
    assert list(folder.glob("*/*/summary.json")) == []
    assert len(Gallery(folder / "index.html").cards) == len(CAMPAIGN["assets"])


@pytest.mark.parametrize(
    ("args", "code", "printed"),
    [(["version"], 0, version("apache-airflow")), (["no-such-command"], 2, "invalid choice")],
)
def test_the_demos_airflow_command_line_is_airflows(
    tmp_path: Path, args: list[str], code: int, printed: str
) -> None:
    env = airflow_env(tmp_path, dags_folder=tmp_path, connections={})
    done = subprocess.run(
        [sys.executable, "-m", "demo.airflow_cli", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == code, done.stderr
    assert printed in done.stdout + done.stderr


def test_the_demos_airflow_runs_full_garbage_collections_ten_times_less_often(
    tmp_path: Path,
) -> None:
    env = airflow_env(tmp_path, dags_folder=tmp_path, connections={})
    # What the collector's thresholds are once Airflow's command has run (atexit: last in, first
    # out, so this handler runs after Airflow's and the demo's own).
    probe = (
        "import atexit, gc, runpy, sys; "
        "atexit.register(lambda: print('thresholds', *gc.get_threshold())); "
        "sys.argv = ['airflow', 'version']; "
        "runpy.run_module('demo.airflow_cli', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("thresholds ")]
    assert line.split()[-1] == "100"  # Python's default is 10


def test_the_demos_emulator_answers_at_the_address_it_gave_before_it_started() -> None:
    with emulator_starting() as (base_url, api_key):
        credits = httpx.get(
            f"{base_url}/api/v1/credits", headers={"Authorization": f"Bearer {api_key}"}
        )
        assert credits.json() == {"current_credits": 1000}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/api/v1/models", timeout=2)


def test_an_emulator_that_cannot_start_fails_the_demo_naming_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(**settings: object) -> None:
        raise ImportError("No module named 'fastapi'")

    def refused(base_url: str) -> bool:
        """Whether calls are refused (soon) rather than left waiting in the backlog."""
        for _ in range(100):
            try:
                httpx.get(f"{base_url}/api/v1/models", timeout=2)
            except httpx.ConnectError:
                return True
            time.sleep(0.05)
        return False

    def refused_and_told(base_url: str) -> str:
        """Assert calls are refused; what the demo said on stderr while the run goes on."""
        assert refused(base_url)
        return capsys.readouterr().err

    monkeypatch.setattr("rivya_provider.emulator.run_emulator", broken)
    # The block's exit raises: only then has the thread's failure been waited for.
    with (
        pytest.raises(RuntimeError, match="the Rivya emulator did not run") as raised,
        emulator_starting() as (base_url, _),
    ):
        said_before_the_end = refused_and_told(base_url)
    assert isinstance(raised.value.__cause__, ImportError)
    assert "emulator did not start (ImportError: No module named 'fastapi')" in said_before_the_end


def test_the_demo_target_repr_hides_the_api_key() -> None:
    target = Target("https://rivya.ai", "rvya_sk_secret_0123456789", "label", source="source")

    assert "rvya_sk_secret" not in repr(target)
    assert "https://rivya.ai" in repr(target)


@hitl_under_dag_test()
def test_demo_approve_rejects_one_image_once_and_publishes_its_retake_with_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two assets keep it short: the first is rejected once, the other approved.
    campaign = tmp_path / "campaign.json"
    campaign.write_text(json.dumps({**CAMPAIGN, "assets": CAMPAIGN["assets"][:2]}))
    output = tmp_path / "out"

    assert main(["--approve", "--output", str(output), "--campaign", str(campaign)]) == 0

    printed = capsys.readouterr().out
    decisions = [line.strip() for line in printed.splitlines() if line.startswith("  reviewer: ")]
    assert decisions[0].startswith("reviewer: ready")
    assert decisions[3:] == ["reviewer: Approve hero-banner (review_retake)"]
    assert sorted(decisions[1:3]) == [  # the first looks, in either order
        "reviewer: Approve story-vertical (review)",
        "reviewer: Reject hero-banner (review)",
    ]
    # A review waiting for its answer shows as such; which one the progress lines catch waiting
    # depends on how soon the reviewer answers it.
    assert re.search(r"review(_retake)?\[[a-z-]+\]\s+waiting ", printed), printed
    assert re.search(r"regenerate\[hero-banner\]\s+done ", printed), printed
    # flux-2-flex twice, plus the retake: 3 x 14 credits; the table counts the published two.
    total_row = next(line for line in printed.splitlines() if line.startswith("total "))
    assert total_row.split() == ["total", "28"]
    assert (
        "Approval: 2 images published, 1 rejected; dropped after a second rejection: none\n"
        "Credits: 28 for the 2 published images (the table's total) + 14 for 1 rejected image = "
        "42 credits in all\n" in printed
    )
    folder = only_run(output)
    summary = json.loads(next(folder.glob("*/*/summary.json")).read_text())
    published = sorted(Path(p).name for p in summary["published"])
    assert published == sorted(p.name for p in next(folder.glob("*/*/published")).iterdir())
    assert [Path(p).stem for p in published] == ["hero-banner", "story-vertical"]
    gallery = Gallery(folder / "index.html")
    assert gallery.cards == ["card succeeded"] * 2
    for link in gallery.links:
        with Image.open(folder / link) as image:
            image.verify()
    # The gallery shows the approved retake, not the rejected first image.
    retake = next(m for m in summary["assets"] if m["client_request_id"] == "hero-banner")
    assert "/retake/" in retake["files"][0]["path"]
    assert any("hero-banner/retake/" in link for link in gallery.links), gallery.links
