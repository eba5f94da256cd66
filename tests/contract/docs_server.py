"""A small Rivya Public API v1 written from the public docs only, to check the client against.

Independent of the project's emulator on purpose: the two are separate readings of the same docs,
so a rule the client shares with the emulator by mistake shows up here. Flags of
:class:`~tests.contract.docs_state.DocsVariant` pick an answer to each point the docs leave open;
counted faults (``fail_next_tasks``, ``cancel_next_tasks``, ``drop_next_creates``,
``rate_limited_next``, ``disabled_next``, ``server_errors_next``, ``models_unavailable``) are
armed with :meth:`RunningDocsServer.set_faults`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import filetype
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from tests.contract.docs_catalogue import model_entry
from tests.contract.docs_state import (
    ALL_SCOPES,
    RESULT_PNG,
    DocsError,
    DocsState,
    DocsVariant,
    Task,
    check_generation,
    check_key,
    invalid,
    limits_for,
    number,
    stamp,
    task_json,
)


class DocsApp:
    """The ASGI application: routes plus the dropped-answer fault."""

    def __init__(self, state: DocsState) -> None:
        self.state = state
        self.router = Starlette(
            routes=[
                Route("/api/v1/models", self.models),
                Route("/api/v1/credits", self.credits),
                Route("/api/v1/generations", self.create, methods=["POST"]),
                Route("/api/v1/generations/{task_id}", self.get_task),
                Route("/api/v1/files", self.upload, methods=["POST"]),
                Route("/api/v1/files/{file_id}", self.get_file),
                Route("/results/{task_id}/{n}.png", self.result),
            ],
            exception_handlers={DocsError: self.error},  # type: ignore[dict-item]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        dropping = scope["type"] == "http" and scope["path"] == "/api/v1/generations"

        async def guarded(message: Message) -> None:
            # A dropped create sends its headers, never its body: the client sees a broken answer.
            if message["type"] == "http.response.body" and scope.get("drop"):
                return
            await send(message)

        await self.router(scope, receive, guarded if dropping else send)

    async def error(self, request: Request, exc: DocsError) -> Response:
        error = {
            "code": exc.code,
            "message": exc.message,
            "requestId": "req_" + secrets.token_hex(8),
        }
        body = {"error": {k: v for k, v in error.items() if v}}
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

    async def models(self, request: Request) -> Response:
        if self.state.take_fault("models_unavailable"):
            raise DocsError(503, "public_api_disabled", "the catalogue is off", retry_after=1)
        objects = self.state.variant.option_objects
        data = [model_entry(m, option_objects=objects) for m in self.state.models.values()]
        return JSONResponse({"object": "list", "data": data})

    async def credits(self, request: Request) -> Response:
        check_key(self.state, request.headers.get("authorization", ""), "credits:read")
        return JSONResponse({"current_credits": number(self.state.wallet)})

    async def create(self, request: Request) -> Response:
        state = self.state
        check_key(state, request.headers.get("authorization", ""), "generations:create")
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise invalid("the body must be JSON") from None
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        key = request.headers.get("idempotency-key")
        with state.lock:
            earlier = state.idempotency.get(key) if key else None
            if earlier is not None:
                if earlier[0] != digest or state.variant.repeat_conflict:
                    raise DocsError(409, "idempotency_conflict", "that key was used before")
                state.replays += 1
                return self.task_response(request, state.tasks[earlier[1]])
            model, cost = check_generation(state, body)
            if state.wallet < cost:
                status = state.variant.insufficient_status
                raise DocsError(status, "insufficient_credits", f"this needs {cost} credits")
            fate = "succeeded"
            for name, end in (("fail_next_tasks", "failed"), ("cancel_next_tasks", "canceled")):
                if state.faults.get(name, 0) > 0:
                    state.faults[name] -= 1
                    fate = end
            task_id = "task_" + secrets.token_hex(10)
            task = Task(task_id, model["id"], cost, time.monotonic(), fate, body)
            state.tasks[task.id] = task
            # Reserved now and kept on success; a failed or canceled task costs nothing.
            state.wallet -= cost if fate == "succeeded" else 0
            if key:
                state.idempotency[key] = (digest, task.id)
            request.scope["drop"] = state.faults.get("drop_next_creates", 0) > 0
            if request.scope["drop"]:
                state.faults["drop_next_creates"] -= 1
        return self.task_response(request, task)

    def task_response(self, request: Request, task: Task) -> Response:
        base = str(request.base_url).rstrip("/")
        short = self.state.variant.short_create
        body = task_json(self.state, task, base, short=short)
        return JSONResponse(body, status_code=self.state.variant.create_status)

    async def get_task(self, request: Request) -> Response:
        check_key(self.state, request.headers.get("authorization", ""), "generations:read")
        task = self.state.tasks.get(request.path_params["task_id"])
        if task is None:
            raise DocsError(404, "not_found", "no such task")
        return JSONResponse(task_json(self.state, task, str(request.base_url).rstrip("/")))

    async def upload(self, request: Request) -> Response:
        state = self.state
        check_key(state, request.headers.get("authorization", ""), "files:create")
        form = await request.form()
        upload, kind = form.get("file"), form.get("kind")
        if not isinstance(upload, UploadFile) or kind not in ("image", "video", "audio"):
            raise invalid("send a file and its kind (image, video or audio)")
        data = await upload.read()
        client_request_id = form.get("client_request_id")
        if isinstance(client_request_id, str) and len(client_request_id) > 128:
            raise invalid("client_request_id is longer than 128 characters")
        max_bytes, mime_types = limits_for(state, str(kind), form.get("model"))
        guess = filetype.guess(data[:8192])
        mime = guess.mime if guess else None
        if mime not in mime_types:
            raise invalid(f"file: {mime or 'unknown type'} is not one of {list(mime_types)}")
        if len(data) > max_bytes:
            raise invalid(f"file: larger than {max_bytes} bytes")
        file_id = "file_" + secrets.token_hex(10)
        url = f"{str(request.base_url).rstrip('/')}/results/{file_id}/0.png"
        record: dict[str, Any] = {state.variant.file_id_field: file_id, "url": url, "kind": kind}
        if state.variant.file_id_field == "id":
            record |= {"object": "file", "mime_type": mime, "size_bytes": len(data)}
        if state.variant.timestamps and state.variant.file_id_field == "id":
            record["created_at"] = stamp(time.monotonic())
        state.files[file_id] = record
        return JSONResponse(record, status_code=state.variant.upload_status)

    async def get_file(self, request: Request) -> Response:
        check_key(self.state, request.headers.get("authorization", ""), "files:read")
        record = self.state.files.get(request.path_params["file_id"])
        if record is None:
            raise DocsError(404, "not_found", "no such file")
        return JSONResponse(record)

    async def result(self, request: Request) -> Response:
        return Response(RESULT_PNG, media_type="image/png")


@dataclass
class RunningDocsServer:
    """A started docs server: where it listens, its key, its state and its fault switches."""

    base_url: str
    state: DocsState

    @property
    def api_key(self) -> str:
        return self.state.api_key

    def add_key(self, *, status: str = "active", scopes: tuple[str, ...] = ALL_SCOPES) -> str:
        key = "rvya_sk_" + secrets.token_urlsafe(18)
        self.state.keys[key] = (status, scopes)
        return key

    def add_model(self, definition: dict[str, Any]) -> None:
        self.state.models[definition["id"]] = definition

    def set_faults(self, **counts: int) -> None:
        self.state.faults.update(counts)


class _QuickServer(uvicorn.Server):
    """Notices ``should_exit`` every 10 ms (uvicorn checks every 100 ms): quick test teardown."""

    async def main_loop(self) -> None:
        ticks = 0
        while not await self.on_tick(ticks):
            ticks = (ticks + 1) % 100_000
            await asyncio.sleep(0.01)


@contextmanager
def run_docs_server(
    variant: DocsVariant, *, queued_seconds: float = 0.05, processing_seconds: float = 0.1
) -> Iterator[RunningDocsServer]:
    """Serve ``variant`` on 127.0.0.1 (a free port) until the block ends."""
    state = DocsState(variant, queued_seconds, processing_seconds)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(DocsApp(state), log_level="critical", lifespan="off", log_config=None)
    server = _QuickServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the docs server did not start")
            time.sleep(0.005)
        host, port = sock.getsockname()
        yield RunningDocsServer(base_url=f"http://{host}:{port}", state=state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
