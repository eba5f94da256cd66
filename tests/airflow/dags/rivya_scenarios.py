"""DAGs for the integration tests; each run is configured through ``dag_run.conf``.

``conf["report"]`` names a JSON-lines file where the callbacks below record what happened to each
try (task, try number, exception type and message), so tests can read the failure Airflow saw.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from rivya_provider.operators.files import RivyaUploadFileOperator
from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.sensors.generation import RivyaGenerationSensor

START = datetime(2026, 1, 1)
FAST: dict[str, Any] = {"poll_interval": 0.2, "first_poll_delay": 0.1}


def record(context: Any) -> None:
    """Append what happened to this try to ``conf["report"]``."""
    conf = context["dag_run"].conf or {}
    if "report" not in conf:
        return
    error = context.get("exception")
    entry = {
        "task_id": context["ti"].task_id,
        "try_number": context["ti"].try_number,
        "error_type": type(error).__name__ if error else None,
        "error": str(error) if error else None,
        "code": getattr(error, "code", None),
        "request_id": getattr(error, "request_id", None),
    }
    with open(conf["report"], "a") as report:
        report.write(json.dumps(entry) + "\n")


def unblock_output(context: Any) -> None:
    """Before a retry, remove the file that stood where the output folder must go."""
    record(context)
    blocker = (context["dag_run"].conf or {}).get("blocker")
    if blocker and os.path.isfile(blocker):
        os.remove(blocker)


class BlockedOnFirstCopy(RivyaGenerateOperator):
    """On the first try, put a file where the output folder goes once the generation is paid.

    The folder passes the check before submitting; the copy after the wait then fails.
    """

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        blocker = (context["dag_run"].conf or {}).get("blocker")
        if blocker and context["ti"].try_number == 1:
            with open(blocker, "w") as handle:
                handle.write("a file where the output folder must go")
        return super().execute_complete(context, event)


CALLBACKS: dict[str, Any] = {"on_failure_callback": record, "on_retry_callback": record}


class LostAfterSubmitting(RivyaGenerateOperator):
    """On the first try, submit without waiting, then fail, like a worker lost mid-wait."""

    def execute(self, context: Any) -> Any:
        first = context["ti"].try_number == 1
        self.wait_for_completion = not first
        manifest = super().execute(context)
        if first:
            raise RuntimeError("the worker was lost after submitting")
        return manifest


for deferrable in (True, False):
    with DAG(
        f"rivya_generate_{'deferred' if deferrable else 'polling'}",
        schedule=None,
        start_date=START,
    ):
        RivyaGenerateOperator(
            task_id="generate",
            model="{{ dag_run.conf.get('model', 'flux-2-flex') }}",
            prompt="{{ dag_run.conf.get('prompt', 'a lighthouse at dawn') }}",
            model_params="{{ dag_run.conf.get('params', {}) | tojson }}",
            deferrable=deferrable,
            retries=2,
            retry_delay=timedelta(0),
            **FAST,
            **CALLBACKS,
        )

with DAG("rivya_mapped", schedule=None, start_date=START):
    RivyaGenerateOperator.partial(
        task_id="generate", model="flux-kontext-pro", deferrable=True, **FAST
    ).expand(prompt=["a red chair", "a blue chair", "a green chair"])

with DAG("rivya_upload_generate_download", schedule=None, start_date=START):
    upload = RivyaUploadFileOperator(
        task_id="upload", files="{{ dag_run.conf['reference'] }}", model="flux-kontext-pro"
    )
    RivyaGenerateOperator(
        task_id="edit",
        model="flux-kontext-pro",
        prompt="Put the product on a marble table",
        reference_items=upload.output,
        output_path="{{ dag_run.conf['out'] }}",
        deferrable=True,
        **FAST,
    )

with DAG("rivya_worker_dies", schedule=None, start_date=START):
    # The first try is killed by its execution_timeout while it waits, like a lost worker.
    RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="a lighthouse at dawn",
        deferrable=False,
        execution_timeout=timedelta(seconds=1.5),
        retries=2,
        retry_delay=timedelta(0),
        **FAST,
        **CALLBACKS,
    )

with DAG("rivya_lost_after_submit", schedule=None, start_date=START):
    LostAfterSubmitting(
        task_id="generate",
        model="flux-2-flex",
        prompt="a lighthouse at dawn",
        deferrable=False,
        retries=1,
        retry_delay=timedelta(0),
        **FAST,
    )

with DAG("rivya_copy_fails_once", schedule=None, start_date=START):
    # The generation succeeds but copying its result fails; the retry must not pay again.
    BlockedOnFirstCopy(
        task_id="generate",
        model="flux-2-flex",
        prompt="a lighthouse at dawn",
        output_path="{{ dag_run.conf['out'] }}",
        deferrable=True,
        retries=1,
        retry_delay=timedelta(0),
        on_retry_callback=unblock_output,
        on_failure_callback=record,
        **FAST,
    )

with DAG("rivya_downstream_fails", schedule=None, start_date=START):
    generated = RivyaGenerateOperator(
        task_id="generate", model="flux-2-flex", prompt="a lighthouse at dawn", **FAST
    )

    @task
    def publish(manifest: Any, marker: str) -> str:
        """Fail on the first run (no marker yet), succeed on the second."""
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("downstream failure on purpose")
        return str(manifest["generation_id"])

    publish(generated.output, "{{ dag_run.conf['marker'] }}")

for deferrable in (True, False):
    with DAG(
        f"rivya_submit_then_sense_{'deferred' if deferrable else 'poke'}",
        schedule=None,
        start_date=START,
    ):
        submitted = RivyaGenerateOperator(
            task_id="submit",
            model="flux-kontext-max",
            prompt="a lighthouse at dawn",
            wait_for_completion=False,
        )
        RivyaGenerationSensor(
            task_id="wait",
            generation_id="{{ ti.xcom_pull(task_ids='submit')['generation_id'] }}",
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=60,
            **CALLBACKS,
        ).set_upstream(submitted)
