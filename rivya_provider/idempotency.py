"""Idempotency keys that make one Airflow task instance pay for one generation.

The key is derived from where the task runs (dag id, task id, run id, map index) and from a
fingerprint of the inputs as the user gave them. Reference files count by their content hash, not
by the URL an upload returned, so a re-upload on retry does not change the key. The try number is
never part of it: every try of a task instance lands on the same chain of keys.

The chain (``...-0``, ``...-1``, ...) exists for failed generations: a failed task costs nothing,
and the next try moves to the next key of the chain so it can generate again. Because every link
is deterministic, a try that crashed between submitting and recording still replays its task.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KEY_PREFIX = "airflow-rivya"


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def input_fingerprint(
    *,
    model: str,
    prompt: str | None,
    params: Mapping[str, Any],
    reference_items: Sequence[Mapping[str, Any]] = (),
    reference_file_hashes: Sequence[str] = (),
    client_request_id: str | None = None,
) -> str:
    """Hash the generation inputs as given; uploaded files count by content, not by URL.

    :param model: the model id.
    :param prompt: the rendered prompt.
    :param params: the params without the items the operator uploads itself.
    :param reference_items: reference media items given directly (URLs from upstream tasks).
    :param reference_file_hashes: sha256 of each reference file the operator uploads, in order.
    :param client_request_id: the trace id sent with the request (it is part of the body).
    """
    return _digest(
        {
            "model": model,
            "prompt": prompt,
            "params": dict(params),
            "reference_items": [dict(item) for item in reference_items],
            "reference_files": list(reference_file_hashes),
            "client_request_id": client_request_id,
        }
    )


@dataclass(frozen=True)
class KeyChain:
    """The deterministic Idempotency-Keys of one task instance and one set of inputs."""

    chain_id: str

    @classmethod
    def for_task_instance(
        cls,
        *,
        dag_id: str,
        task_id: str,
        run_id: str,
        map_index: int,
        fingerprint: str,
        fresh_on_try: int | None = None,
    ) -> KeyChain:
        """Derive the chain; ``fresh_on_try`` (opt-in) starts a new chain for that try."""
        identity: list[Any] = [dag_id, task_id, run_id, map_index, fingerprint]
        if fresh_on_try is not None:
            identity.append(["fresh-try", fresh_on_try])
        return cls(_digest(identity))

    def key(self, link: int) -> str:
        """Return the Idempotency-Key of the ``link``-th generation (0 first)."""
        if link < 0:
            raise ValueError(f"link must be at least 0, got {link}")
        return f"{KEY_PREFIX}-{self.chain_id}-{link}"
