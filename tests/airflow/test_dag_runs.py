"""Real Airflow (``dag.test()`` with a SQLite metadata DB) against the emulator over HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from rivya_provider.emulator import RunningEmulator
from tests.airflow.conftest import RunDag
from tests.airflow.examples import task_states, xcom
from tests.airflow_compat import skip_where_callbacks_get_no_exception
from tests.emulator_fixtures import connection_json
from tests.media import write_image

pytestmark = pytest.mark.usefixtures("rivya_connection")


def reports(path: Path) -> list[dict[str, Any]]:
    """Return what the failure and retry callbacks recorded, one dict per try.

    Skips the rest of the test where Airflow handed the callbacks no exception (before 3.3).
    """
    found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if any(entry["error_type"] is None for entry in found):
        skip_where_callbacks_get_no_exception()
    return found


def creates(emulator: RunningEmulator) -> int:
    return int(emulator.counters()["requests"].get("POST /api/v1/generations", 0))


@pytest.mark.parametrize("mode", ["deferred", "polling"])
def test_success_puts_the_manifest_in_xcom(
    run_dag: RunDag, rivya_connection: RunningEmulator, mode: str
) -> None:
    run = run_dag(
        f"rivya_generate_{mode}",
        run_conf={"prompt": "a red bicycle", "params": {"aspectRatio": "16:9"}},
    )

    assert task_states(run) == {("generate", -1): ("success", 1)}
    manifest = xcom(run, "generate")
    assert manifest["status"] == "succeeded"
    assert manifest["model"] == "flux-2-flex"
    assert manifest["prompt"] == "a red bicycle"
    assert manifest["params"] == {"aspectRatio": "16:9"}
    assert manifest["charged_credits"] == 14
    assert manifest["origin"] == "submitted"
    assert manifest["primary_url"].startswith(rivya_connection.base_url)
    assert manifest["idempotency_key"].endswith("-0")
    assert xcom(run, "generate", key="_link_RivyaResultLink") == manifest["primary_url"]
    assert rivya_connection.counters()["tasks_created"] == 1


def test_a_failed_generation_fails_the_task_with_code_and_message(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    rivya_connection.set_faults(fail_next_tasks=3)
    report = tmp_path / "report.jsonl"

    run = run_dag("rivya_generate_deferred", run_conf={"report": str(report)})

    assert task_states(run) == {("generate", -1): ("failed", 3)}
    tries = reports(report)
    assert [t["error_type"] for t in tries] == ["GenerationFailedError"] * 3
    assert all(t["code"] == "generation_failed" for t in tries)
    assert "failed: generation_failed:" in tries[-1]["error"]
    # Each retry moved to the next key of the chain: three generations, none charged.
    counters = rivya_connection.counters()
    assert counters["tasks_created"] == 3
    assert counters["credits_charged"] == 0


def test_invalid_params_fail_at_once_without_reaching_rivya(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    report = tmp_path / "report.jsonl"

    run = run_dag(
        "rivya_generate_polling",
        run_conf={"report": str(report), "params": {"aspectRatio": "5:4", "resolutoin": "2K"}},
    )

    # retries=2 on the task, yet one try only: retrying cannot fix the input.
    assert task_states(run) == {("generate", -1): ("failed", 1)}
    (failure,) = reports(report)
    assert failure["error_type"] == "RivyaInputError"
    assert "params.aspectRatio" in failure["error"]
    assert "16:9" in failure["error"]
    assert "did you mean 'resolution'" in failure["error"]
    assert creates(rivya_connection) == 0


def test_a_bad_key_fails_at_once_with_the_rivya_code(
    run_dag: RunDag,
    rivya_connection: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = {"conn_type": "rivya", "host": rivya_connection.base_url, "password": "rvya_sk_bad"}
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", json.dumps(conn))
    report = tmp_path / "report.jsonl"

    run = run_dag("rivya_generate_deferred", run_conf={"report": str(report)})

    assert task_states(run) == {("generate", -1): ("failed", 1)}
    (failure,) = reports(report)
    assert failure["error_type"] == "RivyaAuthError"
    assert failure["code"] == "api_key_invalid"
    assert failure["request_id"].startswith("req_")
    assert "rvya_sk_bad" not in failure["error"]
    # It names the connection and the field to fix.
    assert "password of the Airflow connection 'rivya_default'" in failure["error"]


def test_insufficient_credits_is_its_own_retryable_failure(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    rivya_connection.set_credits(5)
    report = tmp_path / "report.jsonl"

    run = run_dag("rivya_generate_polling", run_conf={"report": str(report)})

    assert task_states(run) == {("generate", -1): ("failed", 3)}
    assert {t["error_type"] for t in reports(report)} == {"InsufficientCreditsError"}
    assert rivya_connection.counters()["tasks_created"] == 0


def test_mapped_generation_over_several_prompts(
    run_dag: RunDag, rivya_connection: RunningEmulator
) -> None:
    run = run_dag("rivya_mapped")

    states = task_states(run)
    assert states == {("generate", i): ("success", 1) for i in range(3)}
    prompts = {xcom(run, "generate", map_index=i)["prompt"] for i in range(3)}
    assert prompts == {"a red chair", "a blue chair", "a green chair"}
    keys = {xcom(run, "generate", map_index=i)["idempotency_key"] for i in range(3)}
    assert len(keys) == 3
    assert rivya_connection.counters()["credits_charged"] == 3 * 4


def test_upload_then_generate_then_download(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    reference = write_image(tmp_path / "product.png")
    out = tmp_path / "out"

    run = run_dag(
        "rivya_upload_generate_download",
        run_conf={"reference": str(reference), "out": str(out)},
    )

    assert set(task_states(run).values()) == {("success", 1)}
    (item,) = xcom(run, "upload")
    assert item["kind"] == "image"
    assert item["mimeType"] == "image/png"
    manifest = xcom(run, "edit")
    assert manifest["params"]["referenceMediaItems"] == [item]
    (copied,) = manifest["files"]
    path = Path(copied["path"].removeprefix("file://"))
    assert path.parent == out
    assert path.name == f"{manifest['generation_id']}-0.jpg"
    with Image.open(path) as image:
        assert image.format == "JPEG"
    assert not list(out.glob("*.download")), "no partial files are left behind"


def test_a_try_killed_while_waiting_reattaches_on_retry(
    run_dag: RunDag, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Done 1.8 s after the create: always after the first try's 1.5 s execution_timeout, and
    # soon into the second try, however slowly a loaded machine starts it.
    slow = emulator_factory(queued_seconds=0.2, processing_seconds=1.6)
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", connection_json(slow))
    report = tmp_path / "report.jsonl"

    run = run_dag("rivya_worker_dies", run_conf={"report": str(report)})

    states = task_states(run)
    state, tries = states[("generate", -1)]
    assert (len(states), state) == (1, "success")
    # A loaded machine can spend the first try's 1.5 s before it submits anything (seen once
    # with two test cells side by side); then the second try is the one killed while waiting.
    assert tries in {2, 3}
    assert [t["error_type"] for t in reports(report)] == ["AirflowTaskTimeout"] * (tries - 1)
    manifest = xcom(run, "generate")
    assert manifest["origin"] == "resumed"
    counters = slow.counters()
    assert counters["tasks_created"] == 1
    assert creates(slow) == 1
    assert counters["credits_charged"] == 14


@pytest.mark.parametrize("mode", ["deferred", "polling"])
def test_a_create_whose_answer_was_lost_is_replayed_not_billed_twice(
    run_dag: RunDag,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    mode: str,
) -> None:
    # Rivya stores and charges the create, then the connection drops: with one attempt per
    # request the first try dies having submitted but recorded nothing.
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", connection_json(emulator, max_attempts=1))
    emulator.set_faults(drop_next_creates=1)
    report = tmp_path / "report.jsonl"

    run = run_dag(f"rivya_generate_{mode}", run_conf={"report": str(report)})

    assert task_states(run) == {("generate", -1): ("success", 2)}
    assert [t["error_type"] for t in reports(report)] == ["RivyaTransportError"]
    assert xcom(run, "generate")["origin"] == "replayed"
    counters = emulator.counters()
    assert counters["tasks_created"] == 1
    assert counters["idempotent_replays"] == 1
    assert counters["credits_charged"] == 14


def test_a_succeeded_generation_is_reused_when_the_task_retries(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocked"  # written by the DAG once the first try has paid
    report = tmp_path / "report.jsonl"
    # Slow enough that the worker's one look before deferring finds it running: the DAG blocks
    # the output folder when the deferred wait resumes.
    rivya_connection.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=2.0)

    run = run_dag(
        "rivya_copy_fails_once",
        run_conf={"out": str(blocker / "out"), "blocker": str(blocker), "report": str(report)},
    )

    assert task_states(run) == {("generate", -1): ("success", 2)}
    (first,) = reports(report)
    assert first["error_type"] == "RivyaStorageError"
    assert first["error"].split(":")[0] in {"FileExistsError", "NotADirectoryError"}
    manifest = xcom(run, "generate")
    assert manifest["origin"] == "resumed"
    assert len(manifest["files"]) == 1
    assert creates(rivya_connection) == 1
    assert rivya_connection.counters()["credits_charged"] == 14


def test_rerunning_a_run_after_a_downstream_failure_reuses_the_generation(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    conf = {"marker": str(tmp_path / "marker")}

    first = run_dag("rivya_downstream_fails", logical_date=when, run_after=when, run_conf=conf)
    assert task_states(first)[("publish", -1)][0] == "failed"
    generation_id = xcom(first, "generate")["generation_id"]

    second = run_dag("rivya_downstream_fails", logical_date=when, run_after=when, run_conf=conf)

    assert second.run_id == first.run_id
    assert set(task_states(second).values()) == {("success", 1)}
    manifest = xcom(second, "generate")
    assert manifest["generation_id"] == generation_id
    assert manifest["origin"] == "replayed"
    assert xcom(second, "publish") == generation_id
    counters = rivya_connection.counters()
    assert counters["tasks_created"] == 1
    assert counters["credits_charged"] == 14


@pytest.mark.parametrize("mode", ["deferred", "poke"])
def test_submit_without_waiting_then_sense(
    run_dag: RunDag, rivya_connection: RunningEmulator, mode: str
) -> None:
    run = run_dag(f"rivya_submit_then_sense_{mode}")

    assert set(task_states(run).values()) == {("success", 1)}
    submitted = xcom(run, "submit")
    assert submitted["status"] in {"queued", "processing"}
    assert submitted["result_urls"] == []
    sensed = xcom(run, "wait")
    assert sensed["generation_id"] == submitted["generation_id"]
    assert sensed["status"] == "succeeded"
    assert sensed["charged_credits"] == 8
    assert xcom(run, "wait", key="_link_RivyaResultLink") == sensed["primary_url"]
    assert rivya_connection.counters()["tasks_created"] == 1


def test_the_sensor_fails_with_the_generation_error(
    run_dag: RunDag, rivya_connection: RunningEmulator, tmp_path: Path
) -> None:
    rivya_connection.set_faults(fail_next_tasks=1)
    report = tmp_path / "report.jsonl"

    run = run_dag("rivya_submit_then_sense_deferred", run_conf={"report": str(report)})

    assert task_states(run)[("wait", -1)] == ("failed", 1)
    (failure,) = reports(report)
    assert failure["error_type"] == "GenerationFailedError"
    assert failure["code"] == "generation_failed"
