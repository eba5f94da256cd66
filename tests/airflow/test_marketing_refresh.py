"""The scheduled marketing refresh example (dags_examples/rivya_marketing_refresh.py) for real:
``dag.test()`` against the emulator, mapped over the shipped campaign file.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from rivya_provider.client import RequestValidationError
from rivya_provider.emulator import RunningEmulator
from rivya_provider.outputs import folder_name
from tests.airflow.examples import (
    EXAMPLE_DAGS_DIR,
    assert_succeeded_first_try,
    connect_rivya_default,
    ensure_airflow_db,
    run_example,
    task_states,
    xcom,
)
from tests.airflow_compat import airflow_at_least, broken_in_airflow
from tests.integration.test_examples import load

MARKETING = EXAMPLE_DAGS_DIR / "rivya_marketing_refresh.py"
CAMPAIGN = json.loads((EXAMPLE_DAGS_DIR / "campaign.json").read_text())
NAMES = [asset["name"] for asset in CAMPAIGN["assets"]]
#: The documented base credits of each model.
CREDITS = {"flux-2-flex": 14, "flux-kontext-pro": 4, "flux-kontext-max": 8}


def asset_events(asset_name: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    ensure_airflow_db()
    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == asset_name)
            .order_by(AssetEvent.timestamp)
            .all()
        )
        return [dict(row.extra) for row in rows]


@broken_in_airflow(
    "3.0",
    "dag.test() does not register the DAG's assets, so the summary task with an Asset outlet fails "
    "with AirflowInactiveAssetInInletOrOutletException",
)
def test_every_campaign_asset_is_generated_copied_summarised_and_published_downstream(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    before = len(asset_events("rivya_marketing_assets"))
    images_before = len(asset_events("rivya_marketing_images"))

    run = run_example(MARKETING, "rivya_marketing_refresh", run_conf={"output_root": str(tmp_path)})

    assert_succeeded_first_try(run)
    states = task_states(run)
    assert sorted(i for (task, i) in states if task == "generate") == list(range(len(NAMES)))
    date = run.logical_date.strftime("%Y-%m-%d")  # type: ignore[union-attr]
    day = tmp_path / date / folder_name(run.run_id)
    summary = json.loads((day / "summary.json").read_text())
    assert summary["failed"] == []
    assert [m["client_request_id"] for m in summary["assets"]] == NAMES
    expected_credits = sum(CREDITS[asset["model"]] for asset in CAMPAIGN["assets"])
    assert summary["credits"] == expected_credits == emulator.counters()["credits_charged"]
    for asset, manifest in zip(CAMPAIGN["assets"], summary["assets"], strict=True):
        assert manifest["model"] == asset["model"]
        assert manifest["params"].items() >= asset["params"].items()
        (copied,) = manifest["files"]
        image_path = Path(copied["path"])
        assert image_path.parent == day / asset["name"]
        with Image.open(image_path) as image:
            width, height = image.size
        ratio_w, ratio_h = map(int, asset["params"]["aspectRatio"].split(":"))
        # The emulator rounds sizes to multiples of 16 (21:9 is 1024x432).
        assert abs(width / height - ratio_w / ratio_h) < 0.05, (asset["name"], image.size)
    assert emulator.counters()["tasks_created"] == len(NAMES)
    assert xcom(run, "summarise")["credits"] == expected_credits
    events = asset_events("rivya_marketing_assets")
    assert len(events) == before + 1
    assert events[-1] == {"folder": str(day), "run_date": date}
    # Each generation recorded its own event of the images Asset.
    image_events = asset_events("rivya_marketing_images")[images_before:]
    assert sorted(image_events, key=lambda e: e["generation_id"]) == sorted(
        (
            {
                "generation_id": m["generation_id"],
                "model": m["model"],
                "files": [f["path"] for f in m["files"]],
                "credits": m["charged_credits"],
            }
            for m in summary["assets"]
        ),
        key=lambda e: e["generation_id"],
    )

    # The downstream DAG finds the folder through the Asset's latest event.
    published = run_example(MARKETING, "rivya_marketing_publish")
    assert_succeeded_first_try(published)
    expected = sorted(str(p) for p in day.rglob("*") if p.is_file())
    assert xcom(published, "list_fresh_files") == expected
    assert len(expected) == len(NAMES) + 1  # the images and summary.json


def test_an_invalid_campaign_fails_before_any_upload_or_credit(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    campaign = json.loads(json.dumps(CAMPAIGN))
    campaign["assets"][1]["params"]["aspectRatio"] = "5:4"
    campaign["assets"][2]["name"] = campaign["assets"][0]["name"]
    bad = tmp_path / "campaign.json"
    bad.write_text(json.dumps(campaign))

    run = run_example(
        MARKETING,
        "rivya_marketing_refresh",
        run_conf={"campaign": str(bad), "output_root": str(tmp_path / "out")},
    )

    # Fails on its first try: retrying cannot fix a campaign file.
    assert task_states(run)[("load_campaign", -1)] == ("failed", 1)
    # Airflow 3.0 lacks ALL_DONE_MIN_ONE_SUCCESS: the summary runs there and fails instead.
    summary_state = "upstream_failed" if airflow_at_least("3.1") else "failed"
    assert task_states(run)[("summarise", -1)][0] == summary_state
    assert emulator.counters()["requests"].get("POST /api/v1/generations", 0) == 0
    assert not (tmp_path / "out").exists()


def test_the_campaign_check_names_every_bad_asset_field_and_the_allowed_values() -> None:
    module = load(MARKETING)
    campaign = json.loads(json.dumps(CAMPAIGN))
    campaign["assets"][1]["params"]["aspectRatio"] = "5:4"
    campaign["assets"][3]["params"]["outputFormat"] = "gif"
    campaign["assets"][2]["name"] = campaign["assets"][0]["name"]

    with pytest.raises(RequestValidationError) as raised:
        module.checked_campaign(json.dumps(campaign))

    message = str(raised.value)
    assert "assets[1] (story-vertical).params.aspectRatio" in message
    assert "1:1, 4:3, 3:4, 16:9, 9:16, 3:2, 2:3" in message
    assert "assets[3] (newsletter-header).params.outputFormat" in message
    assert "assets[2] (hero-banner).name: is used twice" in message
    assert module.checked_campaign(json.dumps(CAMPAIGN)).assets[0].name == NAMES[0]


@broken_in_airflow(
    "3.0",
    "dag.test() does not register the DAG's assets, so the summary task with an Asset outlet fails "
    "with AirflowInactiveAssetInInletOrOutletException",
)
def test_two_runs_on_one_day_keep_both_summaries(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    campaign = tmp_path / "campaign.json"
    campaign.write_text(json.dumps({**CAMPAIGN, "assets": CAMPAIGN["assets"][:1]}))
    conf = {"campaign": str(campaign), "output_root": str(tmp_path / "out")}
    morning, evening = (datetime(2026, 11, 30, hour, tzinfo=timezone.utc) for hour in (6, 18))

    runs = [
        run_example(MARKETING, "rivya_marketing_refresh", run_conf=conf, logical_date=when)
        for when in (morning, evening)
    ]

    summaries = sorted((tmp_path / "out" / "2026-11-30").glob("*/summary.json"))
    assert [p.parent.name for p in summaries] == sorted(folder_name(r.run_id) for r in runs)
    generated = [json.loads(p.read_text())["assets"][0]["generation_id"] for p in summaries]
    assert len(set(generated)) == 2  # each run its own generation and its own summary
    for run in runs:
        assert_succeeded_first_try(run)
        (copied,) = xcom(run, "generate", map_index=0)["files"]
        assert Path(copied["path"]).parent.parent.name == folder_name(run.run_id)
