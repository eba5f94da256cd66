"""The Rivya UI pages: which XCom values count as manifests, numbering, file paths, escaping."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.manifest import GenerationManifest, ResultFile
from rivya_provider.outputs import result_name
from rivya_provider.ui.data import (
    DagSpend,
    Generation,
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
    page = run_page(dag_id=HOSTILE, run_id=HOSTILE, generations=[one(hostile, task_id=HOSTILE)])
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert page.count("&lt;script&gt;") >= 6  # dag, run, prompt, model, params, status, task


def test_run_page_shows_each_column() -> None:
    page = run_page(dag_id="d", run_id="r", generations=[one(manifest(), map_index=3)])
    for text in ("A red fox", "flux-2-flex", "aspectRatio", "succeeded", "task_1", "[3]"):
        assert text in page
    assert "1 generation(s), 4 credits charged" in page
    assert 'src="https://cdn.example/fox.png"' in page


def test_local_copies_are_shown_through_the_file_route_by_number() -> None:
    copy = {"path": "/out/task_1_0.png", "url": "u", "size_bytes": 3, "sha256": "0"}
    run_id = "manual__2026-01-01T00:00:00+00:00"
    page = run_page(dag_id="d", run_id=run_id, generations=[one(manifest(files=[copy]))])
    url = file_url(run_id=run_id, index=0, file_index=0)
    assert url == "./manual__2026-01-01T00%3A00%3A00%2B00%3A00/files/0/0"
    assert f'src="{url}"' in page
    assert "/out/task_1_0.png" not in page


def test_only_web_urls_become_links_or_images() -> None:
    page = run_page(
        dag_id="d",
        run_id="r",
        generations=[one(manifest(primary_url="javascript:alert(1)"))],
    )
    assert "javascript:" not in page
    assert "no image" in page


def test_a_run_without_generations_says_so() -> None:
    page = run_page(dag_id="d", run_id="r", generations=[])
    assert "This run has no Rivya generations." in page


def test_overview_shows_balance_and_escaped_spend() -> None:
    spends = [DagSpend(dag_id=HOSTILE, runs={"a", "b"}, generations=3, credits=12.5)]
    page = overview_page(balance=Balance(987.0), spends=spends, runs_per_dag=25)
    assert "<script>" not in page
    assert re.search(r"<td class=num>2</td><td class=num>3</td><td class=num>12.5</td>", page)
    assert ">987<" in page


def test_overview_says_why_the_balance_is_missing() -> None:
    page = overview_page(balance=Balance(None, f"no {HOSTILE}"), spends=[], runs_per_dag=5)
    assert "no &lt;script&gt;" in page
    assert "No Rivya generations" in page


def test_pages_carry_no_script() -> None:
    page = run_page(dag_id="d", run_id="r", generations=[one(manifest())])
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
    tmp_path: Path, overrides: dict[str, Any]
) -> None:
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
