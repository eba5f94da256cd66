"""The ``rivya-emulator`` command line: help, bad options, and a real server process."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from rivya_provider.emulator.__main__ import main
from tests.integration.emulator_support import bearer


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
    ):
        assert option in usage


def test_bad_settings_exit_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--failure-rate", "2"]) == 2
    assert "task_failure_rate" in capsys.readouterr().err


def _lines(stream: Iterator[str]) -> queue.Queue[str]:
    """Read ``stream`` in a thread, so the test can wait for a line with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


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
