"""``python -m demo --ui``: after the run, the Airflow UI shows it in the Rivya view until stopped.

The demo runs as a user runs it, in a child process; the test reads the URLs it prints, asks the
api-server for the run's Rivya view and the credits page as the all-admins user, stops the demo
with SIGTERM and checks that nothing of the api-server is left.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from demo.__main__ import DAG_ID, DAGS_FOLDER
from demo.ui import page_urls, wait_stopped
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


def listening_groups(port: int) -> set[int]:
    """Return the process groups of the processes listening on ``port`` (from ``/proc``)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    groups = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and inodes & {os.readlink(fd) for fd in (proc / "fd").iterdir()}:
                groups.add(os.getpgid(int(proc.name)))
        except OSError:  # gone, or not ours
            continue
    return groups


def live_members(group: int) -> list[int]:
    """Return the processes of a process group that are alive (not zombies)."""
    members = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text() if proc.name.isdigit() else ""
        except OSError:
            continue
        # After "(command)": state, ppid, pgrp.
        fields = stat.rpartition(")")[2].split()
        if fields and fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(proc.name))
    return members


@needs_views
def test_demo_ui_serves_the_runs_rivya_view_and_stops_the_api_server_on_sigterm(
    tmp_path: Path,
) -> None:
    campaign = tmp_path / "campaign.json"
    campaign.write_text(json.dumps({"campaign": "ui", "assets": [ASSET]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV_PREFIXES)}
    command = [sys.executable, "-m", "demo", "--ui", "--ui-seconds", "600", "--timeout", "300"]
    command += ["--output", str(tmp_path / "out"), "--campaign", str(campaign)]
    demo = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        printed = read_until(demo, "Serving for 600 s.")
        found = RUN_TAB.search(printed)
        assert found, printed
        base_url, dag_id, run_id = found[1], found[2], unquote(found[3])
        assert dag_id == DAG_ID
        assert f"  Rivya credits: {base_url}/plugin/rivya-credits" in printed
        (server_group,) = listening_groups(int(base_url.rsplit(":", 1)[1]))
        assert server_group != os.getpgid(demo.pid)  # its own group, stopped as one
        assert live_members(server_group)  # the check at the end could fail
        with httpx.Client(base_url=base_url, timeout=30) as client:
            # All admins: a token for the asking, no password (the UI does the same).
            token = client.get("/auth/token").raise_for_status().json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            assert client.get(found[0].removeprefix(base_url)).status_code == 200
            run_page = client.get(f"/rivya/runs/{dag_id}/{found[3]}").raise_for_status().text
            assert f"{DAG_ID} / {html.escape(run_id)}:" in run_page
            assert ASSET["prompt"] in run_page
            assert "1 generation(s), 14 credits charged" in run_page
            (image,) = re.findall(r'<img class="shot" src="\./([^"]+)"', run_page)
            picture = client.get(f"/rivya/runs/{dag_id}/{image}").raise_for_status()
            assert picture.headers["content-type"].startswith("image/")
            # The emulator still answers: the balance is its live one, 1000 less 14.
            overview = client.get("/rivya/overview").raise_for_status().text
            assert "<div class=big>986</div>" in overview
            assert f"<td>{DAG_ID}</td><td class=num>1</td><td class=num>1</td>" in overview

        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:  # a failed check: SIGTERM lets the demo stop its api-server
            demo.terminate()
            try:
                demo.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.communicate()
    assert demo.returncode == 0, rest
    assert "Airflow UI stopped." in rest
    assert "Emulator stopped." in rest
    assert live_members(server_group) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/api/v2/monitor/health", timeout=5)


def test_page_urls_quote_the_run_id_as_the_ui_routes_it() -> None:
    urls = page_urls("http://127.0.0.1:1", dag_id="d", run_id="manual__2026-01-01T00:00:00+00:00")

    assert urls == {
        "Rivya generations": "http://127.0.0.1:1/dags/d/runs/"
        "manual__2026-01-01T00%3A00%3A00%2B00%3A00/plugin/rivya-generations",
        "Rivya credits": "http://127.0.0.1:1/plugin/rivya-credits",
    }


def test_serving_ends_after_the_given_seconds_or_when_the_server_exits() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert wait_stopped(sleeper, seconds=0.1) is True
    finally:
        sleeper.kill()
        sleeper.wait()
    assert wait_stopped(sleeper, seconds=60) is False
