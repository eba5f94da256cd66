"""The ``rivya-emulator`` command line: help, bad options, and a real server process."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rivya_provider.emulator import Profile
from rivya_provider.emulator.__main__ import main
from tests.integration.emulator_support import bearer

DEFAULT_PROFILE = Profile().model_dump()


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    usage = capsys.readouterr().out
    for option in (
        "--host",
        "--port",
        "--api-key",
        "--credits",
        "--queued-seconds",
        "--processing-seconds",
        "--failure-rate",
        "--latency",
        "--seed",
        "--log-level",
        "--model-file",
        "--profile",
        "--create-status",
        "--create-shape",
        "--replay-header",
        "--no-replay-header",
        "--repeat",
        "--in-flight-retry-after",
        "--insufficient-credits-status",
        "--unknown-status",
        "--file-fields",
        "--param-options",
        "--upload-status",
    ):
        assert option in usage
    assert "docs-minimal" in usage


def test_bad_settings_exit_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--failure-rate", "2"]) == 2
    assert "task_failure_rate" in capsys.readouterr().err
    assert main(["--port", "0", "--insufficient-credits-status", "500"]) == 2
    assert "insufficient_credits_status" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--profile", "no-such-profile"])
    assert exited.value.code == 2
    assert "no-such-profile" in capsys.readouterr().err


def test_a_bad_model_file_exits_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    assert main(["--port", "0", "--model-file", str(missing)]) == 2
    assert "missing.json" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    assert main(["--port", "0", "--model-file", str(broken)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps([{"id": "x"}]))
    assert main(["--port", "0", "--model-file", str(invalid)]) == 2
    assert "base_credits" in capsys.readouterr().err


def _lines(stream: Iterator[str]) -> queue.Queue[str]:
    """Read ``stream`` in a thread, so the test can wait for a line with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@contextmanager
def _serving(*args: str) -> Iterator[tuple[str, str]]:
    """Run the CLI on a free port; yield its base URL and key; stop it with Ctrl-C."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rivya_provider.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = _lines(iter(process.stdout.readline, ""))
        banner = ""
        while "Ctrl-C" not in banner:
            banner += lines.get(timeout=30)
        base_url = re.search(r"base URL : (\S+)", banner)
        api_key = re.search(r"API key  : (rvya_sk_\S+)", banner)
        assert base_url is not None
        assert api_key is not None
        yield base_url[1], api_key[1]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_profile_flags_and_a_model_file_reach_the_server(tmp_path: Path) -> None:
    models = tmp_path / "models.json"
    models.write_text(json.dumps([{"id": "cli-model", "base_credits": 2}]))
    flags = ["--profile", "docs-minimal", "--create-status", "201", "--replay-header"]
    flags += ["--unknown-status", "busy", "--model-file", str(models)]
    with _serving(*flags) as (base_url, api_key):
        state = httpx.get(f"{base_url}/_emulator/state", timeout=10).json()
        catalogue = httpx.get(f"{base_url}/api/v1/models", timeout=10).json()["data"]
        created = httpx.post(
            f"{base_url}/api/v1/generations",
            json={"model": "cli-model", "prompt": "x"},
            headers={**bearer(api_key), "Idempotency-Key": "k"},
            timeout=10,
        )
    assert state["profile"] == {
        "create_status": 201,
        "create_shape": "short",
        "replay_header": True,
        "repeat": "conflict",
        "in_flight_retry_after": False,
        "insufficient_credits_status": 403,
        "unknown_status": "busy",
        "file_fields": "minimal",
        "param_options": "objects",
        "upload_status": 200,
    }
    assert "cli-model" in state["models"]
    assert [m["id"] for m in catalogue][-1] == "cli-model"
    assert created.status_code == 201
    assert set(created.json()) == {"id", "status", "model", "reserved_credits", "result", "error"}
    assert created.json()["reserved_credits"] == 2


def test_every_profile_flag_reaches_the_server() -> None:
    flags = ["--create-status", "200", "--create-shape", "short", "--no-replay-header"]
    flags += ["--repeat", "conflict", "--in-flight-retry-after", "--unknown-status", "busy"]
    flags += ["--insufficient-credits-status", "403", "--file-fields", "camel"]
    flags += ["--param-options", "objects", "--upload-status", "201"]
    with _serving(*flags) as (base_url, api_key):
        profile = httpx.get(f"{base_url}/_emulator/state", timeout=10).json()["profile"]
        created = httpx.post(
            f"{base_url}/api/v1/generations",
            json={"model": "flux-kontext-pro", "prompt": "x"},
            headers=bearer(api_key),
            timeout=10,
        )
    expected = {
        "create_status": 200,
        "create_shape": "short",
        "replay_header": False,
        "repeat": "conflict",
        "in_flight_retry_after": True,
        "insufficient_credits_status": 403,
        "unknown_status": "busy",
        "file_fields": "camel",
        "param_options": "objects",
        "upload_status": 201,
    }
    assert profile == expected
    # Every flag moved its field away from the default.
    assert all(DEFAULT_PROFILE[k] != v for k, v in expected.items())
    assert created.status_code == 200
    assert "created_at" not in created.json()


def test_the_cli_serves_until_ctrl_c() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rivya_provider.emulator", "--port", "0", "--credits", "42"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = _lines(iter(process.stdout.readline, ""))
        banner = ""
        while "Ctrl-C" not in banner:
            banner += lines.get(timeout=30)
        base_url = re.search(r"base URL : (\S+)", banner)
        api_key = re.search(r"API key  : (rvya_sk_\S+)", banner)
        assert base_url is not None
        assert api_key is not None
        assert f"{base_url[1]}/_emulator" in banner
        assert base_url[1].startswith("http://127.0.0.1:")
        models = httpx.get(f"{base_url[1]}/api/v1/models", timeout=10)
        assert models.status_code == 200
        credits = httpx.get(f"{base_url[1]}/api/v1/credits", headers=bearer(api_key[1]))
        assert credits.json() == {"current_credits": 42}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        rest = ""
        while not lines.empty() or "stopped" not in rest:
            rest += lines.get(timeout=5)
        assert "Rivya emulator stopped." in rest
        assert "Traceback" not in banner + rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
