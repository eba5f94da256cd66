"""Idempotency keys: one chain per task instance and inputs, never per try."""

from __future__ import annotations

import inspect
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from rivya_provider.client.models import IDEMPOTENCY_KEY_MAX
from rivya_provider.client.polling.schedule import GUARD_MARGIN_SECONDS
from rivya_provider.emulator import RunningEmulator
from rivya_provider.idempotency import KEY_PREFIX, KeyChain, input_fingerprint

#: What the client (and Rivya) accept as an Idempotency-Key.
VISIBLE_ASCII_KEY = re.compile(rf"[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}")

BASE: dict[str, Any] = {
    "model": "flux-2-flex",
    "prompt": "a lighthouse at dawn",
    "params": {"aspectRatio": "16:9", "resolution": "2K"},
    "reference_items": [{"url": "https://cdn.example/a.png", "kind": "image"}],
    "reference_file_hashes": ["a" * 64, "b" * 64],
    "client_request_id": "trace-1",
}

INSTANCE: dict[str, Any] = {
    "dag_id": "marketing",
    "task_id": "hero_image",
    "run_id": "scheduled__2026-05-11T00:00:00+00:00",
    "map_index": -1,
    "fingerprint": input_fingerprint(**BASE),
}


def test_fingerprint_is_a_sha256_hex_digest_and_deterministic() -> None:
    fingerprint = input_fingerprint(**BASE)
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    assert input_fingerprint(**BASE) == fingerprint


def test_fingerprint_ignores_dict_key_order() -> None:
    reordered = {
        **BASE,
        "params": {"resolution": "2K", "aspectRatio": "16:9"},
        "reference_items": [{"kind": "image", "url": "https://cdn.example/a.png"}],
    }
    assert list(reordered["params"]) != list(BASE["params"])
    assert input_fingerprint(**reordered) == input_fingerprint(**BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"model": "flux-kontext-pro"},
        {"prompt": "a lighthouse at dusk"},
        {"prompt": None},
        {"params": {"aspectRatio": "1:1", "resolution": "2K"}},
        {"params": {"aspectRatio": "16:9"}},
        {"params": {"aspectRatio": "16:9", "resolution": "2K", "extra": None}},
        {"reference_items": []},
        {"reference_items": [{"url": "https://cdn.example/b.png", "kind": "image"}]},
        {"reference_items": [{"url": "https://cdn.example/a.png", "kind": "image", "name": "a"}]},
        {"reference_file_hashes": ["a" * 64]},
        {"reference_file_hashes": ["b" * 64, "a" * 64]},  # order is part of the request
        {"reference_file_hashes": ["a" * 64, "c" * 64]},
        {"client_request_id": "trace-2"},
        {"client_request_id": None},
    ],
)
def test_fingerprint_changes_with_every_input(change: dict[str, Any]) -> None:
    assert input_fingerprint(**{**BASE, **change}) != input_fingerprint(**BASE)


def test_fingerprint_takes_uploaded_files_by_hash_only() -> None:
    # Uploaded files enter as content hashes: a re-upload's new URL cannot reach the key.
    parameters = inspect.signature(input_fingerprint).parameters
    assert set(parameters) == {
        "model",
        "prompt",
        "params",
        "reference_items",
        "reference_file_hashes",
        "client_request_id",
    }
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())


def test_key_chain_is_deterministic() -> None:
    chain = KeyChain.for_task_instance(**INSTANCE)
    assert KeyChain.for_task_instance(**INSTANCE) == chain
    assert chain.key(0) == KeyChain.for_task_instance(**INSTANCE).key(0)
    assert chain.key(0) == f"{KEY_PREFIX}-{chain.chain_id}-0"


@pytest.mark.parametrize(
    "change",
    [
        {"dag_id": "marketing_v2"},
        {"task_id": "hero_image_2"},
        {"run_id": "manual__2026-05-11T00:00:00+00:00"},
        {"map_index": 0},
        {"map_index": 1},
        {"fingerprint": input_fingerprint(**{**BASE, "prompt": "other"})},
        {"fresh_on_try": 1},
    ],
)
def test_key_chain_differs_by_task_instance_and_inputs(change: dict[str, Any]) -> None:
    base = KeyChain.for_task_instance(**INSTANCE)
    changed = KeyChain.for_task_instance(**{**INSTANCE, **change})
    assert changed.chain_id != base.chain_id
    assert changed.key(0) != base.key(0)


def test_fresh_on_try_gives_each_try_its_own_chain() -> None:
    tries = {KeyChain.for_task_instance(**INSTANCE, fresh_on_try=n).chain_id for n in (1, 2, 3)}
    assert len(tries) == 3
    assert KeyChain.for_task_instance(**INSTANCE, fresh_on_try=None) == KeyChain.for_task_instance(
        **INSTANCE
    )


def test_ids_that_concatenate_alike_still_differ() -> None:
    one = KeyChain.for_task_instance(**{**INSTANCE, "dag_id": "a_b", "task_id": "c"})
    other = KeyChain.for_task_instance(**{**INSTANCE, "dag_id": "a", "task_id": "b_c"})
    assert one != other


def test_links_of_a_chain_differ() -> None:
    chain = KeyChain.for_task_instance(**INSTANCE)
    keys = [chain.key(link) for link in range(30)]
    assert len(set(keys)) == 30
    assert keys[0].endswith("-0")
    assert keys[1].endswith("-1")


def test_keys_fit_rivya_limits_even_for_long_ids() -> None:
    chain = KeyChain.for_task_instance(
        dag_id="d" * 250,
        task_id="t" * 250,
        run_id="r" * 250,
        map_index=99_999,
        fingerprint=input_fingerprint(**{**BASE, "prompt": "p" * 5000}),
        fresh_on_try=1000,
    )
    key = chain.key(10**6)
    assert len(key) <= IDEMPOTENCY_KEY_MAX
    assert VISIBLE_ASCII_KEY.fullmatch(key)


def test_non_ascii_inputs_still_make_ascii_keys() -> None:
    chain = KeyChain.for_task_instance(
        **{**INSTANCE, "dag_id": "affiches_été", "run_id": "manual 🚀"}
    )
    assert VISIBLE_ASCII_KEY.fullmatch(chain.key(0))


def test_negative_link_is_rejected() -> None:
    with pytest.raises(ValueError, match="-1"):
        KeyChain.for_task_instance(**INSTANCE).key(-1)


def test_the_try_number_is_not_an_input() -> None:
    parameters = inspect.signature(KeyChain.for_task_instance).parameters
    assert set(parameters) == {
        "dag_id",
        "task_id",
        "run_id",
        "map_index",
        "fingerprint",
        "fresh_on_try",
    }
    # The one try-related input is opt-in.
    assert parameters["fresh_on_try"].default is None


# --- the operator derives its chain the same way on every try ----------------------------------


@dataclass
class FakeTaskInstance:
    """The attributes of ``context["ti"]`` the operator reads, and a recorder for its XComs."""

    try_number: int
    map_index: int = -1
    dag_id: str = "unit_dag"
    task_id: str = "generate"
    xcoms: dict[str, Any] = field(default_factory=dict)
    #: Every push in order: each one is a call to Airflow's API server in a real worker.
    pushes: list[tuple[str, Any]] = field(default_factory=list)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value
        self.pushes.append((key, value))


def _submit(try_number: int, *, map_index: int = -1, fresh: bool = False) -> dict[str, Any]:
    from rivya_provider.operators.generate import RivyaGenerateOperator

    operator = RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="a lighthouse at dawn",
        model_params={"aspectRatio": "16:9"},
        wait_for_completion=False,
        fresh_generation_on_retry=fresh,
    )
    context = {
        "ti": FakeTaskInstance(try_number=try_number, map_index=map_index),
        "run_id": "manual__unit",
    }
    manifest: dict[str, Any] = operator.execute(context)
    return manifest


def test_every_try_of_a_task_instance_uses_the_same_key(rivya_default: RunningEmulator) -> None:
    first = _submit(try_number=1)
    second = _submit(try_number=2)
    assert first["origin"] == "submitted"
    assert second["origin"] == "replayed"
    assert second["idempotency_key"] == first["idempotency_key"]
    assert second["generation_id"] == first["generation_id"]
    assert rivya_default.counters()["tasks_created"] == 1


def test_fresh_generation_on_retry_makes_a_new_key_per_try(
    rivya_default: RunningEmulator,
) -> None:
    first = _submit(try_number=1, fresh=True)
    second = _submit(try_number=2, fresh=True)
    assert second["origin"] == "submitted"
    assert second["idempotency_key"] != first["idempotency_key"]
    assert rivya_default.counters()["tasks_created"] == 2


def test_mapped_instances_get_their_own_keys(rivya_default: RunningEmulator) -> None:
    keys = {_submit(try_number=1, map_index=index)["idempotency_key"] for index in (0, 1)}
    assert len(keys) == 2
    assert rivya_default.counters()["tasks_created"] == 2


@pytest.mark.parametrize("heartbeat", [7.0, 2.0, 0.0])
def test_a_deferred_wait_reports_no_sooner_than_the_worker_heartbeat_interval(
    rivya_default: RunningEmulator, monkeypatch: pytest.MonkeyPatch, heartbeat: float
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    from rivya_provider.operators.generate import RivyaGenerateOperator

    rivya_default.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=30)
    monkeypatch.setenv("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", str(heartbeat))
    operator = RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="a lighthouse at dawn",
        deferrable=True,
        first_poll_delay=0.1,
        poll_interval=4.0,
    )
    context = {"ti": FakeTaskInstance(try_number=1), "run_id": "manual__unit"}
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    after = time.time()
    _, kwargs = deferred.value.trigger.serialize()
    # The worker already polled once (after first_poll_delay): the trigger's first poll is one
    # interval later (jittered by up to 10 %, as on every path), and a result it finds is held
    # back until the heartbeat window and its margin are over (2 s + 3 s ends after that first
    # poll too). Without a window, no guard.
    assert kwargs["first_delay"] == pytest.approx(4.0, rel=0.1)
    if heartbeat:
        window = heartbeat + GUARD_MARGIN_SECONDS
        assert before + window <= kwargs["fire_not_before"] <= after + window
    else:
        assert kwargs["fire_not_before"] is None
    assert kwargs["carry"]["origin"] == "submitted"
    assert rivya_default.counters()["requests"]["GET /api/v1/generations/{taskId}"] == 1
    assert rivya_default.api_key not in repr(kwargs)
