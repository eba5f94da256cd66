"""``python -m demo --ui``: after the run, the Airflow UI shows it, truthfully, until stopped.

The demo runs as a user runs it, in a child process, once for the module (:func:`served`); the
tests read the URLs it prints and ask the api-server's REST API, as the all-admins user, what the
UI's pages show: the run's Rivya view and the credits page, the health of every component, the
task logs, the run's duration, the Connection (and its Test button) and a run triggered there.
The last test stops the demo with SIGTERM and checks that no process of its Airflow is left.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest

from demo.__main__ import DAG_ID, DAGS_FOLDER
from demo.airflow_processes import HEALTH_PARTS, unhealthy_parts
from demo.task_logs import write_task_logs
from demo.ui import page_urls, wait_stopped
from rivya_provider.outputs import folder_name
from tests.airflow_compat import airflow_at_least

REPO = Path(__file__).resolve().parents[2]
ASSET = json.loads((DAGS_FOLDER / "campaign.json").read_text())["assets"][0]
RUN_TAB = re.compile(
    r"^  Rivya generations: (http://127\.0\.0\.1:\d+)/dags/([^/]+)/runs/([^/]+)"
    r"/plugin/rivya-generations$",
    re.MULTILINE,
)
#: Settings of this process that must not reach the demo's Airflow (as in tests/e2e).
FOREIGN_ENV_PREFIXES = ("AIRFLOW", "_AIRFLOW", "PYTEST_", "COV_CORE_", "COVERAGE_PROCESS_")

needs_views = pytest.mark.skipif(
    not airflow_at_least("3.1"), reason="UI external views need Airflow 3.1+ (3.0 has none)"
)


def read_until(demo: subprocess.Popen[str], marker: str) -> str:
    """Return the demo's output up to the line holding ``marker``; fail if it ends first."""
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if marker in line:
            return "".join(lines)
    pytest.fail(f"the demo ended without printing {marker!r}:\n{''.join(lines)}")


def listening_pids(port: int) -> set[int]:
    """Return the processes listening on ``port`` (from ``/proc``)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and inodes & {os.readlink(fd) for fd in (proc / "fd").iterdir()}:
                pids.add(int(proc.name))
        except OSError:  # gone, or not ours
            continue
    return pids


@dataclass
class Served:
    """The demo, serving its run: its process, what it printed and a logged-in REST client."""

    demo: subprocess.Popen[str]
    printed: str
    base_url: str
    run_id: str
    run_tab: str
    api: httpx.Client
    #: The sessions of the demo's children: Airflow's components, each with a session of its own.
    sessions: set[int]
    tmp: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Start ``python -m demo --ui`` on a one-asset campaign; yield it once it serves."""
    tmp = tmp_path_factory.mktemp("demo-ui")
    campaign = tmp / "campaign.json"
    campaign.write_text(json.dumps({"campaign": "ui", "assets": [ASSET]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV_PREFIXES)}
    command = [sys.executable, "-m", "demo", "--ui", "--ui-seconds", "600", "--timeout", "300"]
    command += ["--output", str(tmp / "out"), "--campaign", str(campaign)]
    demo = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        printed = read_until(demo, "Serving for 600 s.")
        found = RUN_TAB.search(printed)
        assert found, printed
        base_url = found[1]
        sessions = {
            int(s[3]) for pid in live_pids() if (s := stat_of(pid)) and int(s[1]) == demo.pid
        }
        # One api-server worker on a SQLite file that four processes write to: on a busy
        # machine an answer can take a while.
        with httpx.Client(base_url=base_url, timeout=120) as api:
            # All admins: a token for the asking, no password (the UI does the same).
            token = api.get("/auth/token").raise_for_status().json()["access_token"]
            api.headers["Authorization"] = f"Bearer {token}"
            yield Served(
                demo=demo,
                printed=printed,
                base_url=base_url,
                run_id=unquote(found[3]),
                run_tab=found[0],
                api=api,
                sessions=sessions,
                tmp=tmp,
            )
    finally:
        if demo.poll() is None:  # a failed check: SIGTERM lets the demo stop its Airflow
            demo.terminate()
            try:
                demo.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.communicate()


def stat_of(pid: int) -> list[str]:
    """Return a process's ``/proc/<pid>/stat`` fields after its command: state, ppid, pgrp, sid."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()
    except OSError:  # gone
        return []


def live_pids() -> list[int]:
    """Return every process that is alive (not a zombie)."""
    pids = [int(proc.name) for proc in Path("/proc").iterdir() if proc.name.isdigit()]
    return [pid for pid in pids if (stat := stat_of(pid)) and stat[0] != "Z"]


def live_in_sessions(sessions: set[int]) -> list[int]:
    """Return the live processes of these sessions (task processes have groups of their own)."""
    return [pid for pid in live_pids() if (stat := stat_of(pid)) and int(stat[3]) in sessions]


def task_log(api: httpx.Client, run_id: str, task_id: str) -> str:
    """Return the text of a task's first try's log, as the UI's Logs tab gets it."""
    answer = api.get(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/1",
        headers={"Accept": "application/json"},
    )
    lines = answer.raise_for_status().json()["content"]
    return "\n".join(str(line.get("event", "")) for line in lines)


def when(value: str) -> datetime:
    """Parse a date of Airflow's REST API (Python 3.10 does not take its ``Z``)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@needs_views
def test_the_run_shows_in_the_rivya_view_and_the_credits_page(served: Served) -> None:
    api, run_id = served.api, served.run_id
    assert f"  Rivya credits: {served.base_url}/plugin/rivya-credits" in served.printed
    assert api.get(served.run_tab.removeprefix(served.base_url)).status_code == 200
    run_page = api.get(f"/rivya/runs/{DAG_ID}/{quote(run_id, safe='')}").raise_for_status().text
    assert f"{DAG_ID} / {html.escape(run_id)}:" in run_page
    assert ASSET["prompt"] in run_page
    assert "1 generation(s), 14 credits charged" in run_page
    (image,) = re.findall(r'<img class="shot" src="\./([^"]+)"', run_page)
    picture = api.get(f"/rivya/runs/{DAG_ID}/{image}").raise_for_status()
    assert picture.headers["content-type"].startswith("image/")
    # The emulator still answers: the balance is its live one, 1000 less 14.
    overview = api.get("/rivya/overview").raise_for_status().text
    assert "<div class=big>986</div>" in overview


@needs_views
def test_every_component_the_home_page_shows_is_healthy(served: Served) -> None:
    health = served.api.get("/api/v2/monitor/health").raise_for_status().json()

    assert unhealthy_parts(health) == [], health
    assert "scheduler, dag-processor, triggerer (LocalExecutor)" in served.printed


@needs_views
def test_the_runs_task_logs_hold_what_the_tasks_wrote(served: Served) -> None:
    log = task_log(served.api, served.run_id, "check_budget")

    assert "Run needs 14 credits for 1 generation(s)" in log
    assert "Could not read served logs" not in log


@needs_views
def test_the_runs_duration_is_its_own_not_the_hours_since_midnight(served: Served) -> None:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(served.run_id, safe='')}"
    run = served.api.get(path).raise_for_status().json()

    duration = when(run["end_date"]) - when(run["start_date"])
    assert timedelta(0) < duration < timedelta(minutes=5), run


@needs_views
def test_the_connection_is_listed_and_its_test_button_reaches_the_emulator(served: Served) -> None:
    api = served.api
    listed = api.get("/api/v2/connections").raise_for_status().json()["connections"]
    (connection,) = [c for c in listed if c["connection_id"] == "rivya_default"]
    assert connection["password"] == "***"  # the key stays in the database
    # The form sends back what it shows; the masked key is taken from the database.
    body = {k: v for k, v in connection.items() if v is not None}
    tested = api.post("/api/v2/connections/test", json=body).raise_for_status().json()

    assert tested["status"] is True, tested
    assert "986 credits" in tested["message"]


@needs_views
def test_a_run_triggered_in_the_ui_runs_against_the_emulator(served: Served) -> None:
    api = served.api
    # The trigger form's "Unpause on trigger", then its Trigger button.
    api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
    conf = {"campaign": str(served.tmp / "campaign.json")}
    run = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    run_id = run.raise_for_status().json()["dag_run_id"]
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
    deadline = time.monotonic() + 240  # not a measure: a stuck run must not hang the test
    while (state := api.get(path).raise_for_status().json()["state"]) in ("queued", "running"):
        assert time.monotonic() < deadline, f"run {run_id} still {state}"
        time.sleep(2)

    assert state == "success"
    # Its images went to the demo's run folder too (RIVYA_ASSETS_ROOT), beside the demo's run.
    summaries = sorted(p.parent.name for p in served.tmp.glob("out/*/*/*/summary.json"))
    assert summaries == sorted([folder_name(served.run_id), folder_name(run_id)])
    log = task_log(api, run_id, "check_budget")
    assert "balance 986" in log
    assert "Could not read served logs" not in log
    # The schedule stays off: the triggered run is the only new one.
    runs = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns").raise_for_status().json()["dag_runs"]
    assert sorted(r["dag_run_id"] for r in runs) == sorted([served.run_id, run_id])


@needs_views
def test_sigterm_stops_every_airflow_process_of_the_demo(served: Served) -> None:
    """Last in the module: it stops what the other tests ask."""
    assert os.getsid(served.demo.pid) not in served.sessions  # each stopped as one
    (server,) = {os.getsid(pid) for pid in listening_pids(int(served.base_url.rsplit(":", 1)[1]))}
    assert server in served.sessions
    assert len(served.sessions) == 4, served.sessions  # api-server, scheduler, dag-processor...
    assert live_in_sessions(served.sessions)  # the check at the end could fail

    served.demo.send_signal(signal.SIGTERM)
    rest, _ = served.demo.communicate(timeout=120)

    assert served.demo.returncode == 0, rest
    assert "Airflow UI stopped." in rest
    assert "Emulator stopped." in rest
    assert live_in_sessions(served.sessions) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served.base_url}/api/v2/monitor/health", timeout=5)


def test_page_urls_quote_the_run_id_as_the_ui_routes_it() -> None:
    urls = page_urls("http://127.0.0.1:1", dag_id="d", run_id="manual__2026-01-01T00:00:00+00:00")

    assert urls == {
        "Rivya generations": "http://127.0.0.1:1/dags/d/runs/"
        "manual__2026-01-01T00%3A00%3A00%2B00%3A00/plugin/rivya-generations",
        "Rivya credits": "http://127.0.0.1:1/plugin/rivya-credits",
    }


def test_serving_ends_after_the_given_seconds_or_when_a_process_exits() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert wait_stopped({"scheduler": sleeper}, seconds=0.1) is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert wait_stopped({"scheduler": sleeper}, seconds=60) == "scheduler"


def test_health_counts_only_when_every_component_is_healthy() -> None:
    health: dict[str, object] = {part: {"status": "healthy"} for part in HEALTH_PARTS}
    assert unhealthy_parts(health) == []
    health["triggerer"] = {"status": "unhealthy", "latest_triggerer_heartbeat": None}
    del health["dag_processor"]
    assert unhealthy_parts(health) == ["triggerer", "dag_processor"]


def test_dags_test_output_is_cut_into_each_tasks_attempts(tmp_path: Path) -> None:
    output = tmp_path / "airflow.log"
    output.write_text(
        "Airflow starts\n"
        "t1 [DAG TEST] starting task_id=load map_index=-1 [dag]\n"
        "loaded\n"
        "t2 [DAG TEST] end task task_id=load map_index=-1 [dag]\n"
        "Airflow between tasks\n"
        "t3 [DAG TEST] starting task_id=generate map_index=1 [dag]\n"
        "Traceback: boom\n"
        "t4 [DAG TEST] starting task_id=generate map_index=1 [dag]\n"
        "done: 14 credits\n"
    )

    written = write_task_logs(output, base=tmp_path / "logs", dag_id="d", run_id="r+1")

    assert written == 3
    run = tmp_path / "logs" / "dag_id=d" / "run_id=r+1"
    assert (run / "task_id=load" / "attempt=1.log").read_text() == (
        "t1 [DAG TEST] starting task_id=load map_index=-1 [dag]\nloaded\n"
        "t2 [DAG TEST] end task task_id=load map_index=-1 [dag]\n"
    )
    tries = run / "task_id=generate" / "map_index=1"
    assert (tries / "attempt=1.log").read_text().endswith("Traceback: boom\n")
    assert (tries / "attempt=2.log").read_text().endswith("done: 14 credits\n")
