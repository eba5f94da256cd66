"""Servers the scale benchmark measures, each in its own process (so its CPU is its own).

``python -m tests.benchmarks._servers emulator|minimal API_KEY`` serves on a free port of
127.0.0.1 and prints that port. ``emulator`` is the Rivya emulator with generations that stay
``processing``; ``minimal`` is the least FastAPI app with the same API routes (the floor an
emulator request is compared with). Both run under the same uvicorn settings.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
import uvicorn
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse

from rivya_provider.emulator.server import bind_socket

#: A generation of the emulator stays ``processing`` this long: for ever, in a benchmark.
FOREVER = 10.0**6


def minimal_app(api_key: str) -> FastAPI:
    """Build the least app with the emulator's generation, credits and models routes."""
    app = FastAPI()
    tasks: dict[str, dict[str, Any]] = {}
    ids = itertools.count(1)

    def check(authorization: str | None) -> None:
        if authorization != f"Bearer {api_key}":
            raise HTTPException(status_code=401)

    @app.post("/api/v1/generations", status_code=201)
    async def create(body: dict[str, Any], authorization: str | None = Header(None)) -> Any:
        check(authorization)
        now = datetime.now(timezone.utc).isoformat()
        task_id = f"task_{next(ids):08d}"
        tasks[task_id] = {
            "id": task_id,
            "status": "processing",
            "model": body.get("model"),
            "reserved_credits": 14,
            "final_credits": None,
            "created_at": now,
            "updated_at": now,
            "result": None,
            "error": None,
        }
        return tasks[task_id]

    @app.get("/api/v1/generations/{task_id}")
    async def read(task_id: str, authorization: str | None = Header(None)) -> Any:
        check(authorization)
        task = tasks.get(task_id)
        if task is None:
            return JSONResponse(
                {"error": {"code": "not_found", "message": "no such task"}}, status_code=404
            )
        return task

    @app.get("/api/v1/credits")
    async def credits(authorization: str | None = Header(None)) -> Any:
        check(authorization)
        return {"balance": 10**9}

    @app.get("/api/v1/models")
    async def models(authorization: str | None = Header(None)) -> Any:
        check(authorization)
        return {"object": "list", "data": [{"id": "flux-2-flex"}]}

    return app


def _app(kind: str, api_key: str) -> FastAPI:
    if kind == "minimal":
        return minimal_app(api_key)
    from rivya_provider.emulator.app import create_app
    from rivya_provider.emulator.config import EmulatorConfig

    return create_app(
        EmulatorConfig(
            api_key=api_key, credits=10**9, queued_seconds=0.0, processing_seconds=FOREVER
        )
    )


def main() -> None:
    kind, api_key = sys.argv[1], sys.argv[2]
    sock = bind_socket(host="127.0.0.1", port=0)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        _app(kind, api_key), log_level="warning", access_log=False, lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[sock])


@dataclass
class Served:
    """A server process: its base URL, key and process (for its CPU time)."""

    base_url: str
    api_key: str
    process: psutil.Process

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)


@contextmanager
def serve(kind: str, api_key: str) -> Iterator[Served]:
    """Start a server process of ``kind``; stop it when the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks._servers", kind, api_key],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        base_url = f"http://127.0.0.1:{port}"
        time.sleep(0.5)
        yield Served(base_url=base_url, api_key=api_key, process=psutil.Process(child.pid))
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
