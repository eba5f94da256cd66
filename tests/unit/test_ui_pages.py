"""The Rivya UI pages: which XCom values count as manifests, numbering, file paths, escaping."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.manifest import GenerationManifest, ResultFile
from rivya_provider.outputs import result_name
from rivya_provider.ui.airflow_links import dag_url
from rivya_provider.ui.board import PUBLISHED_KEY, Board, Generation, TaskRow, build_board
from rivya_provider.ui.daily import daily_spend
from rivya_provider.ui.data import (
    DagSpend,
    as_manifest,
    local_file,
    number_generations,
    read_result,
)
from rivya_provider.ui.pages import Balance, file_url, overview_page, run_page
from tests.airflow_compat import airflow_at_least

HOSTILE = '<script>alert("x")</script>'


def manifest(**overrides: Any) -> dict[str, Any]:
    base = GenerationManifest(
        generation_id="task_1",
        status="succeeded",
        model="flux-2-flex",
        prompt="A red fox",
        params={"aspectRatio": "1:1"},
        primary_url="https://cdn.example/fox.png",
        result_urls=["https://cdn.example/fox.png"],
        reserved_credits=4,
        charged_credits=4,
        origin="submitted",
    )
    return {**base.model_dump(mode="json"), **overrides}


def one(value: dict[str, Any], *, task_id: str = "generate", map_index: int = -1) -> Generation:
    parsed = as_manifest(value)
    assert parsed is not None
    return Generation(index=0, task_id=task_id, map_index=map_index, manifest=parsed)


def board_of(*generations: Generation, run_state: str = "success") -> Board:
    """The board of a finished run whose generate tasks all returned these manifests."""
    tasks = [
        TaskRow(g.task_id, g.map_index, "success", "RivyaGenerateOperator") for g in generations
    ]
    return build_board(run_state=run_state, tasks=tasks, generations=generations, returns={})


@pytest.mark.parametrize(
    "value",
    [
        None,
        "task_1",
        ["task_1"],
        {"generation_id": "task_1"},
        {**manifest(), "charged_credits": "x"},
    ],
)
def test_values_that_are_not_manifests_are_skipped(value: Any) -> None:
    assert as_manifest(value) is None


def test_generations_are_numbered_by_task_and_map_index() -> None:
    rows = [
        ("generate", 1, manifest(generation_id="task_b")),
        ("other", -1, {"not": "a manifest"}),
        ("generate", 0, manifest(generation_id="task_a")),
        ("alpha", -1, manifest(generation_id="task_c")),
    ]
    found = number_generations(rows)
    assert [(g.index, g.task_id, g.map_index, g.manifest.generation_id) for g in found] == [
        (0, "alpha", -1, "task_c"),
        (1, "generate", 0, "task_a"),
        (2, "generate", 1, "task_b"),
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/out/a.png", "/data/out/a.png"),
        ("file:///data/out/a.png", "/data/out/a.png"),
        ("s3://bucket/a.png", None),
        ("relative/a.png", None),
    ],
)
def test_only_absolute_local_paths_are_files_to_serve(path: str, expected: str | None) -> None:
    result = ResultFile(path=path, url="https://cdn.example/a.png", size_bytes=1, sha256="0")
    found = local_file(result)
    assert (str(found) if found else None) == expected


def test_run_page_escapes_everything_from_the_manifest() -> None:
    hostile = manifest(prompt=HOSTILE, model=HOSTILE, params={"k": HOSTILE}, status=HOSTILE)
    page = run_page(dag_id=HOSTILE, run_id=HOSTILE, board=board_of(one(hostile, task_id=HOSTILE)))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert page.count("&lt;script&gt;") >= 6  # dag, run, prompt, model, params, status, task


def test_run_page_shows_each_field_of_a_card() -> None:
    page = run_page(dag_id="d", run_id="r", board=board_of(one(manifest(), map_index=3)))
    for text in ("A red fox", "flux-2-flex", "succeeded", "task_1", "generate [3]", "4 credits"):
        assert text in page
    # Params read as "key: value", not as JSON.
    assert "<dt>aspectRatio</dt><dd>1:1</dd>" in page
    assert "{&quot;" not in page
    assert "1 generation(s), 4 credits charged" in page
    assert 'src="https://cdn.example/fox.png"' in page


def test_local_copies_are_shown_through_the_file_route_by_number() -> None:
    copy = {"path": "/out/task_1_0.png", "url": "u", "size_bytes": 3, "sha256": "0"}
    run_id = "manual__2026-01-01T00:00:00+00:00"
    page = run_page(dag_id="d", run_id=run_id, board=board_of(one(manifest(files=[copy]))))
    url = file_url(run_id=run_id, index=0, file_index=0)
    assert url == "./manual__2026-01-01T00%3A00%3A00%2B00%3A00/files/0/0"
    assert f'src="{url}"' in page
    # Click to enlarge: the same file in an overlay of the page (Airflow's sandboxed frame
    # opens no new tab), closed by a click.
    assert '<a class="enlarge" href="#view-0"' in page
    assert f'<a class="lightbox" id="view-0" href="#board" title="Close"><img src="{url}"' in page
    assert ".lightbox:target{display:flex" in page
    assert 'target="_blank"' not in page
    assert "/out/task_1_0.png" not in page


def test_only_web_urls_become_links_or_images() -> None:
    page = run_page(
        dag_id="d",
        run_id="r",
        board=board_of(one(manifest(primary_url="javascript:alert(1)"))),
    )
    assert "javascript:" not in page
    assert "no image" in page


def test_a_run_without_generations_says_so() -> None:
    page = run_page(dag_id="d", run_id="r", board=board_of())
    assert "This run has no Rivya generations." in page
    assert "http-equiv" not in page  # a finished run does not reload


T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
GENERATE = "RivyaGenerateOperator"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def named(
    task_id: str, map_index: int, asset: str, *, state: str = "success", minutes: int = 0, **kw: Any
) -> TaskRow:
    """A task instance whose map index template rendered ``asset``."""
    return TaskRow(
        task_id, map_index, state, kw.pop("operator", GENERATE), asset, started=at(minutes), **kw
    )


def test_cards_are_labelled_with_the_rendered_map_index_else_task_and_index() -> None:
    generations = number_generations(
        [
            ("generate", 0, manifest(generation_id="task_a")),
            ("generate", 1, manifest(generation_id="task_b")),
        ]
    )
    tasks = [
        named("generate", 0, "hero-banner"),
        # Airflow's own fallback for an unrendered index is the index itself: not a name.
        named("generate", 1, "1"),
    ]
    board = build_board(run_state="success", tasks=tasks, generations=generations, returns={})
    assert [card.label for card in board.cards] == ["hero-banner", "generate [1]"]
    page = run_page(dag_id="d", run_id="r", board=board)
    assert '<span class="label">hero-banner</span>' in page
    assert '<span class="label">generate [1]</span>' in page


def test_generations_without_a_manifest_are_shown_in_progress_or_failed() -> None:
    tasks = [
        named("generate", 0, "hero-banner", state="deferred", model="flux-2-flex"),
        named("generate", 1, "square-tile", state="running", model="no-such-model"),
        named("generate", 2, "story", state="failed", try_number=3, model="flux-2-flex"),
        named("generate", 3, "skyscraper", state="upstream_failed"),
        named("notify", -1, "", state="failed", operator="PythonOperator"),
    ]
    board = build_board(run_state="running", tasks=tasks, generations=[], returns={})
    found = {card.label: (card.status, card.credits, card.reason) for card in board.cards}
    assert found == {
        "hero-banner": ("in progress", 14.0, "deferred"),  # the catalogue's price, reserved
        "square-tile": ("in progress", None, "running"),  # price unknown
        "story": ("failed", 0.0, "failed after 3 tries"),
        "skyscraper": ("failed", 0.0, "an upstream task failed"),
    }
    page = run_page(dag_id="d", run_id="r", board=board)
    assert "14 credits reserved" in page
    assert "0 credits · failed after 3 tries" in page
    assert "This run has no Rivya generations" not in page
    assert "0 credits charged, 14 reserved; run running" in page
    assert '<meta http-equiv="refresh" content="10">' in page


def test_a_finished_run_does_not_reload_but_one_with_a_card_under_way_does() -> None:
    done = build_board(
        run_state="success", tasks=[named("generate", 0, "a")], generations=[], returns={}
    )
    assert not done.live
    waiting = build_board(
        run_state="failed",
        tasks=[named("generate", 0, "a", state="up_for_retry")],
        generations=[],
        returns={},
    )
    assert waiting.live
    # No such run (nothing found): nothing to wait for.
    assert not build_board(run_state=None, tasks=[], generations=[], returns={}).live
    assert "http-equiv" not in run_page(dag_id="d", run_id="r", board=done)


def reviewed_board() -> Board:
    """The approval example's shape: hero-banner rejected, generated again, then approved."""
    generations = number_generations(
        [
            ("generate", 0, manifest(generation_id="task_first")),
            ("generate", 1, manifest(generation_id="task_tile")),
            ("regenerate", 0, manifest(generation_id="task_retake")),
        ]
    )
    tasks = [
        named("generate", 0, "hero-banner", minutes=0),
        named("generate", 1, "square-tile", minutes=0),
        named("review", 0, "hero-banner", operator="HITLOperator", minutes=5),
        named("review", 1, "square-tile", operator="HITLOperator", minutes=5),
        named("regenerate", 0, "hero-banner", minutes=10),
        named("review_retake", 0, "hero-banner", operator="HITLOperator", minutes=15),
        TaskRow("publish", -1, "success", "_PythonDecoratedOperator", started=at(20)),
    ]
    returns = {
        ("review", 0): {"chosen_options": ["Reject"], "params_input": {}},
        ("review", 1): {"chosen_options": ["Approve"], "params_input": {}},
        ("review_retake", 0): {"chosen_options": ["Approve"], "params_input": {}},
        # The publish step names what it published; a bad entry is ignored, not shown.
        ("publish", -1): {"summary": "2 assets", PUBLISHED_KEY: ["task_retake", "task_tile", 7]},
    }
    return build_board(run_state="success", tasks=tasks, generations=generations, returns=returns)


def test_review_answers_mark_the_card_they_are_about_and_retakes() -> None:
    board = reviewed_board()
    marks = [
        (
            c.label,
            c.generation.manifest.generation_id if c.generation else None,
            c.review.verdict if c.review else None,
            c.retake,
        )
        for c in board.cards
    ]
    assert marks == [
        ("hero-banner", "task_first", "rejected", False),
        ("hero-banner", "task_retake", "approved", True),
        ("square-tile", "task_tile", "approved", False),
    ]


def test_marks_name_the_review_task_that_asked() -> None:
    run_id = "manual__2026-12-01T09:00:00+00:00"
    page = run_page(dag_id="rivya_marketing_approval", run_id=run_id, board=reviewed_board())
    # No link: Airflow's sandboxed frame may not navigate the window to the task's page.
    assert '<span class="mark mark-rejected" title="Answered in task review [0]">' in page
    assert 'target="_top"' not in page
    assert page.count("mark mark-approved") == 2
    assert '<span class="mark mark-retake">retake</span>' in page


def test_a_generation_a_task_published_is_marked_with_that_task() -> None:
    board = reviewed_board()
    published = {
        c.generation.manifest.generation_id: c.published_by.task_id if c.published_by else None
        for c in board.cards
        if c.generation
    }
    assert published == {"task_first": None, "task_retake": "publish", "task_tile": "publish"}
    page = run_page(dag_id="d", run_id="r", board=board)
    assert (
        page.count(
            '<span class="mark mark-published" title="Published by task publish">published</span>'
        )
        == 2
    )


def test_an_answer_that_reads_as_neither_is_shown_as_chosen_and_escaped() -> None:
    generations = number_generations([("generate", 0, manifest())])
    tasks = [
        named("generate", 0, "a"),
        named("ask", 0, "a", operator="HITLOperator", minutes=1),
    ]
    returns = {("ask", 0): {"chosen_options": [HOSTILE]}}
    board = build_board(run_state="success", tasks=tasks, generations=generations, returns=returns)
    page = run_page(dag_id="d", run_id="r", board=board)
    assert "mark mark-answered" in page
    assert "<script>" not in page


def test_the_board_is_a_grid_with_readable_links_in_dark_mode() -> None:
    page = run_page(dag_id="d", run_id="r", board=board_of(one(manifest())))
    assert "grid-template-columns:repeat(auto-fill,minmax(min(100%,300px),1fr))" in page
    assert "object-fit:contain" in page
    dark = page[page.index("prefers-color-scheme: dark") :]
    assert "a{color:#90cdf4}" in dark


NO_DAILY = daily_spend([], now=T0)


def test_overview_shows_balance_and_escaped_spend() -> None:
    spends = [DagSpend(dag_id=HOSTILE, runs={"a", "b"}, generations=3, credits=12.5)]
    page = overview_page(balance=Balance(987.0), spends=spends, runs_per_dag=25, daily=NO_DAILY)
    assert "<script>" not in page
    assert re.search(r"<td class=num>2</td><td class=num>3</td><td class=num>12.5</td>", page)
    assert ">987<" in page


def test_overview_says_why_the_balance_is_missing() -> None:
    page = overview_page(
        balance=Balance(None, f"no {HOSTILE}"), spends=[], runs_per_dag=5, daily=NO_DAILY
    )
    assert "no &lt;script&gt;" in page
    assert "No Rivya generations" in page


def test_dag_names_on_the_credits_page_link_to_the_dag_in_airflow() -> None:
    spends = [
        DagSpend(dag_id="rivya_marketing_campaign", runs={"r"}, generations=1, credits=4.0),
        DagSpend(dag_id='odd "dag"/x', runs={"r"}, generations=1, credits=1.0),
    ]
    page = overview_page(balance=Balance(1.0), spends=spends, runs_per_dag=25, daily=NO_DAILY)
    # The credits page is /rivya/overview: one folder up is the UI's root, where dags/<id> is.
    assert dag_url("rivya_marketing_campaign") == "../dags/rivya_marketing_campaign"
    assert (
        '<td><a href="../dags/rivya_marketing_campaign" '
        'title="The DAG in Airflow">rivya_marketing_campaign</a></td>'
    ) in page
    # Airflow's sandboxed frame refuses to navigate the whole window: no target="_top" here.
    assert 'target="_top"' not in page
    # Each part of the path is encoded, and the name is shown escaped.
    assert dag_url('odd "dag"/x') == "../dags/odd%20%22dag%22%2Fx"
    assert '<a href="../dags/odd%20%22dag%22%2Fx" title=' in page
    assert ">odd &quot;dag&quot;/x</a>" in page


def test_pages_carry_no_script() -> None:
    page = run_page(dag_id="d", run_id="r", board=board_of(one(manifest())))
    assert "<script" not in page.lower()


def test_plugin_registers_views_where_airflow_has_them() -> None:
    from rivya_provider.ui.plugin import RivyaPlugin

    if not airflow_at_least("3.1"):
        assert RivyaPlugin.external_views == []
        assert RivyaPlugin.fastapi_apps == []
        return
    destinations = {view["destination"]: view["href"] for view in RivyaPlugin.external_views}
    assert destinations == {
        "dag_run": "rivya/runs/{DAG_ID}/{RUN_ID}",
        "nav": "rivya/overview",
    }
    assert [app["url_prefix"] for app in RivyaPlugin.fastapi_apps] == ["/rivya"]


def copied(tmp_path: Path, *, content: bytes = b"\x89PNG fake", **overrides: Any) -> dict[str, Any]:
    """A manifest whose one result was copied to ``tmp_path`` as the operator names it."""
    url = "https://cdn.example/fox.png"
    target = tmp_path / result_name("task_1", 0, url, "image/png")
    target.write_bytes(content)
    entry = {
        "path": str(target),
        "url": url,
        "size_bytes": len(content),
        "content_type": "image/png",
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    return manifest(files=[{**entry, **overrides}])


def test_a_listed_unchanged_copy_is_read(tmp_path: Path) -> None:
    parsed = one(copied(tmp_path)).manifest
    assert read_result(parsed, file_index=0) == b"\x89PNG fake"
    assert read_result(parsed, file_index=1) is None
    assert read_result(parsed, file_index=-1) is None


@pytest.mark.parametrize(
    "path",
    [
        "s3://aws_default@results/run/other.png",  # not the name the operator gives it
        "nosuchstore://results/run/task_1-0.png",  # a store nothing here can open
    ],
)
def test_an_object_store_copy_that_cannot_be_the_operators_is_not_read(path: str) -> None:
    # Reading one for real: tests/e2e/test_production.py, against an S3 API.
    url = "https://cdn.example/fox.png"
    entry = {"path": path, "url": url, "size_bytes": 3, "content_type": "image/png"}
    parsed = one(manifest(files=[{**entry, "sha256": "0" * 64}])).manifest
    assert read_result(parsed, file_index=0) is None


def test_a_copy_that_is_no_regular_file_is_not_opened(tmp_path: Path) -> None:
    # A FIFO under the operator's name would hang the request that opened it.
    parsed = one(copied(tmp_path)).manifest
    path = Path(parsed.files[0].path)
    path.unlink()
    os.mkfifo(path)
    assert read_result(parsed, file_index=0) is None


def test_a_changed_copy_is_not_read(tmp_path: Path) -> None:
    parsed = one(copied(tmp_path)).manifest
    Path(parsed.files[0].path).write_bytes(b"\x89PNG evil")  # same size, other bytes
    assert read_result(parsed, file_index=0) is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"content_type": "text/html"},
        {"size_bytes": 3},
        {"sha256": "0" * 64},
        {"path": "s3://bucket/task_1-0.png"},
    ],
)
def test_a_copy_that_does_not_match_its_entry_is_not_read(
    tmp_path: Path, overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The s3:// entry is opened for real: boto is pointed at a closed port of this machine, with
    # credentials of its own, instead of looking for them and for AWS on the network.
    for name, value in {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    parsed = one(copied(tmp_path, **overrides)).manifest
    assert read_result(parsed, file_index=0) is None


def test_an_entry_naming_another_file_is_not_read(tmp_path: Path) -> None:
    """A crafted manifest with the right size and hash of some other file still gets nothing."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"api-server secret")
    value = copied(
        tmp_path,
        path=str(secret),
        size_bytes=secret.stat().st_size,
        sha256=hashlib.sha256(secret.read_bytes()).hexdigest(),
    )
    assert read_result(one(value).manifest, file_index=0) is None
