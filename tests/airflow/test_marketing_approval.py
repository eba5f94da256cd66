"""The approval example (dags_examples/rivya_marketing_approval.py) for real: ``dag.test()``
against the emulator, with a reviewer answering each human-in-the-loop request through Airflow's
own REST API (its api-server app on 127.0.0.1, on the same metadata database), as the UI does.

``dag.test()`` waits for the answers itself: on Airflow 3.3 it keeps the run alive while a request
is parked in ``awaiting_input``, until the API's answer resumes it. Airflow 3.1 and 3.2 run each
request's trigger in-process instead, and there it cannot read the answer (``HITL_DAG_TEST_PROBLEM``
in tests/airflow_compat.py): these tests skip there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.review import Decide, Reviewer, reject_first_look, serve_airflow_api
from rivya_provider.emulator import RunningEmulator
from rivya_provider.ui.board import PUBLISHED_KEY
from tests.airflow.examples import (
    EXAMPLE_DAGS_DIR,
    connect_rivya_default,
    ensure_airflow_db,
    run_example,
    task_states,
    xcom,
)
from tests.airflow.test_marketing_refresh import CREDITS, asset_events
from tests.airflow_compat import hitl_under_dag_test

pytestmark = hitl_under_dag_test()

APPROVAL = EXAMPLE_DAGS_DIR / "rivya_marketing_approval.py"
DAG_ID = "rivya_marketing_approval"
CAMPAIGN = json.loads((EXAMPLE_DAGS_DIR / "campaign.json").read_text())
NAMES = [asset["name"] for asset in CAMPAIGN["assets"]]
MODELS = {asset["name"]: asset["model"] for asset in CAMPAIGN["assets"]}
ALL_CREDITS = sum(CREDITS[model] for model in MODELS.values())


@pytest.fixture(scope="module")
def airflow_api() -> Iterator[httpx.Client]:
    """Airflow's REST API on 127.0.0.1, logged in, on this process's metadata database."""
    ensure_airflow_db()
    with serve_airflow_api() as api:
        yield api


def run_reviewed(
    api: httpx.Client, emulator: RunningEmulator, output: Path, decide: Decide
) -> tuple[Any, Reviewer]:
    with Reviewer(api, dag_id=DAG_ID, decide=decide) as reviewer:
        run = run_example(APPROVAL, DAG_ID, run_conf={"output_root": str(output)})
    return run, reviewer


def run_folder_of(root: Path, run: Any) -> Path:
    """The run's own output folder, ``<root>/<run date>/<run id>``."""
    from rivya_provider.outputs import folder_name

    day: str = run.logical_date.strftime("%Y-%m-%d")
    return root / day / folder_name(run.run_id)


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_rejected_asset_is_generated_anew_and_only_approved_images_are_published(
    airflow_api: httpx.Client,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    events_before = len(asset_events("rivya_marketing_approved"))

    run, reviewer = run_reviewed(
        airflow_api, emulator, tmp_path, reject_first_look({"hero-banner"})
    )

    assert str(run.state) == "success", task_states(run)
    answered = [(d.task_id, d.asset, d.option) for d in reviewer.decisions]
    assert sorted(answered) == sorted(
        [("review", name, "Reject" if name == "hero-banner" else "Approve") for name in NAMES]
        + [("review_retake", "hero-banner", "Approve")]
    )
    # One extra, paid generation: a new create on the emulator and the model's credits again.
    counters = emulator.counters()
    assert counters["tasks_created"] == len(NAMES) + 1
    assert counters["credits_charged"] == ALL_CREDITS + CREDITS["flux-2-flex"]
    rejected = xcom(run, "generate", map_index=NAMES.index("hero-banner"))
    retake = xcom(run, "regenerate", map_index=0)
    assert retake["origin"] == "submitted"
    assert retake["generation_id"] != rejected["generation_id"]
    assert retake["idempotency_key"] != rejected["idempotency_key"]
    assert retake["prompt"] == rejected["prompt"]
    # Published: the approved first images and the approved retake, never the rejected image.
    day = run_folder_of(tmp_path, run)
    summary = json.loads((day / "summary.json").read_text())
    assert summary["rejected"] == [rejected["generation_id"]]
    assert summary["failed"] == []
    assert summary["credits"] == counters["credits_charged"]
    published = {Path(p).stem: p for p in summary["published"]}
    assert sorted(published) == sorted(NAMES)
    assert sorted(p.name for p in (day / "published").iterdir()) == sorted(
        Path(p).name for p in published.values()
    )
    final = {m["client_request_id"]: m for m in summary["assets"]}
    assert final["hero-banner"]["generation_id"] == retake["generation_id"]
    for name, path in published.items():
        assert sha256(path) == final[name]["files"][0]["sha256"]
    assert sha256(published["hero-banner"]) != rejected["files"][0]["sha256"]
    # The run's Rivya tab marks what publish names as published: the final images only.
    marked = xcom(run, "publish")[PUBLISHED_KEY]
    assert sorted(marked) == sorted(m["generation_id"] for m in final.values())
    events = asset_events("rivya_marketing_approved")
    assert len(events) == events_before + 1
    assert events[-1] == {"folder": str(day / "published")}


def test_the_reviewer_sees_image_prompt_model_and_credits_and_an_asset_rejected_twice_is_dropped(
    airflow_api: httpx.Client,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    connect_rivya_default(monkeypatch, emulator)

    def never_feed_square(task_id: str, asset: str) -> str:
        return "Reject" if asset == "feed-square" else "Approve"

    run, reviewer = run_reviewed(airflow_api, emulator, tmp_path, never_feed_square)

    assert str(run.state) == "success", task_states(run)
    assert len(reviewer.decisions) == len(NAMES) + 1
    # What the reviewer was shown, read back from the API as the UI reads it.
    listed = airflow_api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}/hitlDetails")
    details = listed.raise_for_status().json()["hitl_details"]
    manifests = {("review", i): xcom(run, "generate", map_index=i) for i in range(len(NAMES))}
    manifests["review_retake", 0] = xcom(run, "regenerate", map_index=0)
    assert sorted(
        (d["task_instance"]["task_id"], d["task_instance"]["map_index"]) for d in details
    ) == sorted(manifests)
    for detail in details:
        ti = detail["task_instance"]
        manifest = manifests[ti["task_id"], ti["map_index"]]
        name = manifest["client_request_id"]
        retake = ti["task_id"] == "review_retake"
        question = "second attempt, publish this image?" if retake else "publish this image?"
        assert detail["subject"] == f"{name}: {question}"
        assert detail["options"] == ["Approve", "Reject"]
        body = detail["body"]
        url = manifest["primary_url"]
        assert f"[![{name}]({url})]({url})\n\n[Open the full-size image]({url})" in body
        assert f"**Prompt:** {manifest['prompt']}" in body
        assert f"**Model:** `{MODELS[name]}`" in body
        assert f"**Credits:** {CREDITS[MODELS[name]]}" in body
        # No server path: the worker's file is not the reviewer's business.
        assert manifest["files"][0]["path"] not in body
        assert "Saved as" not in body
        # The retake's form says so, and that a second Reject drops the asset.
        assert body.startswith("**Second attempt: the first image was rejected.**") is retake
        assert ("**Reject** drops the asset" in body) is retake
        assert detail["response_received"] is True
        assert ti["rendered_map_index"] == name
    assert emulator.api_key not in json.dumps(details)
    # Rejected twice: both generations paid for, neither published, the asset named as dropped.
    counters = emulator.counters()
    assert counters["tasks_created"] == len(NAMES) + 1
    assert counters["credits_charged"] == ALL_CREDITS + CREDITS["flux-2-flex"]
    day = run_folder_of(tmp_path, run)
    summary = json.loads((day / "summary.json").read_text())
    assert summary["failed"] == ["feed-square"]
    assert summary["rejected"] == [
        manifests["review", NAMES.index("feed-square")]["generation_id"],
        manifests["review_retake", 0]["generation_id"],
    ]
    assert sorted(p.stem for p in (day / "published").iterdir()) == sorted(
        set(NAMES) - {"feed-square"}
    )


def test_when_every_image_is_approved_nothing_is_generated_again_and_all_are_published(
    airflow_api: httpx.Client,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    connect_rivya_default(monkeypatch, emulator)

    run, reviewer = run_reviewed(airflow_api, emulator, tmp_path, lambda task, asset: "Approve")

    assert str(run.state) == "success", task_states(run)
    states = task_states(run)
    assert sorted(d.asset for d in reviewer.decisions) == sorted(NAMES)
    # Nothing to map over: the retake steps are skipped, and publish runs all the same.
    assert {states[task, -1][0] for task in ("regenerate", "review_retake")} == {"skipped"}
    assert states["publish", -1] == ("success", 1)
    counters = emulator.counters()
    assert counters["tasks_created"] == len(NAMES)
    assert counters["credits_charged"] == ALL_CREDITS
    day = run_folder_of(tmp_path, run)
    summary = json.loads((day / "summary.json").read_text())
    assert (summary["rejected"], summary["failed"], summary["credits"]) == ([], [], ALL_CREDITS)
    assert sorted(p.stem for p in (day / "published").iterdir()) == sorted(NAMES)
