"""Public download routes, standing in for Rivya's presigned CDN URLs (no key needed).

Downloads are not API calls: the API's rate limit and faults do not apply, only the download
faults (``download_*``), and they are counted apart (``downloads``, ``download_responses``).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from rivya_provider.emulator.backend import Backend
from rivya_provider.emulator.errors import not_found
from rivya_provider.emulator.pipeline import download_checks

_RESULT_NAME = re.compile(r"(?P<index>\d+)\.(?P<extension>[a-z]+)")


def cdn_router(backend: Backend) -> APIRouter:
    """Build the ``/cdn`` routes of ``backend``."""
    router = APIRouter(dependencies=[Depends(download_checks)])

    @router.get("/cdn/files/{file_id}/{name}")
    async def download_file(file_id: str, name: str) -> Response:
        stored = backend.state.get_file(file_id=file_id)
        if stored is None or stored.safe_name != name:
            raise not_found(f"no file at /cdn/files/{file_id}/{name}")
        return Response(stored.data, media_type=stored.mime_type)

    @router.get("/cdn/results/{task_id}/{filename}")
    async def download_result(task_id: str, filename: str) -> Response:
        task = backend.state.succeeded_task(task_id)
        match = _RESULT_NAME.fullmatch(filename)
        missing = not_found(f"no result at /cdn/results/{task_id}/{filename}")
        if task is None or match is None or int(match["index"]) != 0:
            raise missing
        spec = task.image
        if match["extension"] != spec.extension:
            raise missing
        # Drawing a 2K picture takes a moment: keep it off the event loop.
        data = await run_in_threadpool(
            backend.images.get_or_render,
            key=f"{task.id}/0",
            seed=f"{task.id}\n{task.prompt}",
            spec=spec,
        )
        return Response(data, media_type=spec.mime_type)

    return router
