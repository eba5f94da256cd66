"""In-memory state of the emulator: accounts, keys, wallets, tasks, files, idempotency, counters.

Pure Python and thread-safe: the server's event loop and a test thread may use it at once. Time
comes from an injected clock and task progress is applied from it when state is read, so no
background job is needed and a fake clock moves tasks without sleeping. The cost of a request does
not grow with history: status changes wait in a heap ordered by due time (settling pops only what is
due), and idempotency keys expire from a queue ordered by creation.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from rivya_provider.emulator.config import new_api_key
from rivya_provider.emulator.idempotency import IdempotencyEntry, IdempotencyKeys
from rivya_provider.emulator.records import (
    ALL_SCOPES,
    ApiKey,
    CreateResult,
    KeyStatus,
    NewTask,
    StoredFile,
    Task,
    TaskStatus,
)

DEFAULT_ACCOUNT = "acct_default"
_COUNTER_NAMES = (
    "tasks_created",
    "idempotent_replays",
    "credits_reserved",
    "credits_charged",
    "credits_refunded",
    "files_uploaded",
    "dropped_responses",
    "downloads_failed",
)


@dataclass
class _Counters:
    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)
    downloads: Counter[str] = field(default_factory=Counter)
    download_responses: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "downloads": dict(self.downloads),
            "download_responses": dict(self.download_responses),
            **{name: self.totals[name] for name in _COUNTER_NAMES},
        }


class EmulatorState:
    """Everything the emulator remembers, behind one lock."""

    def __init__(
        self,
        *,
        api_key: str,
        credits: int,
        queued_seconds: float,
        processing_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        """Create the default account with its key and wallet.

        :param api_key: the default account's key (all scopes).
        :param credits: the default account's start balance.
        :param queued_seconds: how long each task is queued.
        :param processing_seconds: how long each task processes (before slow-task extras).
        :param clock: seconds since the epoch.
        """
        self.clock = clock
        self.queued_seconds = queued_seconds
        self.processing_seconds = processing_seconds
        self._lock = threading.Lock()
        self._keys = {api_key: ApiKey(api_key, DEFAULT_ACCOUNT, ALL_SCOPES, KeyStatus.ACTIVE)}
        self._start_credits = {DEFAULT_ACCOUNT: credits}
        self._wallets = dict(self._start_credits)
        self._tasks: dict[str, Task] = {}
        #: (due time, tie-breaker, task id) of every pending status change.
        self._due: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._files: dict[str, StoredFile] = {}
        self._file_urls: dict[str, str] = {}
        self._idempotency = IdempotencyKeys()
        self._counters = _Counters()

    # -- keys and wallets -------------------------------------------------------------------

    def find_key(self, key: str) -> ApiKey | None:
        with self._lock:
            return self._keys.get(key)

    def add_key(
        self,
        *,
        scopes: Iterable[str] | None = None,
        status: KeyStatus | str = KeyStatus.ACTIVE,
        account: str | None = None,
        credits: int | None = None,
    ) -> ApiKey:
        """Create a key; a new account id gets its own wallet.

        :param scopes: the key's scopes (default: all).
        :param status: ``active``, ``revoked`` or ``expired``.
        :param account: the account it belongs to (default: the default account).
        :param credits: balance of the account (a new account starts with the default start
            balance when omitted).
        """
        account = account or DEFAULT_ACCOUNT
        key = ApiKey(
            new_api_key(),
            account,
            ALL_SCOPES if scopes is None else frozenset(scopes),
            KeyStatus(status),
        )
        with self._lock:
            if account not in self._wallets:
                start = self._start_credits[DEFAULT_ACCOUNT] if credits is None else credits
                self._start_credits[account] = start
                self._wallets[account] = start
            elif credits is not None:
                self._wallets[account] = credits
            self._keys[key.key] = key
        return key

    def balance(self, account: str) -> int:
        with self._lock:
            self._settle_locked()
            return self._wallets.get(account, 0)

    def set_credits(self, credits: int, *, account: str = DEFAULT_ACCOUNT) -> None:
        """Set an account's balance (creating its wallet when new)."""
        with self._lock:
            self._start_credits.setdefault(account, credits)
            self._wallets[account] = credits

    # -- tasks ------------------------------------------------------------------------------

    def begin_create(
        self, *, account: str, key: str | None, body_hash: str, new: NewTask, replay: bool = True
    ) -> CreateResult:
        """Replay, refuse or create a task; a created task is charged and its key is in flight.

        :param account: the caller's account.
        :param key: the Idempotency-Key header, if any.
        :param body_hash: :func:`fingerprint` of the request body.
        :param new: the task to create when nothing is replayed.
        :param replay: replay a same-key, same-body repeat (else it is a conflict).
        """
        with self._lock:
            now = self.clock()
            self._settle_locked()
            self._idempotency.expire(now)
            entry = self._idempotency.get((account, key)) if key is not None else None
            if entry is not None:
                if entry.fingerprint != body_hash:
                    return CreateResult("conflict")
                if entry.in_flight:
                    return CreateResult("in_flight")
                if not replay:
                    return CreateResult("conflict")
                self._counters.totals["idempotent_replays"] += 1
                return CreateResult("replayed", replace(self._tasks[entry.task_id]))
            balance = self._wallets.get(account, 0)
            if balance < new.cost:
                return CreateResult("insufficient", balance=balance)
            task = self._new_task(account, new, now)
            if key is not None:
                self._idempotency.add((account, key), IdempotencyEntry(body_hash, task.id, now))
            return CreateResult("created", replace(task))

    def finish_create(self, *, account: str, key: str | None) -> None:
        """Mark a create's Idempotency-Key as answered, so later requests replay it."""
        if key is None:
            return
        with self._lock:
            entry = self._idempotency.get((account, key))
            if entry is not None:
                entry.in_flight = False

    def get_task(self, *, account: str, task_id: str) -> Task | None:
        """Return a copy of the caller's task, ``None`` when missing or another account's."""
        with self._lock:
            self._settle_locked()
            task = self._tasks.get(task_id)
            return replace(task) if task is not None and task.account == account else None

    def succeeded_task(self, task_id: str) -> Task | None:
        """Return a succeeded task by id, whoever owns it (result URLs are public)."""
        with self._lock:
            self._settle_locked()
            task = self._tasks.get(task_id)
            if task is None or task.status is not TaskStatus.SUCCEEDED:
                return None
            return replace(task)

    def settle_due(self) -> None:
        """Apply every status change due by now, settling credits of tasks that just ended."""
        with self._lock:
            self._settle_locked()

    def _new_task(self, account: str, new: NewTask, now: float) -> Task:
        fate = new.fate()
        task_id = "task_" + secrets.token_hex(12)
        processing_at = now + self.queued_seconds
        task = Task(
            id=task_id,
            account=account,
            model=new.model,
            prompt=new.prompt,
            params=new.params,
            reserved_credits=new.cost,
            fate=fate,
            created_at=now,
            processing_at=processing_at,
            done_at=processing_at + self.processing_seconds + fate.extra_seconds,
            result_url=new.result_url(task_id),
            image=new.image,
        )
        self._wallets[account] -= new.cost
        self._tasks[task_id] = task
        heapq.heappush(self._due, (task.processing_at, next(self._order), task_id))
        self._counters.totals["tasks_created"] += 1
        self._counters.totals["credits_reserved"] += new.cost
        return task

    def _settle_locked(self) -> None:
        # Only changes that are due are touched: O(changes), whatever the number of tasks.
        now = self.clock()
        while self._due and self._due[0][0] <= now:
            _, _, task_id = heapq.heappop(self._due)
            task = self._tasks.get(task_id)
            if task is None:
                continue
            if not task.advance(now):
                upcoming = task.next_change()
                if upcoming is not None:
                    heapq.heappush(self._due, (upcoming, next(self._order), task_id))
                continue
            if task.status is TaskStatus.SUCCEEDED:
                task.final_credits = task.reserved_credits
                self._counters.totals["credits_charged"] += task.reserved_credits
            else:
                self._wallets[task.account] += task.reserved_credits
                self._counters.totals["credits_refunded"] += task.reserved_credits

    # -- files ------------------------------------------------------------------------------

    def add_file(self, stored: StoredFile) -> None:
        with self._lock:
            self._files[stored.id] = stored
            self._file_urls[urlsplit(stored.url).path] = stored.id
            self._counters.totals["files_uploaded"] += 1

    def uploaded_kind(self, url: str) -> str | None:
        """Return the kind of the file this emulator serves at ``url``, ``None`` if none.

        Only the path counts, so a URL still matches when the client reached the emulator by
        another host name.
        """
        with self._lock:
            file_id = self._file_urls.get(urlsplit(url).path)
            return self._files[file_id].kind if file_id is not None else None

    def get_file(self, *, file_id: str, account: str | None = None) -> StoredFile | None:
        """Return a file; with ``account``, only when that account owns it."""
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None or (account is not None and stored.account != account):
            return None
        return stored

    # -- counters and admin -----------------------------------------------------------------

    def count_request(self, route: str) -> None:
        with self._lock:
            self._counters.requests[route] += 1

    def count_response(self, status: int) -> None:
        with self._lock:
            self._counters.responses[str(status)] += 1

    def count_download(self, route: str) -> None:
        with self._lock:
            self._counters.downloads[route] += 1

    def count_download_response(self, status: int) -> None:
        with self._lock:
            self._counters.download_responses[str(status)] += 1

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters.totals[name] += amount

    def counters(self) -> dict[str, Any]:
        with self._lock:
            self._settle_locked()
            return self._counters.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """Describe everything for ``GET /_emulator/state`` (never the keys themselves)."""
        with self._lock:
            self._settle_locked()
            by_status = Counter(str(t.status) for t in self._tasks.values())
            return {
                "counters": self._counters.snapshot(),
                "wallets": dict(self._wallets),
                "tasks": {"total": len(self._tasks), "by_status": dict(by_status)},
                "files": len(self._files),
                "idempotency_keys": len(self._idempotency),
                "api_keys": len(self._keys),
            }

    def reset(self) -> None:
        """Forget tasks, files, idempotency keys and counters; restore start balances."""
        with self._lock:
            self._wallets = dict(self._start_credits)
            self._tasks.clear()
            self._due.clear()
            self._files.clear()
            self._file_urls.clear()
            self._idempotency.clear()
            self._counters = _Counters()
