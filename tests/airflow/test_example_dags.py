"""Every example DAG of dags_examples/ imports cleanly and cheaply; each one runs for real.

The import checks cover every ``dags_examples/*.py`` file, so a new example is checked as soon
as it exists. The run checks are explicit per DAG (``dag.test()`` against the emulator); the
marketing refresh DAG has its own module.
"""

from __future__ import annotations

import ast
import hashlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from rivya_provider.emulator import RunningEmulator
from rivya_provider.outputs import folder_name
from tests.airflow.examples import (
    EXAMPLE_DAGS_DIR,
    assert_succeeded_first_try,
    connect_rivya_default,
    example_dag_files,
    parse_example,
    run_example,
    task_states,
    xcom,
)
from tests.airflow_compat import airflow_at_least, requires_airflow
from tests.emulator_fixtures import EmulatorFactory
from tests.media import write_image

EXAMPLE_FILES = example_dag_files()
QUICKSTART = EXAMPLE_DAGS_DIR / "rivya_quickstart.py"
PHOTO_EDIT = EXAMPLE_DAGS_DIR / "rivya_product_photo_edit.py"
SUBMIT_THEN_WAIT = EXAMPLE_DAGS_DIR / "rivya_submit_then_wait.py"
SHIPPED_PHOTO = EXAMPLE_DAGS_DIR / "assets" / "product.jpg"
APPROVAL = EXAMPLE_DAGS_DIR / "rivya_marketing_approval.py"
#: Example files that need a newer Airflow than 3.0 to define their DAG (3.0 parses them clean).
NEEDS_AIRFLOW = {APPROVAL: ("3.1", "the approval DAG (human-in-the-loop operators)")}
#: The example files whose DAGs this Airflow can define.
DAG_FILES = [
    pytest.param(path, marks=requires_airflow(*NEEDS_AIRFLOW[path]))
    if path in NEEDS_AIRFLOW
    else path
    for path in EXAMPLE_FILES
]
#: Each example file defines the DAG it is named after, plus the companions listed here.
COMPANION_DAGS = {"rivya_marketing_refresh": {"rivya_marketing_publish"}}

#: Imports one DAG file (``argv[1]``) and prints, as JSON, the file and network I/O its code did.
#: Opens under the interpreter's prefixes, the stdlib, site-packages and rivya_provider are module
#: loads, not I/O of the DAG file, and Airflow's own first-DAG work (croniter even runs ``file``
#: when first imported) is done before recording starts.
IO_PROBE = r"""
import datetime, importlib.util, json, os, sys, sysconfig
sys.dont_write_bytecode = True
import airflow.sdk
import rivya_provider

with airflow.sdk.DAG("warm_up", schedule="@daily", start_date=datetime.datetime(2026, 1, 1)):
    airflow.sdk.task(lambda: None, task_id="noop")()

path = os.path.abspath(sys.argv[1])
trusted = {sys.prefix, sys.base_prefix, *sysconfig.get_paths().values()}
trusted.add(os.path.dirname(rivya_provider.__file__))
trusted_dirs = tuple(os.path.join(os.path.realpath(p), "") for p in trusted)
seen = []
recording = False

def audit(event, args):
    if not recording:
        return
    if event == "open" and isinstance(args[0], (str, bytes)):
        target = os.path.realpath(os.fsdecode(args[0]))
        if not target.startswith(trusted_dirs):
            seen.append(f"open {target}")
    elif event == "socket.connect":
        seen.append(f"socket.connect {args[1]!r}")
    elif event == "socket.getaddrinfo":
        seen.append(f"socket.getaddrinfo {args[0]!r}")

spec = importlib.util.spec_from_file_location("probed_dag", path)
module = importlib.util.module_from_spec(spec)
code = spec.loader.get_code("probed_dag")  # reading the DAG file itself is not its I/O
sys.modules["probed_dag"] = module
sys.addaudithook(audit)
recording = True
try:
    exec(code, module.__dict__)
    error = None
except BaseException as exc:
    error = repr(exc)
recording = False
print(json.dumps({"io": seen, "error": error}))
"""


def top_level_io(path: Path) -> dict[str, Any]:
    """Import ``path`` in a fresh interpreter; return ``{"io": [...], "error": str | None}``."""
    probe = subprocess.run(
        [sys.executable, "-c", IO_PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    report: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
    return report


def module_docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


# -- every example file --------------------------------------------------------------------------


def test_the_examples_are_found() -> None:
    names = {path.name for path in EXAMPLE_FILES}
    assert {QUICKSTART.name, PHOTO_EDIT.name, SUBMIT_THEN_WAIT.name} <= names


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.stem)
def test_example_file_defines_tagged_dags_without_import_errors(path: Path) -> None:
    bag = parse_example(path)

    assert not bag.import_errors, bag.import_errors
    assert set(bag.dag_ids) == {path.stem, *COMPANION_DAGS.get(path.stem, ())}
    for dag_id, dag in bag.dags.items():
        assert {"rivya", "example"} <= set(dag.tags), (dag_id, dag.tags)


@pytest.mark.skipif(airflow_at_least("3.1"), reason="the approval DAG is defined from Airflow 3.1")
def test_on_airflow_3_0_the_approval_file_parses_cleanly_and_defines_no_dag() -> None:
    bag = parse_example(APPROVAL)

    assert not bag.import_errors, bag.import_errors
    assert bag.dag_ids == []


def test_example_dag_ids_are_unique_across_the_folder() -> None:
    # The whole folder is one DAG bundle when deployed (the e2e test deploys exactly that).
    folder = parse_example(EXAMPLE_DAGS_DIR)
    per_file = [dag_id for path in EXAMPLE_FILES for dag_id in parse_example(path).dag_ids]

    assert not folder.import_errors, folder.import_errors
    assert sorted(folder.dag_ids) == sorted(per_file)
    assert len(set(per_file)) == len(per_file), per_file


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.stem)
def test_example_docstring_names_the_connection_and_every_param(path: Path) -> None:
    doc = module_docstring(path)
    params = {name for dag in parse_example(path).dags.values() for name in dag.params}

    assert doc.splitlines()[0].endswith("."), doc[:100]
    assert "``rivya_default``" in doc
    undocumented = sorted(name for name in params if f"``{name}``" not in doc)
    assert not undocumented, f"{path.name} docstring does not describe params {undocumented}"
    if not params:
        assert "No params" in doc


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.stem)
def test_example_file_does_no_io_at_import(path: Path) -> None:
    report = top_level_io(path)

    assert report["error"] is None, report["error"]
    assert report["io"] == [], f"{path.name} does I/O when parsed: {report['io']}"


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (the kernel completes the handshake)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        yield int(server.getsockname()[1])


@pytest.mark.parametrize(
    ("misdeed", "line", "expected"),
    [
        ("reads its own file", "SOURCE = open(__file__).read()", "open {path}"),
        (
            "connects to a server",
            "import socket; socket.create_connection(('127.0.0.1', {port})).close()",
            "socket.connect ('127.0.0.1', {port})",
        ),
    ],
    ids=["file", "socket"],
)
def test_the_io_probe_flags_a_dag_file_that_does_io_at_import(
    tmp_path: Path, listening_port: int, misdeed: str, line: str, expected: str
) -> None:
    bad = tmp_path / "rivya_bad.py"
    bad.write_text(f"{QUICKSTART.read_text()}\n{line.format(port=listening_port)}\n")

    report = top_level_io(bad)

    assert report["error"] is None, report["error"]
    wanted = expected.format(path=bad.resolve(), port=listening_port)
    assert wanted in report["io"], f"a DAG that {misdeed} went unnoticed: {report['io']}"


# -- each example DAG, run ------------------------------------------------------------------------


@pytest.mark.parametrize("logical_date", [True, False], ids=["logical-date", "no-logical-date"])
def test_quickstart_copies_one_image_to_the_runs_folder_under_output_dir(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, logical_date: bool
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    # Airflow 3 runs may have no logical date (so no ``ds``); output_dir dates by run_after.
    test_kwargs: dict[str, Any] = {} if logical_date else {"logical_date": None}

    run = run_example(
        QUICKSTART, "rivya_quickstart", run_conf={"output_dir": str(tmp_path)}, **test_kwargs
    )

    assert_succeeded_first_try(run)
    assert (run.logical_date is not None) is logical_date
    manifest = xcom(run, "generate")
    assert manifest["origin"] == "submitted"
    (copied,) = manifest["files"]
    path = Path(copied["path"].removeprefix("file://"))
    day = tmp_path / run.run_after.strftime("%Y-%m-%d")
    assert path.parent == day / folder_name(run.run_id)  # two runs of one day never collide
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == [path]
    with Image.open(path) as image:
        assert image.size[0] * 9 == image.size[1] * 16  # the DAG asks for 16:9
    counters = emulator.counters()
    assert counters["tasks_created"] == 1
    assert counters["credits_charged"] == 14


@pytest.mark.parametrize(
    "own_photo",
    [False, True],
    ids=["shipped-photo", "own-photo-and-no-logical-date"],
)
def test_product_photo_edit_uploads_the_photo_and_saves_the_edit(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, own_photo: bool
) -> None:
    connect_rivya_default(monkeypatch, emulator)
    output = tmp_path / "output"
    conf = {"output_dir": str(output)}
    test_kwargs: dict[str, Any] = {}
    expected_upload = SHIPPED_PHOTO
    if own_photo:
        expected_upload = write_image(tmp_path / "mine.webp", "webp")
        conf["photo"] = str(expected_upload)
        # Airflow 3 runs may have no logical date (so no ``ds``); the DAG must cope.
        test_kwargs["logical_date"] = None

    run = run_example(PHOTO_EDIT, "rivya_product_photo_edit", run_conf=conf, **test_kwargs)

    assert_succeeded_first_try(run)
    assert (run.logical_date is None) is own_photo
    assert set(task_states(run)) == {("upload_photo", -1), ("edit_photo", -1)}
    counters = emulator.counters()
    assert counters["files_uploaded"] == 1
    assert counters["tasks_created"] == 1
    assert counters["credits_charged"] == 4  # flux-kontext-pro
    # The upload is the very file the param named, byte for byte.
    (reference,) = xcom(run, "upload_photo")
    assert reference["kind"] == "image"
    assert reference["name"] == expected_upload.name
    uploaded = httpx.get(reference["url"], timeout=10)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.content == expected_upload.read_bytes()
    # The generation request carried that upload as its reference image.
    edit = xcom(run, "edit_photo")
    assert edit["model"] == "flux-kontext-pro"
    assert edit["params"]["referenceMediaItems"] == [reference]
    assert edit["status"] == "succeeded"
    (saved,) = edit["files"]
    path = Path(saved["path"].removeprefix("file://"))
    assert path.parent == output / run.run_after.strftime("%Y-%m-%d") / folder_name(run.run_id)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == saved["sha256"]
    with Image.open(path) as image:
        assert image.format == "PNG"  # outputFormat: png
        assert image.size[0] == image.size[1]  # aspectRatio: 1:1
        image.verify()


def test_shipped_product_photo_passes_the_upload_checks() -> None:
    from rivya_provider.client.uploads import prepare_upload

    upload = prepare_upload(SHIPPED_PHOTO, model="flux-kontext-pro")

    assert upload.mime_type == "image/jpeg"
    assert upload.size_bytes < 100_000  # small enough to ship in the repository
    with Image.open(SHIPPED_PHOTO) as image:
        assert image.format == "JPEG"
        assert 512 <= min(image.size) <= max(image.size) <= 1024


def test_submit_then_wait_waits_in_the_sensor_and_hands_the_manifest_on(
    emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slow enough that the submit task returns before the end and the sensor has to defer, even
    # where dag.test() takes seconds to start the next task (a busy machine).
    emulator = emulator_factory(queued_seconds=0.2, processing_seconds=6)
    connect_rivya_default(monkeypatch, emulator)

    run = run_example(SUBMIT_THEN_WAIT, "rivya_submit_then_wait")  # no conf: defaults only

    assert_succeeded_first_try(run)
    assert set(task_states(run)) == {("submit", -1), ("wait", -1), ("publish", -1)}
    submitted = xcom(run, "submit")
    assert submitted["status"] in {"queued", "processing"}
    assert submitted["result_urls"] == []
    waited = xcom(run, "wait")
    assert waited["status"] == "succeeded"
    assert waited["origin"] == "watched"
    assert waited["generation_id"] == submitted["generation_id"]
    assert waited["result_urls"]
    assert xcom(run, "publish") == waited["result_urls"]
    counters = emulator.counters()
    assert counters["tasks_created"] == 1
    # The sensor's own check found the generation running, then the trigger polled again.
    assert counters["requests"]["GET /api/v1/generations/{taskId}"] >= 2
    handed_on = json.dumps([xcom(run, task) for task in ("submit", "wait", "publish")])
    assert emulator.api_key not in handed_on
