"""Whether a create's answer replays a task that already existed for its Idempotency-Key.

Only what is known counts: this process was answered with the same task for the same key before,
or Rivya says so (``Idempotent-Replayed: true``) to a create whose first attempt was answered.
Timestamps never decide it: a server whose clock disagrees with itself would make a new, paid
generation look found again. A create sent again after a lost answer, a 5xx or a 429 made at
most one task, and it is this call's own, whatever the header says: its first attempt may have
made it (a 429 made nothing, so the resend's task is new anyway). No I/O.

What Rivya's timestamps say is kept apart (``task.created_before_sent``): a caller may weigh it
where a wrong guess costs nothing, as the key chain does for a failed generation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import httpx

from rivya_provider.client.errors import RequestNotSentError, RivyaTransportError, ServerError
from rivya_provider.client.rules.answers import http_date, parse
from rivya_provider.client.tasks import CreatedTask, CreateFacts, GenerationTask

#: Seconds a task's ``created_at`` must predate the create for it to count as made before, when
#: Rivya's clock is known from the answer's ``Date`` header (whole seconds), and when it is not.
MARGIN_WITH_DATE = 2.0
MARGIN_WITHOUT_DATE = 60.0


def may_have_made(error: Exception) -> bool:
    """Tell whether a failed create attempt may still have made a task (no answer, or a 5xx)."""
    if isinstance(error, RequestNotSentError):
        return False
    return isinstance(error, RivyaTransportError | ServerError)


class SentKeys:
    """The Idempotency-Keys this process was answered for: the task, and when it was first sent."""

    def __init__(self, *, size: int = 4096) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def answered(self, scope: str, key: str, task_id: str, sent_at: float) -> float | None:
        """Record an answer of ``key`` sent at ``sent_at`` (local Unix time).

        :returns: when this process first sent the key, if it was answered with the same task
            before (a replay), else ``None``.
        """
        entry = (scope, key)
        with self._lock:
            prior = self._keys.get(entry)
            first = prior[1] if prior is not None and prior[0] == task_id else None
            self._keys[entry] = (task_id, sent_at if first is None else first)
            self._keys.move_to_end(entry)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)
        return first

    def clear(self) -> None:
        """Forget every key (tests start each case afresh)."""
        with self._lock:
            self._keys.clear()


SENT_KEYS = SentKeys()


def created_task(
    response: httpx.Response, *, scope: str, key: str, sent_at: float, resent: bool
) -> CreatedTask:
    """Read a create answer, noting whether it replayed an existing task and when it was sent.

    ``task.sent_at`` is when this process first sent the create that made the task, or ``None``
    for a task Rivya replays that this process never saw made (only its ``created_at`` dates
    it).

    :param response: the create answer.
    :param scope: what keys are unique within (the client's base URL).
    :param key: the Idempotency-Key the create was sent with.
    :param sent_at: local Unix time this create call sent its first attempt.
    :param resent: an earlier attempt of this call may have made a task (see
        :func:`may_have_made`).
    """
    task = parse(CreatedTask, response)
    said_so = response.headers.get("Idempotent-Replayed", "").strip().lower() == "true"
    before = _created_before(task, response, sent_at)
    earlier = SENT_KEYS.answered(scope, key, task.id, sent_at)
    if earlier is not None:
        task._create = CreateFacts(True, earlier, before)
    elif said_so and not resent:
        task._create = CreateFacts(True, None, before)
    else:
        task._create = CreateFacts(False, sent_at, before)
    return task


def _created_before(task: GenerationTask, response: httpx.Response, sent_at: float) -> bool | None:
    """Whether Rivya's ``created_at``, read on its own clock, predates the create (``None``: no
    ``created_at`` to tell)."""
    if task.created_at is None:
        return None
    created = task.created_at.timestamp()
    server_now = http_date(response.headers.get("date"))
    if server_now is None:
        return created < sent_at - MARGIN_WITHOUT_DATE
    offset = server_now - time.time()
    return created - offset < sent_at - MARGIN_WITH_DATE
