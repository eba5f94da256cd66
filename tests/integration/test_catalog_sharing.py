"""What the processes of one machine share: the model catalogue, read by one of them, and the
pace of requests.

Each Airflow task runs in a process of its own: without sharing, a wide mapped run reads
``/models`` once per task, and a pace of N requests per second would hold per task.
"""

from __future__ import annotations

import json
import logging
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rivya_provider.client import RetryPolicy, RivyaClient, machine
from rivya_provider.client.catalog import CATALOG
from rivya_provider.client.catalog.live import CACHE, clear_catalog_cache
from rivya_provider.client.flow.pacing import MachinePacer
from rivya_provider.emulator import RunningEmulator
from tests.emulator_fixtures import EmulatorFactory

pytestmark = pytest.mark.no_airflow

MODELS = "GET /api/v1/models"
NEW_MODEL = {"id": "acme-sketch", "display_name": "Acme Sketch", "base_credits": 2}


def _models_read(emulator: RunningEmulator) -> int:
    return int(emulator.counters()["requests"].get(MODELS, 0))


def _catalogue(emulator: RunningEmulator, retry: RetryPolicy | None = None) -> dict[str, object]:
    client = RivyaClient(
        api_key=emulator.api_key, base_url=emulator.base_url, retry=retry or RetryPolicy()
    )
    with client:
        return dict(client.model_catalog())


def _as_another_process() -> None:
    """Forget what this process read (its memory), keeping what it shared (the file)."""
    CACHE.clear()


def test_a_second_process_uses_the_first_ones_copy(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RIVYA_CACHE_DIR", str(tmp_path / "new" / "cache"))
    emulator.add_model(NEW_MODEL)
    first = _catalogue(emulator)
    _as_another_process()
    second = _catalogue(emulator)
    assert _models_read(emulator) == 1
    assert "acme-sketch" in first
    assert second.keys() == first.keys()
    assert second["acme-sketch"] == first["acme-sketch"]
    shared = tmp_path / "new" / "cache"
    assert shared.stat().st_mode & 0o777 == 0o700  # made by the first process, for its user only
    for path in shared.iterdir():
        assert emulator.api_key not in path.read_text(errors="replace"), path.name


def test_a_failed_read_is_shared_as_the_built_in_catalogue(
    emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    # /models is retried on a 429 within its short budget; a read that still fails stands in the
    # built-in catalogue, for this process and the machine's others until the copy expires.
    emulator.set_faults(api_disabled=True)
    assert _catalogue(emulator, RetryPolicy(time_budget=0.5)).keys() == CATALOG.keys()
    emulator.set_faults(api_disabled=False)
    _as_another_process()
    with caplog.at_level(logging.WARNING):
        assert _catalogue(emulator).keys() == CATALOG.keys()
    assert _models_read(emulator) == 1  # once: the 503's Retry-After outlasts the budget
    assert "public_api_disabled" in caplog.text
    assert "in another process" in caplog.text


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda saved: {**saved, "expires_at": time.time() - 1}, id="expired"),
        pytest.param(lambda saved: {**saved, "base_url": "http://elsewhere"}, id="other-server"),
        pytest.param(lambda saved: {**saved, "body": '{"data": 7}'}, id="not-a-catalogue"),
        pytest.param(lambda saved: "}{", id="not-json"),
        pytest.param("[" * 50_000, id="nested-too-deep"),
    ],
)
def test_a_copy_that_is_stale_foreign_or_broken_is_read_again(
    emulator: RunningEmulator, tamper: object
) -> None:
    _catalogue(emulator)
    (copy,) = machine.folder().glob("models-*.json")  # type: ignore[union-attr]
    saved = json.loads(copy.read_text())
    copy.write_text(json.dumps(tamper(saved)) if callable(tamper) else str(tamper))
    _as_another_process()
    assert "flux-2-flex" in _catalogue(emulator)
    assert _models_read(emulator) == 2


def test_an_empty_cache_dir_turns_sharing_off(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVYA_CACHE_DIR", "")
    _catalogue(emulator)
    _as_another_process()
    _catalogue(emulator)
    assert _models_read(emulator) == 2


def test_clearing_the_cache_forgets_the_shared_copy(emulator: RunningEmulator) -> None:
    _catalogue(emulator)
    clear_catalog_cache()
    assert not list(machine.folder().glob("models-*.json"))  # type: ignore[union-attr]
    _catalogue(emulator)
    assert _models_read(emulator) == 2


_TOGETHER = """
import sys, time
from rivya_provider.client import RivyaClient
key, url, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))
"""


def _run_together(emulator: RunningEmulator, body: str, count: int = 4) -> tuple[float, list[str]]:
    """Run ``body`` in ``count`` new interpreters that all start at one moment, as the tasks of a
    mapped run do; return that moment and what each printed."""
    start_at = time.time() + 3.0  # after every interpreter has imported the client
    command = [sys.executable, "-c", _TOGETHER + body, emulator.api_key, emulator.base_url]
    children = [
        subprocess.Popen(
            [*command, str(start_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    assert all(child.returncode == 0 for child in children), outputs
    return start_at, [out for out, _ in outputs]


def test_processes_starting_together_read_the_catalogue_once(
    emulator_factory: EmulatorFactory,
) -> None:
    # A slow server keeps the first reader busy while the others ask for their turn.
    emulator = emulator_factory()
    emulator.set_faults(latency_seconds=0.5)
    _, printed = _run_together(
        emulator,
        "with RivyaClient(api_key=key, base_url=url) as client:\n"
        "    print(len(client.model_catalog()))\n",
    )
    assert {out.strip() for out in printed} == {str(len(_catalogue(emulator)))}
    assert _models_read(emulator) == 1


def test_a_pace_holds_for_the_whole_machine_not_each_task(emulator: RunningEmulator) -> None:
    start_at, _ = _run_together(
        emulator,
        "with RivyaClient(api_key=key, base_url=url, requests_per_second=5) as client:\n"
        "    for _ in range(3):\n"
        "        client.get_credits()\n",
    )
    finished_at = time.time()
    assert emulator.counters()["requests"]["GET /api/v1/credits"] == 12
    # 12 requests at 5 per second machine-wide: the last leaves 11 slots (2.2 s) after the first.
    # Paced per process, all four would be done after 0.4 s.
    assert finished_at - start_at >= 2.2


def test_pacers_of_two_processes_hand_out_one_sequence_of_slots(tmp_path: Path) -> None:
    path = tmp_path / "pace"
    one, other = MachinePacer(10, path), MachinePacer(10, path)  # as two processes would
    pauses = [pacer.reserve() for pacer in (one, other, one, other)]
    assert pauses[0] == 0.0
    for turn, pause in enumerate(pauses[1:], start=1):
        assert 0.1 * turn - 0.05 <= pause <= 0.1 * turn


def test_a_slot_far_ahead_is_a_clock_that_jumped(tmp_path: Path) -> None:
    path = tmp_path / "pace"
    path.write_bytes(struct.pack("d", time.time() + 10 * MachinePacer.MAX_AHEAD_SECONDS))
    assert MachinePacer(10, path).reserve() == 0.0
