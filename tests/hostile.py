"""A raw-socket HTTP server on 127.0.0.1 that answers whatever a test scripts, however badly.

It runs its own asyncio loop in a thread, so blocking and async clients can both talk to it.
Each connection reads one request (line, headers, body) and hands it to the current script,
which writes raw bytes: broken framing, bombs, drips and redirects are all fair game.
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Script = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


def response(
    status: int = 200,
    body: bytes | str | dict[str, Any] = b"",
    *,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Raw bytes of a well-framed HTTP/1.1 answer."""
    if isinstance(body, dict):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {status} Hostile", f"Content-Length: {len(data)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if isinstance(body, str) or not headers or "Content-Type" not in headers:
        lines.append("Content-Type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def answer(status: int = 200, body: Any = b"", **headers: str) -> Script:
    """A script that sends one fixed answer to every request."""
    raw = response(status, body, headers={k.replace("_", "-"): v for k, v in headers.items()})

    async def script(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return script


def raw(data: bytes) -> Script:
    """A script that sends ``data`` as it is, framed or not."""

    async def script(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(data)

    return script


def gzip_bomb(expanded_bytes: int) -> bytes:
    """A gzip body that expands to ``expanded_bytes`` bytes (about 1/1000 of it on the wire)."""
    chunk = b"0" * (1024 * 1024)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(chunk) for _ in range(expanded_bytes // len(chunk))]
    return b"".join([*parts, comp.flush()])


def drip(head: bytes, *, every: float, limit: float) -> Script:
    """A script that sends ``head`` one byte every ``every`` seconds, for at most ``limit`` s."""

    async def script(seen: Seen, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + limit
        for byte in head:
            if loop.time() > ends:
                return
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)

    return script


@dataclass
class HostileServer:
    """The server; ``script`` decides each answer, ``seen`` lists every request received."""

    script: Script = field(default_factory=lambda: answer(200, {}))
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *rest = head.decode("latin-1").split("\r\n")
            headers = {}
            for item in rest:
                if ":" in item:
                    key, value = item.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            body = b""
            if headers.get("content-length", "").isdigit():
                body = await reader.readexactly(int(headers["content-length"]))
            method, path, _ = line.split(" ", 2)
            seen = Seen(method, path, headers, body)
            self.seen.append(seen)
            await self.script(seen, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    @contextmanager
    def running(self) -> Iterator[HostileServer]:
        """Serve on a free port of 127.0.0.1 until the block ends."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        holder: dict[str, Any] = {}

        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            holder["stop"] = asyncio.Event()
            started.set()
            await holder["stop"].wait()
            server.close()
            # Handlers first: from Python 3.12 wait_closed() also waits for every connection a
            # handler still holds (a client's kept-alive one waits for its next request).
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()
            await server.wait_closed()

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        started.wait(10)
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(holder["stop"].set)
            thread.join(10)
            loop.close()
