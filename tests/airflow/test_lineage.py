"""OpenLineage events through the real listener, and Asset events, from the Rivya operators.

The lineage runs happen in a fresh interpreter (tests/airflow/lineage_run.py) with the
OpenLineage ``file`` transport configured through the environment, as a deployment would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from rivya_provider.client import RivyaClient
from rivya_provider.emulator import RunningEmulator
from tests.airflow.examples import (
    ROOT,
    assert_succeeded_first_try,
    connect_rivya_default,
    ensure_airflow_db,
    run_example,
    xcom,
)
from tests.airflow.test_marketing_refresh import asset_events
from tests.airflow_compat import broken_in_airflow
from tests.emulator_fixtures import EmulatorFactory
from tests.media import write_image

DAG_FILE = Path(__file__).parent / "lineage_dags" / "rivya_lineage.py"
HOST = socket.gethostname()


def run_with_lineage(dag_id: str, conf: dict[str, Any], events: Path) -> dict[str, Any]:
    """Run ``dag_id`` in a new interpreter that emits OpenLineage events to ``events``."""
    ensure_airflow_db()
    result_file = events.with_name(f"{events.stem}-result.json")
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "rivya-tests",
    }
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.airflow.lineage_run",
            str(DAG_FILE),
            dag_id,
            json.dumps(conf),
            str(result_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    assert result_file.is_file(), f"no result; stdout: {child.stdout[-3000:]}"
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def emitted(events: Path, job: str, event_type: str) -> dict[str, Any]:
    """Return the one ``event_type`` event of ``job`` (``dag_id.task_id``) in the file."""
    found = [
        event
        for event in map(json.loads, events.read_text().splitlines())
        if event["job"]["name"] == job and event["eventType"] == event_type
    ]
    assert len(found) == 1, f"{len(found)} {event_type} events for {job}"
    event: dict[str, Any] = found[0]
    return event


def dataset(namespace: str, name: str) -> dict[str, str]:
    return {"namespace": namespace, "name": name}


def names(datasets: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [dataset(d["namespace"], d["name"]) for d in datasets]


def local(path: str) -> dict[str, str]:
    return dataset(f"file://{HOST}", path.removeprefix("file://"))


def assert_valid_facet(facet: dict[str, Any]) -> None:
    """Check the facet against the schema shipped in the package (jsonschema, else keys)."""
    from rivya_provider.lineage import RUN_FACET_SCHEMA_URL, run_facet_schema

    schema = run_facet_schema()
    assert facet["_schemaURL"] == RUN_FACET_SCHEMA_URL
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        definition = schema["$defs"]["RivyaGenerationRunFacet"]
        assert set(definition["required"]) <= set(facet) <= set(definition["properties"])
        return
    jsonschema.validate({"rivyaGeneration": facet}, schema)


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, Path]:
    return write_image(tmp_path / "product.png"), write_image(tmp_path / "sketch.webp", "webp")


def test_complete_events_carry_the_references_the_copied_results_and_the_run_facet(
    emulator_factory: EmulatorFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    photos: tuple[Path, Path],
) -> None:
    # Still processing when the deferrable task first looks: it defers.
    emulator = emulator_factory(processing_seconds=1.5)
    connect_rivya_default(monkeypatch, emulator)
    photo, sketch = photos
    events = tmp_path / "lineage.jsonl"
    output = tmp_path / "output"
    conf = {"photo": str(photo), "sketch": str(sketch), "output_dir": str(output)}

    result = run_with_lineage("rivya_lineage", conf, events)

    assert result["state"] == "success", result
    run: Any = SimpleNamespace(dag_id="rivya_lineage", run_id=result["run_id"])
    (item,) = xcom(run, "upload")
    manifest = xcom(run, "generate")
    uploaded = dataset(emulator.base_url, urlsplit(item["url"]).path)
    # The upload: the local photo in, the file on Rivya out.
    upload = emitted(events, "rivya_lineage.upload", "COMPLETE")
    assert names(upload["inputs"]) == [local(str(photo))]
    assert names(upload["outputs"]) == [uploaded]
    # The generation: its own reference file and the uploaded item in, the copied image out.
    complete = emitted(events, "rivya_lineage.generate", "COMPLETE")
    assert names(complete["inputs"]) == [local(str(sketch)), uploaded]
    (copied,) = manifest["files"]
    assert Path(copied["path"].removeprefix("file://")).parent == output
    assert names(complete["outputs"]) == [local(copied["path"])]
    facet = complete["run"]["facets"]["rivyaGeneration"]
    assert_valid_facet(facet)
    assert {k: v for k, v in facet.items() if not k.startswith("_")} == {
        "model": "flux-2-flex",
        "generationId": manifest["generation_id"],
        "status": "succeeded",
        "origin": "submitted",
        "reservedCredits": manifest["reserved_credits"],
        "chargedCredits": 14,
    }
    # The start event already names the inputs and the model.
    start = emitted(events, "rivya_lineage.generate", "START")
    assert names(start["inputs"]) == names(complete["inputs"])
    assert start["run"]["facets"]["rivyaGeneration"]["model"] == "flux-2-flex"
    assert start["run"]["runId"] == complete["run"]["runId"]
    # A deferred generation's COMPLETE event comes from the resumed task, with the same facts.
    deferred = xcom(run, "generate_deferred")
    resumed = emitted(events, "rivya_lineage.generate_deferred", "COMPLETE")
    assert names(resumed["inputs"]) == [uploaded]
    assert names(resumed["outputs"]) == [local(f["path"]) for f in deferred["files"]]
    resumed_facet = resumed["run"]["facets"]["rivyaGeneration"]
    assert_valid_facet(resumed_facet)
    assert resumed_facet["generationId"] == deferred["generation_id"]
    assert resumed_facet["status"] == "succeeded"
    assert emulator.api_key not in events.read_text()


def test_a_failed_generation_emits_a_fail_event_with_what_was_known(
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    photos: tuple[Path, Path],
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    emulator.set_faults(fail_next_tasks=2)
    photo, sketch = photos
    events = tmp_path / "lineage.jsonl"
    conf = {"photo": str(photo), "sketch": str(sketch), "output_dir": str(tmp_path / "out")}

    result = run_with_lineage("rivya_lineage", conf, events)

    assert result["tasks"]["generate[-1]"][0] == "failed", result
    assert result["tasks"]["generate_deferred[-1]"][0] == "failed", result
    failed = emitted(events, "rivya_lineage.generate", "FAIL")
    assert names(failed["inputs"])[0] == local(str(sketch))
    # Both generations failed: one while the worker waited, one in the triggerer.
    for task in ("generate", "generate_deferred"):
        failed = emitted(events, f"rivya_lineage.{task}", "FAIL")
        assert failed["outputs"] == []
        facet = failed["run"]["facets"]["rivyaGeneration"]
        assert_valid_facet(facet)
        assert facet["model"] == "flux-2-flex"
        assert facet["status"] == "failed", task
        assert facet["origin"] == "submitted"
        with RivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
            assert client.get_generation(facet["generationId"]).status == "failed"
        assert facet["chargedCredits"] == 0  # a failed generation costs nothing
    assert not (tmp_path / "out").exists()


@broken_in_airflow(
    "3.0",
    "dag.test() does not register the DAG's assets, so a task with an Asset outlet fails "
    "with AirflowInactiveAssetInInletOrOutletException",
)
def test_each_asset_outlet_event_carries_the_generation(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    before = {
        name: len(asset_events(name))
        for name in ("rivya_lineage_images", "rivya_lineage_catalogue")
    }

    run = run_example(DAG_FILE, "rivya_asset_outlets", run_conf={"output_dir": str(tmp_path)})

    assert_succeeded_first_try(run)
    manifest = xcom(run, "generate")
    expected = {
        "generation_id": manifest["generation_id"],
        "model": "flux-2-flex",
        "files": [manifest["files"][0]["path"]],
        "credits": 14,
    }
    for name, count in before.items():
        events = asset_events(name)
        assert len(events) == count + 1, name
        assert events[-1] == expected, name


def test_the_operators_import_and_build_without_the_openlineage_packages() -> None:
    # The OpenLineage client is what the extra brings; rivya_provider.lineage needs it.
    probe = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'openlineage':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rivya_provider.operators.files import RivyaUploadFileOperator\n"
        "from rivya_provider.operators.generate import RivyaGenerateOperator\n"
        "RivyaGenerateOperator(task_id='g', model='flux-2-flex', prompt='p')\n"
        "RivyaUploadFileOperator(task_id='u', files='/tmp/x.png')\n"
        "names = ('openlineage', 'rivya_provider.lineage')\n"
        "print(sorted(m for m in sys.modules if m.startswith(names)))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.strip().splitlines()[-1] == "[]"


def test_the_docs_publish_the_schema_the_package_ships() -> None:
    from rivya_provider.lineage import RUN_FACET_SCHEMA_URL, run_facet_schema

    published = json.loads((ROOT / "docs" / "schemas" / "RivyaGenerationRunFacet.json").read_text())
    assert published == run_facet_schema()
    assert f"{published['$id']}#/$defs/RivyaGenerationRunFacet" == RUN_FACET_SCHEMA_URL
