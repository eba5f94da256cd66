"""``python -m demo --ui``: serve the run in the Airflow UI, with the Rivya view, until Ctrl-C.

After the run, the demo starts ``airflow api-server`` on 127.0.0.1 and a free port, on the run's
own AIRFLOW_HOME and SQLite database and with its ``rivya_default`` Connection (the credits page
reads the balance in the api-server process). The simple auth manager makes everyone an admin, so
nobody signs in: the server listens on loopback only and the database is thrown away afterwards.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from urllib.parse import quote

import httpx
from packaging.version import Version

#: Seconds the api-server gets to answer (it imports all of Airflow and migrates nothing).
READY_TIMEOUT = 180.0
#: Seconds between SIGTERM and SIGKILL of the api-server's process group.
STOP_GRACE = 15.0


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


def server_env(env: Mapping[str, str], *, port: int) -> dict[str, str]:
    """Return the run's Airflow environment with the settings of a local, all-admins api-server.

    :param env: the environment the run used (its home, database and Connection).
    :param port: the port to listen on.
    """
    return {
        **env,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "PYTHONUNBUFFERED": "1",
    }


def serve_run(env: Mapping[str, str], *, dag_id: str, folder: Path, seconds: float | None) -> int:
    """Serve the demo's run of ``dag_id`` in the Airflow UI; return 1 when that fails.

    :param env: the run's Airflow environment.
    :param dag_id: the DAG the demo ran.
    :param folder: the demo run's folder (the api-server's output goes there).
    :param seconds: serve this long, or until Ctrl-C when ``None``.
    """
    run_id = latest_run_id(Path(env["AIRFLOW_HOME"]) / "airflow.db", dag_id)
    if run_id is None:
        print(f"No run of {dag_id} to show in the Airflow UI.", file=sys.stderr)
        return 1
    return serve(
        env, dag_id=dag_id, run_id=run_id, log_path=folder / "api-server.log", seconds=seconds
    )


def serve(
    env: Mapping[str, str], *, dag_id: str, run_id: str, log_path: Path, seconds: float | None
) -> int:
    """Serve the Airflow UI of the demo's run until Ctrl-C, SIGTERM or ``seconds``; return 0 or 1.

    :param env: the Airflow environment of the run.
    :param dag_id: the DAG the demo ran.
    :param run_id: its run, whose "Rivya generations" tab is printed.
    :param log_path: where the api-server's output goes.
    :param seconds: stop after this long (for tests); ``None`` serves until stopped.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    print(f"\nStarting the Airflow UI (api-server output: {log_path})...", flush=True)
    try:
        with (
            sigterm_interrupts(),
            api_server(server_env(env, port=port), log_path=log_path) as server,
        ):
            if not wait_ready(server, base_url=base_url):
                print(f"The api-server did not start; its output: {log_path}", file=sys.stderr)
                return 1
            print(f"Airflow UI: {base_url} (no sign-in: a local demo where everyone is admin)")
            for name, url in page_urls(base_url, dag_id=dag_id, run_id=run_id).items():
                print(f"  {name}: {url}")
            until = "until Ctrl-C" if seconds is None else f"for {seconds:g} s"
            print(f"Serving {until}.", flush=True)
            if not wait_stopped(server, seconds=seconds):
                print(f"The api-server exited; its output: {log_path}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the api-server is stopped by now
        print()
    print("Airflow UI stopped.", flush=True)
    return 0


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM stop the block as Ctrl-C does, so the api-server is stopped either way."""
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


@contextmanager
def api_server(env: Mapping[str, str], *, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``airflow api-server`` in its own process group; stop the whole group afterwards.

    :param env: from :func:`server_env`.
    :param log_path: where its output goes.
    """
    command = [sys.executable, "-m", "airflow", "api-server"]
    with log_path.open("ab") as log:
        child = subprocess.Popen(  # noqa: S603
            command,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own group: Ctrl-C reaches the demo only, which then stops uvicorn and its
            # worker together.
            start_new_session=True,
        )
    try:
        yield child
    finally:
        stop_group(child)


def stop_group(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after a grace period."""
    try:
        _signal_group(child, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            child.wait(timeout=STOP_GRACE)
    finally:
        # The leader may be gone while a worker lingers, or a second Ctrl-C cut the wait
        # short: kill the group regardless.
        _signal_group(child, signal.SIGKILL)
        child.wait()


def _signal_group(child: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)  # start_new_session: the group id is the leader's pid


def wait_ready(server: subprocess.Popen[bytes], *, base_url: str) -> bool:
    """Wait until the api-server answers its health check; ``False`` when it exits first.

    :param server: the api-server process.
    :param base_url: where it listens.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while server.poll() is None and time.monotonic() < deadline:
            with suppress(httpx.TransportError):
                if client.get("/api/v2/monitor/health").status_code == 200:
                    return True
            time.sleep(0.5)
    return False


def wait_stopped(server: subprocess.Popen[bytes], *, seconds: float | None) -> bool:
    """Block until ``seconds`` pass (or Ctrl-C); ``False`` when the api-server exits first.

    :param server: the api-server process.
    :param seconds: how long to serve; ``None`` for as long as nobody stops it.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        time.sleep(0.5)
    return True
