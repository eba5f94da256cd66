"""The provider as the ``airflow`` command line sees it: registration and ``connections test``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rivya_provider.emulator import RunningEmulator
from tests.airflow_compat import airflow_at_least
from tests.emulator_fixtures import connection_json

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture
def cli_env(tmp_path: Path, emulator: RunningEmulator) -> dict[str, str]:
    """An environment with its own AIRFLOW_HOME and three connections to ``emulator``.

    ``rivya_json`` and ``rivya_uri`` come from environment variables; ``rivya_secret`` (with a
    wrong key) from a secrets backend.
    """
    secrets = tmp_path / "connections.json"
    secrets.write_text(
        json.dumps(
            {
                "rivya_secret": {
                    "conn_type": "rivya",
                    "host": emulator.base_url,
                    "password": "rvya_sk_not_a_real_key",
                }
            }
        )
    )
    host = emulator.base_url.removeprefix("http://")
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        # Keeps INFO lines (alembic's, on Airflow 3.0) out of the JSON that stdout must be.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_RIVYA_JSON": connection_json(emulator),
        "AIRFLOW_CONN_RIVYA_URI": f"rivya://:{emulator.api_key}@{host}",
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(secrets)}),
    }


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_providers_list_shows_the_provider(cli_env: dict[str, str]) -> None:
    listed = airflow(cli_env, "providers", "list", "--output", "json")

    assert listed.returncode == 0, listed.stderr
    providers = {p["package_name"]: p for p in json.loads(listed.stdout)}
    assert providers["airflow-provider-rivya"]["version"] == "0.1.0"


@pytest.mark.parametrize("conn_id", ["rivya_json", "rivya_uri"])
def test_connections_test_succeeds_with_a_good_key(
    cli_env: dict[str, str], emulator: RunningEmulator, conn_id: str
) -> None:
    tested = airflow(cli_env, "connections", "test", conn_id)

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Connection success!" in tested.stdout
    assert emulator.counters()["requests"]["GET /api/v1/credits"] == 1
    assert emulator.api_key not in tested.stdout + tested.stderr


def test_connections_test_reports_the_rivya_error_for_a_bad_key(
    cli_env: dict[str, str],
) -> None:
    tested = airflow(cli_env, "connections", "test", "rivya_secret")

    # Before Airflow 3.3 the command exits 0 whatever the result: its output tells.
    assert (tested.returncode != 0) is airflow_at_least("3.3")
    assert "Connection failed!" in tested.stdout
    assert "api_key_invalid" in tested.stdout
    assert "requestId req_" in tested.stdout
    assert "Airflow connection 'rivya_secret': set that password" in tested.stdout
    assert "rvya_sk_not_a_real_key" not in tested.stdout + tested.stderr


@pytest.mark.skipif(
    not airflow_at_least("3.3"),
    reason="only Airflow 3.3+ imports providers' distribution names to find example DAGs",
)
def test_dags_test_logs_no_provider_module_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    # Airflow 3.3 imports each provider's distribution name as a module to find example DAGs
    # (with [core] load_examples, on by default) and logs a traceback when that fails.
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "hello.py").write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import DAG, task\n"
        "with DAG('hello', schedule=None, start_date=datetime(2026, 1, 1)):\n"
        "    task(lambda: 1, task_id='one')()\n"
    )
    env = {
        **cli_env,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    assert airflow(env, "db", "migrate").returncode == 0

    tested = subprocess.run(
        [AIRFLOW, "dags", "test", "hello"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    output = tested.stdout + tested.stderr
    assert tested.returncode == 0, output
    assert "state=success" in output, output
    assert "Could not load provider module" not in output
    assert "airflow_provider_rivya" not in output
