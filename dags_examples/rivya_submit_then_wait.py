"""Submit then wait: submit a generation in one task, wait for it in a sensor, use it in a third.

Shows the split form of ``RivyaGenerateOperator``. With ``wait_for_completion=False`` it submits
one ``flux-2-flex`` text-to-image generation (still one paid generation per task instance, even
across retries) and returns at once; its manifest says ``queued`` or ``processing``.
``RivyaGenerationSensor`` then waits for that generation in the triggerer
(``RivyaGenerationTrigger``, ``deferrable=True``) without holding a worker slot, and returns the
finished manifest: result URLs and credits charged. ``publish``, a plain ``@task``, receives
that manifest and hands the result URLs on.

Split the two when other tasks should run between submitting and waiting, when the wait needs
its own timeout, pool or retries (a retried sensor waits again and never resubmits), or when the
generation is submitted somewhere else and only its id reaches this DAG. Otherwise one
``RivyaGenerateOperator`` that waits is simpler (see ``rivya_quickstart``).

Needs the Airflow Connection ``rivya_default``. No params: it runs as it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.sensors.generation import RivyaGenerationSensor

# --8<-- [start:dag]
with DAG(
    dag_id="rivya_submit_then_wait",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["rivya", "example"],
) as dag:
    submit = RivyaGenerateOperator(
        task_id="submit",
        model="flux-2-flex",
        prompt="A ceramic teapot on a linen tablecloth, studio product photo, soft shadows",
        model_params={"aspectRatio": "4:3", "resolution": "1K"},
        wait_for_completion=False,
        retries=2,
    )
    wait = RivyaGenerationSensor(
        task_id="wait",
        generation_id="{{ ti.xcom_pull('submit')['generation_id'] }}",
        deferrable=True,
        poke_interval=5,
        # Counted from the generation's created_at, so a retried sensor never extends it.
        timeout=timedelta(minutes=30),
        retries=2,
    )

    @task
    def publish(manifest: dict[str, Any]) -> list[str]:
        """Hand the result URLs on; download them promptly, as they may expire."""
        print(
            f"Generation {manifest['generation_id']} {manifest['status']}: "
            f"{manifest['charged_credits']} credits, {len(manifest['result_urls'])} result(s)"
        )
        return list(manifest["result_urls"])

    submit >> wait
    publish(wait.output)
# --8<-- [end:dag]
