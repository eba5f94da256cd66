"""Idempotency keys per account, kept 24 h and expired from a queue in creation order.

Not thread-safe on its own: :class:`~rivya_provider.emulator.state.EmulatorState` calls it under
its lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

IDEMPOTENCY_TTL_SECONDS = 24 * 3600

KeyName = tuple[str, str]


@dataclass
class IdempotencyEntry:
    """What a key was first used for: the body's fingerprint and the task it created."""

    fingerprint: str
    task_id: str
    created_at: float
    in_flight: bool = True


class IdempotencyKeys:
    """The remembered keys; expiry costs O(expired keys), whatever the number kept."""

    def __init__(self) -> None:
        """Start empty."""
        self._entries: dict[KeyName, IdempotencyEntry] = {}
        # Creation order is expiry order: the clock only moves forward.
        self._queue: deque[tuple[KeyName, IdempotencyEntry]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: KeyName) -> IdempotencyEntry | None:
        return self._entries.get(name)

    def add(self, name: KeyName, entry: IdempotencyEntry) -> None:
        self._entries[name] = entry
        self._queue.append((name, entry))

    def expire(self, now: float) -> None:
        """Forget the answered keys that are 24 h old or older at ``now``."""
        queue = self._queue
        while queue and now - queue[0][1].created_at >= IDEMPOTENCY_TTL_SECONDS:
            name, entry = queue[0]
            if entry.in_flight:
                break
            queue.popleft()
            # A key used again after expiring has a newer entry: keep that one.
            if self._entries.get(name) is entry:
                del self._entries[name]

    def clear(self) -> None:
        self._entries.clear()
        self._queue.clear()
