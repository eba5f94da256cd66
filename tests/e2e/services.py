"""Throwaway PostgreSQL and Redis servers on 127.0.0.1, from Debian's packages, and an S3 API.

``.ci/run`` installs the packages (``postgresql``, ``redis-server``); each server runs in a folder
of its own for one test module and is stopped, and its folder removed, when the block ends. The
S3 API is moto's server (from PyPI), in this process.
PostgreSQL's ``initdb`` refuses to run as root: as root, the server runs as the ``postgres`` user
the Debian package creates.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.airflow_processes import free_port

LOOPBACK = "127.0.0.1"
#: Durability is not wanted from a test's database: it only slows every commit down.
POSTGRES_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
)


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian keeps them per major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[4]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def missing() -> str | None:
    """Why these servers cannot run here (``None`` when they can)."""
    if postgres_bin() is None:
        return "PostgreSQL's initdb is not installed (apt-get install postgresql)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    return None


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(command: list[str], *, log: Path) -> None:
    with log.open("ab") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=120)


@contextmanager
def postgres() -> Iterator[str]:
    """Run a PostgreSQL server; yield the SQLAlchemy URL of its empty ``airflow`` database."""
    programs = postgres_bin()
    assert programs is not None, missing()
    # Not under pytest's tmp_path: its parents are closed to the server's user.
    folder = Path(tempfile.mkdtemp(prefix="rivya-postgres-"))
    folder.chmod(0o755)
    data, log = folder / "data", folder / "server.log"
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
    port = free_port()
    options = " ".join(
        [f"-c listen_addresses={LOOPBACK}", f"-p {port}", f"-k {folder}"]
        + [f"-c {setting}" for setting in POSTGRES_SETTINGS]
    )
    as_user = _as_server_user()
    ctl = [*as_user, str(programs / "pg_ctl"), "-D", str(data)]
    initdb = ["-D", str(data), "-U", "airflow", "--auth=trust", "--encoding=UTF8", "--no-sync"]
    createdb = ["-h", LOOPBACK, "-p", str(port), "-U", "airflow", "airflow"]
    try:
        _run([*as_user, str(programs / "initdb"), *initdb], log=folder / "initdb.log")
        _run(
            [*ctl, "-l", str(log), "-o", options, "-w", "-t", "60", "start"], log=folder / "ctl.log"
        )
        _run([*as_user, str(programs / "createdb"), *createdb], log=folder / "ctl.log")
        yield f"postgresql+psycopg2://airflow@{LOOPBACK}:{port}/airflow"
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis() -> Iterator[str]:
    """Run a Redis server that keeps nothing on disk; yield its URL."""
    folder = Path(tempfile.mkdtemp(prefix="rivya-redis-"))
    port = free_port()
    program = shutil.which("redis-server")
    assert program is not None, missing()
    nothing_on_disk = ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    with (folder / "server.log").open("ab") as out:
        server = subprocess.Popen(
            [program, "--port", str(port), "--bind", LOOPBACK, *nothing_on_disk],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_pong(port, server)
        yield f"redis://{LOOPBACK}:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_pong(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"redis-server exited with {server.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not answer PING within 30 s")
        time.sleep(0.1)


#: The credentials moto accepts (any would do): not a secret.
S3_LOGIN = {"login": "testing", "password": "testing"}


@contextmanager
def s3() -> Iterator[str]:
    """Serve an S3 API (moto's server) on 127.0.0.1; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.stop()


def aws_connection(endpoint: str) -> dict[str, object]:
    """An Airflow ``aws`` connection to the S3 API at ``endpoint``."""
    return {
        "conn_type": "aws",
        **S3_LOGIN,
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the S3 API at ``endpoint``."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_LOGIN["login"],
        aws_secret_access_key=S3_LOGIN["password"],
    )
