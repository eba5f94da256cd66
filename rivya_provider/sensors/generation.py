"""``RivyaGenerationSensor``: wait for a generation submitted elsewhere (poke or deferrable)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from rivya_provider import checks, tasklog
from rivya_provider.client import GenerationTask, RivyaError, is_retryable
from rivya_provider.exceptions import failing_fast
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.links import RivyaResultLink
from rivya_provider.manifest import GenerationManifest
from rivya_provider.resume import started_at_of
from rivya_provider.triggers.events import read_event
from rivya_provider.triggers.generation import RivyaGenerationTrigger, fire_guard


class RivyaGenerationSensor(BaseSensorOperator):
    """Wait until a Rivya generation succeeds (returning its manifest) or fails (raising).

    Typical use: ``RivyaGenerateOperator(wait_for_completion=False)`` submits, this sensor waits,
    e.g. ``generation_id="{{ ti.xcom_pull('submit')['generation_id'] }}"``. In ``poke`` mode a
    transient error (429, 5xx, connection) counts as "not yet". With ``deferrable`` the wait runs
    in the triggerer; its deadline is the generation's ``created_at`` (or, without one, the
    start of the wait) plus the sensor's ``timeout``.

    :param generation_id: the Rivya task id (``task_...``).
    :param rivya_conn_id: the Airflow Connection of type ``rivya``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("generation_id",)
    operator_extra_links = (RivyaResultLink(),)
    ui_color = "#f4e9ff"

    def __init__(
        self,
        *,
        generation_id: str,
        rivya_conn_id: str = RivyaHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 5.0)
        super().__init__(**kwargs)
        self.generation_id = generation_id
        self.rivya_conn_id = rivya_conn_id
        self.deferrable = deferrable
        checks.sensor_arguments(self)

    @cached_property
    def hook(self) -> RivyaHook:
        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    def execute(self, context: Any) -> Any:
        self._check_id()
        RivyaResultLink.persist(context, "")
        if not self.deferrable:
            return super().execute(context)
        with failing_fast(self.rivya_conn_id):
            task = self.hook.client.get_generation(self.generation_id)
            self._link(context, task)
            if task.status.is_terminal:
                return self._finish(context, task)
            self.defer(
                trigger=RivyaGenerationTrigger(
                    generation_id=task.id,
                    deadline=started_at_of(task) + float(self.timeout),
                    rivya_conn_id=self.rivya_conn_id,
                    poll_interval=float(self.poke_interval),
                    first_delay=float(self.poke_interval),
                    fire_not_before=fire_guard(first_delay=float(self.poke_interval)),
                ),
                method_name="execute_complete",
            )

    def poke(self, context: Any) -> PokeReturnValue | bool:
        self._check_id()
        with failing_fast(self.rivya_conn_id):
            try:
                # One request per poke: Airflow's poke_interval says when to look again.
                task = self.hook.client.poll_generation(self.generation_id)
            except RivyaError as exc:
                if is_retryable(exc):
                    self.log.warning("Could not check %s this time: %s", self.generation_id, exc)
                    return False
                raise
        self._link(context, task)
        if not task.status.is_terminal:
            self.log.info(
                "Waiting: status %s, %s since it was submitted (generation %s)",
                task.status_as_reported,
                tasklog.duration(time.time() - started_at_of(task)),
                task.id,
            )
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, task))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: return the manifest or raise the typed error."""
        with failing_fast(self.rivya_conn_id):
            task = read_event(event).result()
            return self._finish(context, task)

    def _check_id(self) -> None:
        """Check the rendered generation id before any request."""
        with failing_fast(self.rivya_conn_id):
            checks.raise_problems(checks.generation_id(self.generation_id), subject="inputs")

    def _link(self, context: Any, task: GenerationTask) -> None:
        url = RivyaResultLink.url_for(task)
        # Poke mode calls this on every poke: store the link only when it changes.
        if url != getattr(self, "_linked_url", None):
            RivyaResultLink.persist(context, url)
            self._linked_url = url

    def _finish(self, context: Any, task: GenerationTask) -> dict[str, Any]:
        task.raise_for_failure()
        self._link(context, task)
        manifest = GenerationManifest.describe(
            task, request={"model": task.model}, origin="watched", idempotency_key=None
        )
        self.log.info(
            "Generation %s: it cost %s; this sensor only watched it and charged nothing "
            "(generation %s)",
            task.status,
            tasklog.credits(task.final_credits),
            task.id,
        )
        return manifest.model_dump(mode="json")
