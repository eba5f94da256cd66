"""The modules marked ``no_airflow`` import no Airflow, not even through the modules they import.

`.ci/matrix` skips them on the cells that share the primary cell's Python and client pins (where
they would run the very same code): a module that wrongly claims the mark would go untested on
every Airflow line but the primary one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"^pytestmark = .*\bpytest\.mark\.no_airflow\b", re.MULTILINE)
#: Provider modules that import Airflow, or whose callers in a test would.
AIRFLOW_IMPORT = re.compile(
    r"^\s*(?:from|import) (?:airflow\b|tests\.airflow|rivya_provider\.(?:hooks|operators|sensors|"
    r"ui|lineage|budget|assets|checks|resume|links|retry_policy|idempotency|outputs)\b)",
    re.MULTILINE,
)
MARKED = sorted(
    path.relative_to(ROOT)
    for path in (ROOT / "tests").rglob("test_*.py")
    if MARK.search(path.read_text(encoding="utf-8"))
)


def test_the_mark_is_used() -> None:
    assert len(MARKED) >= 10, MARKED


@pytest.mark.parametrize("path", MARKED, ids=str)
def test_a_marked_module_names_no_airflow_import(path: Path) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    assert not AIRFLOW_IMPORT.findall(source), f"{path} imports Airflow's side of the provider"


def test_importing_the_marked_modules_imports_no_airflow() -> None:
    # One interpreter imports them in turn and names the first after which Airflow is loaded
    # (all of them pass only if none loads it).
    modules = [".".join(path.with_suffix("").parts) for path in MARKED]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'airflow' in sys.modules:\n"
        "        print(name)\n"
        "        break\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert loaded.stdout.strip() == "", f"importing {loaded.stdout.strip()} imports airflow"
