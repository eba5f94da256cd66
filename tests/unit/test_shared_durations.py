"""Expected generation times shared by the processes of one machine (shared_estimates)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rivya_provider.client import machine
from rivya_provider.client.polling import shared_estimates as durations_file
from rivya_provider.client.polling.estimates import (
    ESTIMATES,
    SHARE_EVERY_SECONDS,
    DurationEstimates,
)

pytestmark = pytest.mark.no_airflow

URL = "http://127.0.0.1:9"


def _file() -> Path:
    (found,) = machine.folder().glob("durations-*.json")  # type: ignore[union-attr]
    return found


def test_a_new_process_starts_from_what_another_one_learnt() -> None:
    # The other process: a triggerer that watched a generation finish.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from rivya_provider.client.polling.estimates import ESTIMATES\n"
            f"ESTIMATES.observe(base_url={URL!r}, model='flux-2-flex', seconds=3.5)",
        ],
        env=os.environ,
        check=True,
        timeout=60,
    )
    assert ESTIMATES.get(base_url=URL, model="flux-2-flex") == pytest.approx(3.5)
    # Only that model, and only on that server.
    assert ESTIMATES.get(base_url=URL, model="flux-kontext-pro") is None
    assert ESTIMATES.get(base_url="http://elsewhere", model="flux-2-flex") is None


def test_processes_fold_their_estimates_into_one() -> None:
    worker, triggerer = DurationEstimates(share=True), DurationEstimates(share=True)
    worker.observe(base_url=URL, model="m", seconds=10.0)
    triggerer.observe(base_url=URL, model="m", seconds=20.0)
    # The triggerer's estimate moved from the machine's 10 s towards its own 20 s.
    assert triggerer.get(base_url=URL, model="m") == pytest.approx(13.0)
    assert durations_file.read(URL) == {"m": pytest.approx(13.0)}
    # A process's own estimate wins over the machine's once it has one.
    assert worker.get(base_url=URL, model="m") == pytest.approx(10.0)


def test_a_busy_file_is_not_waited_for() -> None:
    estimates = DurationEstimates(share=True)
    with machine.locked(durations_file._path(URL).with_suffix(".lock")) as held:  # type: ignore[union-attr]
        assert held is not None
        started = time.monotonic()
        estimates.observe(base_url=URL, model="m", seconds=4.0)
        assert time.monotonic() - started < 1.0
    assert estimates.get(base_url=URL, model="m") == pytest.approx(4.0)
    assert durations_file.read(URL) == {}


def test_a_process_shares_a_model_at_most_every_few_seconds() -> None:
    estimates = DurationEstimates(share=True, weight=0.5)
    estimates.observe(base_url=URL, model="m", seconds=4.0)
    estimates.observe(base_url=URL, model="m", seconds=8.0)
    assert estimates.get(base_url=URL, model="m") == pytest.approx(6.0)
    assert durations_file.read(URL) == {"m": pytest.approx(4.0)}
    assert SHARE_EVERY_SECONDS >= 1.0


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"m": "fast", "n": [1], "o": [-2.0, 0], "p": {"0": 1}}).encode(),
        json.dumps({"m": [float("inf"), 0]}).encode(),
        b'{"m": [3.0, 1e300]}',
        b"[" * 50_000,  # nested deeper than json parses, yet under the size cap
    ],
)
def test_a_file_that_makes_no_sense_is_ignored(content: bytes) -> None:
    DurationEstimates(share=True).observe(base_url=URL, model="seed", seconds=1.0)
    _file().write_bytes(content)
    assert durations_file.read(URL) == {}
    assert DurationEstimates(share=True).get(base_url=URL, model="m") is None
    # The next observation writes a sound file again.
    DurationEstimates(share=True).observe(base_url=URL, model="m", seconds=2.0)
    assert durations_file.read(URL) == {"m": 2.0}


def test_an_old_or_oversized_file_is_ignored() -> None:
    DurationEstimates(share=True).observe(base_url=URL, model="m", seconds=2.0)
    week_ago = time.time() - durations_file.MAX_AGE_SECONDS - 60
    _file().write_text(json.dumps({"m": [2.0, week_ago], "n": [3.0, time.time()]}))
    assert durations_file.read(URL) == {"n": 3.0}
    padding = "x" * durations_file.MAX_FILE_BYTES
    _file().write_text(json.dumps({"n": [3.0, time.time()], padding: [1.0, time.time()]}))
    assert durations_file.read(URL) == {}


def test_the_file_keeps_the_most_recently_seen_models_only() -> None:
    for number in range(durations_file.MAX_MODELS + 10):
        DurationEstimates(share=True).observe(base_url=URL, model=f"m{number}", seconds=1.0)
    kept = durations_file.read(URL)
    assert len(kept) == durations_file.MAX_MODELS
    assert "m0" not in kept
    assert f"m{durations_file.MAX_MODELS + 9}" in kept


def test_an_overlong_model_id_is_kept_to_the_process() -> None:
    model = "m" * (durations_file.MAX_MODEL_ID + 1)
    estimates = DurationEstimates(share=True)
    estimates.observe(base_url=URL, model=model, seconds=2.0)
    assert estimates.get(base_url=URL, model=model) == 2.0
    assert durations_file.read(URL) == {}


def test_nothing_is_shared_when_sharing_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVYA_CACHE_DIR", "")
    DurationEstimates(share=True).observe(base_url=URL, model="m", seconds=2.0)
    assert DurationEstimates(share=True).get(base_url=URL, model="m") is None


def test_the_file_holds_no_base_url_and_is_private() -> None:
    DurationEstimates(share=True).observe(base_url=URL, model="m", seconds=2.0)
    assert URL not in _file().read_text()
    assert _file().stat().st_mode & 0o077 == 0


def test_the_first_process_deletes_shared_files_nobody_wrote_for_a_week(tmp_path: Path) -> None:
    week_ago = time.time() - machine.STALE_AFTER_SECONDS - 60
    names = [
        "durations-old.json",
        "models-old.json",
        "pace-old",
        ".durations-old.tmp",
        "models-old.lock",  # another process may hold it
        "durations-new.json",
        "notes.txt",  # not ours: a user's folder may hold anything
    ]
    for name in names:
        (tmp_path / name).write_text("x")
        if name != "durations-new.json":
            os.utime(tmp_path / name, (week_ago, week_ago))
    machine.prune(tmp_path)
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == ["durations-new.json", "models-old.lock", "notes.txt"]


def test_a_process_tidies_the_shared_folder_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tidied: list[Path] = []
    monkeypatch.setattr(machine, "prune", tidied.append)
    monkeypatch.setattr(machine, "_pruned", set())
    for _ in range(3):
        machine.shared_path("durations-x.json")
    assert tidied == [machine.folder()]


def test_a_shared_file_is_read_only_when_it_is_this_users_and_small(tmp_path: Path) -> None:
    copy = tmp_path / "durations-x.json"
    assert machine.read_own(copy, max_bytes=8) is None  # missing
    machine.write_atomically(copy, "12345678")
    assert machine.read_own(copy, max_bytes=8) == b"12345678"
    assert machine.read_own(copy, max_bytes=7) is None  # too large
    machine.write_atomically(copy, "new")
    assert copy.read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["durations-x.json"]
    if os.getuid() == 0:  # only root can hand a file to another user
        os.chown(copy, 12345, -1)
        assert machine.read_own(copy, max_bytes=8) is None
