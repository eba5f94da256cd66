"""The API's endpoints, one table both clients share: method, path and the model of the answer.

A client method is a row of this table and a :class:`Call` made from it; how a call is sent,
retried and read is the same for every row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from rivya_provider.client import safety
from rivya_provider.client.catalog.wire import ModelList
from rivya_provider.client.config import API_PREFIX
from rivya_provider.client.models import Credits, RivyaFile
from rivya_provider.client.tasks import GenerationTask

AnswerT = TypeVar("AnswerT", bound=BaseModel)


@dataclass(frozen=True)
class Call:
    """One request, described independently of the client that sends it."""

    method: str
    #: A path under ``/api/v1``, or an absolute URL (a download).
    path: str
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] | None = None
    #: Builds the multipart ``files`` afresh for each attempt (a stream must be rewound).
    files: Callable[[], Mapping[str, Any]] | None = None
    authenticated: bool = True
    #: Attempts for this call; ``None`` follows the :class:`~rivya_provider.client.RetryPolicy`.
    max_attempts: int | None = None
    #: Seconds of retrying for this call at most; ``None`` follows the policy's ``time_budget``.
    time_budget: float | None = None

    @property
    def label(self) -> str:
        """How logs and errors name this call (never with headers, so never with the key)."""
        target = self.path if "://" in self.path else f"{API_PREFIX}{self.path}"
        return f"{self.method} {target}"

    @property
    def sends_body(self) -> bool:
        return self.json is not None or self.data is not None or self.files is not None


class Endpoint(Generic[AnswerT]):
    """One endpoint of the API and the model its answer is read into.

    :param method: the HTTP method.
    :param path: the path under ``/api/v1``; ``{id}`` is replaced by a checked, encoded id.
    :param answer: the model a 2xx answer is read into.
    :param id_field: how errors name the id of the path (``task_id``, ``file_id``).
    """

    __slots__ = ("answer", "id_field", "method", "path")

    def __init__(
        self, method: str, path: str, answer: type[AnswerT], id_field: str | None = None
    ) -> None:
        self.method, self.path, self.answer, self.id_field = method, path, answer, id_field

    def call(self, *, path_id: str | None = None, **options: Any) -> Call:
        """Return the call of this endpoint; ``path_id`` is checked before anything is sent."""
        path = self.path
        if self.id_field is not None:
            path = path.replace("{id}", safety.path_id(path_id, field_name=self.id_field))
        return Call(self.method, path, **options)


MODELS = Endpoint("GET", "/models", ModelList)
CREDITS = Endpoint("GET", "/credits", Credits)
UPLOAD = Endpoint("POST", "/files", RivyaFile)
FILE = Endpoint("GET", "/files/{id}", RivyaFile, id_field="file_id")
CREATE = Endpoint("POST", "/generations", GenerationTask)
GENERATION = Endpoint("GET", "/generations/{id}", GenerationTask, id_field="task_id")


@functools.lru_cache(maxsize=8192)
def _status_call(task_id: str) -> Call:
    return GENERATION.call(path_id=task_id)


def status_call(task_id: str) -> Call:
    """The call that reads one task's status, made once per id: a triggerer polls the same ids
    every few seconds, and checking and encoding an id is a tenth of what our side of a poll costs.
    """
    if not isinstance(task_id, str):
        return GENERATION.call(path_id=task_id)  # refused, naming the field
    return _status_call(task_id)
