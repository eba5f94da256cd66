"""``python -m demo --ui``: serve the run in the Airflow UI, with the Rivya view, until Ctrl-C.

After the run, the demo starts Airflow on the run's own AIRFLOW_HOME and SQLite database
(:mod:`demo.airflow_processes`): ``airflow api-server`` on 127.0.0.1 and a free port, and beside
it a scheduler (LocalExecutor), a dag-processor and a triggerer, so that what the UI shows holds:
the health page is green, a run triggered there runs (against the emulator, which still answers),
and the ``rivya_default`` Connection, kept in the database, can be tested from its form. The run's
own task logs are cut out of ``airflow dags test``'s output (:mod:`demo.task_logs`). The simple
auth manager makes everyone an admin, so nobody signs in: the server listens on loopback only and
the database is thrown away afterwards.
"""

from __future__ import annotations

import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from packaging.version import Version

from demo.airflow_processes import COMPONENTS, airflow_running, exited, output_of, wait_healthy
from demo.task_logs import write_task_logs

#: Seconds Airflow gets to report all its parts healthy (each process imports all of Airflow).
READY_TIMEOUT = 180.0


def supported() -> bool:
    """Tell whether this Airflow shows plugin views (3.1+; 3.0 has no external views)."""
    from importlib.metadata import version

    return Version(Version(version("apache-airflow")).base_version) >= Version("3.1")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def latest_run_id(database: Path, dag_id: str) -> str | None:
    """Return the id of the DAG's latest run in the demo's SQLite database, if it has one.

    :param database: the ``airflow.db`` of the demo's AIRFLOW_HOME.
    :param dag_id: the DAG the demo ran.
    """
    query = "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
        row = db.execute(query, (dag_id,)).fetchone()
    return str(row[0]) if row else None


def page_urls(base_url: str, *, dag_id: str, run_id: str) -> dict[str, str]:
    """Return the Airflow UI pages of the run's "Rivya generations" tab and the credits page.

    :param base_url: the api-server, ``http://127.0.0.1:<port>``.
    :param dag_id: the DAG of the run.
    :param run_id: the run.
    """
    run = quote(run_id, safe="")
    return {
        "Rivya generations": f"{base_url}/dags/{dag_id}/runs/{run}/plugin/rivya-generations",
        "Rivya credits": f"{base_url}/plugin/rivya-credits",
    }


def server_env(env: Mapping[str, str], *, port: int, assets_root: Path) -> dict[str, str]:
    """Return the run's Airflow environment with the settings of a local, all-admins deployment.

    :param env: the environment the run used (its home, database and Connection).
    :param port: the api-server's port.
    :param assets_root: where runs triggered in the UI write their images by default.
    """
    base_url = f"http://127.0.0.1:{port}"
    return {
        **env,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        # One secret for all: the scheduler signs the tokens its task processes show the
        # api-server's Execution API.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # The Test button of the Connection form (off by default in Airflow 3).
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Two cores are enough: SQLite has one writer at a time anyway.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        # Runs triggered in the UI only: unpausing the daily DAG must not start (and pay for)
        # the schedule's latest run unasked.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # A worker notices its task process exited after up to this many seconds (the demo's
        # `dags test` has none, so it is 0 there). A trigger that fires quickly races a longer
        # wait: Airflow 3.3 may then take the deferring try's stale "success" for a task killed
        # externally and retry it.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "RIVYA_ASSETS_ROOT": str(assets_root),
        "PYTHONUNBUFFERED": "1",
    }


def serve_run(env: Mapping[str, str], *, dag_id: str, folder: Path, seconds: float | None) -> int:
    """Serve the demo's run of ``dag_id`` in the Airflow UI; return 1 when that fails.

    :param env: the run's Airflow environment.
    :param dag_id: the DAG the demo ran.
    :param folder: the demo run's folder (Airflow's output and the run's ``airflow.log`` are
        there; runs triggered in the UI write there too).
    :param seconds: serve this long, or until Ctrl-C when ``None``.
    """
    run_id = latest_run_id(Path(env["AIRFLOW_HOME"]) / "airflow.db", dag_id)
    if run_id is None:
        print(f"No run of {dag_id} to show in the Airflow UI.", file=sys.stderr)
        return 1
    write_task_logs(
        folder / "airflow.log",
        base=Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]),
        dag_id=dag_id,
        run_id=run_id,
    )
    return serve(env, dag_id=dag_id, run_id=run_id, folder=folder, seconds=seconds)


def serve(
    env: Mapping[str, str], *, dag_id: str, run_id: str, folder: Path, seconds: float | None
) -> int:
    """Serve the Airflow UI of the demo's run until Ctrl-C, SIGTERM or ``seconds``; return 0 or 1.

    :param env: the Airflow environment of the run.
    :param dag_id: the DAG the demo ran.
    :param run_id: its run, whose "Rivya generations" tab is printed.
    :param folder: where Airflow's output goes (a file per component).
    :param seconds: stop after this long (for tests); ``None`` serves until stopped.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    outputs = output_of(folder, "<component>")
    print(f"\nStarting the Airflow UI and scheduler (their output: {outputs})...", flush=True)
    deployment = server_env(env, port=port, assets_root=folder)
    try:
        with sigterm_interrupts(), airflow_running(deployment, folder=folder) as running:
            if not wait_healthy(running, base_url=base_url, timeout=READY_TIMEOUT):
                which = exited(running) or "api-server"
                print(
                    f"Airflow did not start; the output of its {which}: {output_of(folder, which)}",
                    file=sys.stderr,
                )
                return 1
            print(f"Airflow UI: {base_url} (no sign-in: a local demo where everyone is admin)")
            for name, url in page_urls(base_url, dag_id=dag_id, run_id=run_id).items():
                print(f"  {name}: {url}")
            print(
                f"Running on the run's database: {', '.join(COMPONENTS)} "
                "(LocalExecutor): Trigger in the UI runs a DAG (the daily schedules stay off), "
                "and the rivya_default Connection can be tested from its form."
            )
            until = "until Ctrl-C" if seconds is None else f"for {seconds:g} s"
            print(f"Serving {until}.", flush=True)
            if (gone := wait_stopped(running, seconds=seconds)) is not None:
                print(
                    f"The Airflow {gone} exited; its output: {output_of(folder, gone)}",
                    file=sys.stderr,
                )
                return 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: Airflow is stopped by now
        print()
    print("Airflow UI stopped.", flush=True)
    return 0


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM stop the block as Ctrl-C does, so Airflow is stopped either way."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_stopped(
    processes: Mapping[str, subprocess.Popen[bytes]], *, seconds: float | None
) -> str | None:
    """Block until ``seconds`` pass (or Ctrl-C); return the name of a process that exited first.

    :param processes: Airflow's processes by name.
    :param seconds: how long to serve; ``None`` for as long as nobody stops it.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        if (gone := exited(processes)) is not None:
            return gone
        time.sleep(0.5)
    return None
