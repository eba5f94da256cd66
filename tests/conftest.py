"""Process-wide test setup: a private AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rivya_provider.client.catalog.live import clear_catalog_cache
from rivya_provider.client.flow import forget_shared_state
from rivya_provider.client.polling.estimates import ESTIMATES
from rivya_provider.client.rules.replays import SENT_KEYS

pytest_plugins = ["tests.emulator_fixtures"]

_HOME = tempfile.mkdtemp(prefix="rivya-airflow-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

#: DAG files used by the Airflow integration tests.
TEST_DAGS = Path(__file__).parent / "airflow" / "dags"

os.environ.update(
    {
        "AIRFLOW_HOME": _HOME,
        "AIRFLOW__CORE__DAGS_FOLDER": str(TEST_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        # Catalogue copies shared between processes stay in this run (catalog_file).
        "RIVYA_CACHE_DIR": os.path.join(_HOME, "rivya-cache"),
        # dag.test() runs tasks in this process, so no worker heartbeat races a fast trigger:
        # deferred waits may poll at once (see rivya_provider.client.polling.schedule.guard_window).
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "0",
    }
)
# A connection left in the environment by the caller must not leak into tests.
os.environ.pop("AIRFLOW_CONN_RIVYA_DEFAULT", None)


@pytest.fixture(autouse=True)
def _fresh_model_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test reads Rivya's catalogue afresh, starts with no Idempotency-Key sent, no
    slowing down after 429s and no generation time learnt: servers of earlier tests may reuse a
    port, and tests reuse keys."""
    # Processes a test starts share catalogue copies with it, and with nobody else.
    os.environ["RIVYA_CACHE_DIR"] = str(tmp_path_factory.mktemp("rivya-cache"))
    clear_catalog_cache()
    SENT_KEYS.clear()
    forget_shared_state()
    ESTIMATES.clear()
    yield
    clear_catalog_cache()
    SENT_KEYS.clear()
    forget_shared_state()
    ESTIMATES.clear()
