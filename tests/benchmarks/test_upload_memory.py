"""Upload memory must not grow with file size: prints peak Python allocations per file size.

Run with ``make bench``. The emulator runs in a separate process so only the client is measured.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rivya_provider.client import RivyaClient
from rivya_provider.client.catalog.specs import MB
from tests.media import image_bytes, sparse_file

pytestmark = pytest.mark.benchmark
API_KEY = "rvya_sk_benchmark_key_0123456789"


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "rivya_provider.emulator",
        "--port",
        str(port),
        "--api-key",
        API_KEY,
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/api/v1/models", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_upload_peak_memory_is_flat_in_file_size(emulator_url: str, tmp_path: Path) -> None:
    peaks = {}
    with RivyaClient(api_key=API_KEY, base_url=emulator_url) as client:
        client.upload_file(image_bytes("png"), name="warm-up.png")
        for megabytes in (1, 4, 9):
            path = sparse_file(tmp_path / f"{megabytes}.png", megabytes * MB, image_bytes("png"))
            tracemalloc.start()
            started = time.perf_counter()
            uploaded = client.upload_file(path)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert uploaded.size_bytes == megabytes * MB
            peaks[megabytes] = peak
            print(
                f"upload {megabytes:>2} MiB: peak {peak / 1024:8.1f} KiB, {seconds * 1000:6.1f} ms"
            )
    growth = peaks[9] - peaks[1]
    print(f"peak growth from 1 to 9 MiB: {growth / 1024:.1f} KiB")
    assert growth < 1 * MB, "upload memory grows with file size"
