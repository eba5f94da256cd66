"""The docs' sample of testing one's own DAGs against the emulator runs as its docstring says.

It runs in a fresh pytest process, as a user would run it: its own scratch Airflow home and
metadata database, the example DAG folder, and none of this suite's fixtures or conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "examples" / "test_dags_with_emulator.py"


def test_the_dag_testing_sample_passes(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "RIVYA_", "PYTEST_"))
    }
    # Made beforehand, as `mktemp -d` in the docstring does: Airflow 3.0 does not create it.
    home = tmp_path / "airflow-home"
    home.mkdir()
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags_examples")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SAMPLE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1:] or ["no output"]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "3 passed" in summary[0], summary
