"""Product photo edit: upload a product photo, restage it with flux-kontext-pro, save the result.

Shows image editing with a reference file. ``RivyaUploadFileOperator`` checks the photo locally
(its real type from the file's content, its size against the model's limits) and uploads it
once to the Rivya Files API; its XCom is the reference media item. ``RivyaGenerateOperator``
sends that item as the reference image of a ``flux-kontext-pro`` edit
(``reference_items=upload.output``), waits in the triggerer (deferrable) and copies the edited
image to ``<output_dir>/<run date>/<run id>/``. A retried edit is never paid twice, and on
Airflow 3.3+ a retried upload reuses the file it uploaded before.

Needs the Airflow Connection ``rivya_default``. Params:

- ``photo``: path or ObjectStoragePath URI (``s3://``, ``gs://``, ``file://``...) of a JPEG, PNG
  or WebP image of at most 10 MB; defaults to ``assets/product.jpg`` next to this file.
- ``prompt``: the edit instruction.
- ``output_dir``: where the edited image goes; defaults to ``$RIVYA_OUTPUT_DIR`` or
  ``<tmp>/rivya-output``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param

from rivya_provider.operators.files import RivyaUploadFileOperator
from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.outputs import folder_name

# --8<-- [start:dag]
# Only a path is built here: the file is read when the upload task runs, not when the DAG is parsed.
PRODUCT_PHOTO = Path(__file__).parent / "assets" / "product.jpg"

with DAG(
    dag_id="rivya_product_photo_edit",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["rivya", "example"],
    user_defined_filters={"folder_name": folder_name},
    params={
        "photo": Param(
            str(PRODUCT_PHOTO),
            type="string",
            description="Path or URI (s3://, gs://...) of the product photo: JPEG, PNG or WebP.",
        ),
        "prompt": Param(
            "Place this bottle on a white marble kitchen counter in soft morning light, "
            "keep the bottle and its label exactly as they are",
            type="string",
            description="What to change in the photo.",
        ),
        "output_dir": Param(
            os.environ.get("RIVYA_OUTPUT_DIR", os.path.join(tempfile.gettempdir(), "rivya-output")),
            type="string",
        ),
    },
) as dag:
    upload = RivyaUploadFileOperator(
        task_id="upload_photo",
        files="{{ params.photo }}",
        model="flux-kontext-pro",
        retries=2,
    )
    RivyaGenerateOperator(
        task_id="edit_photo",
        model="flux-kontext-pro",
        prompt="{{ params.prompt }}",
        model_params={"aspectRatio": "1:1", "outputFormat": "png"},
        reference_items=upload.output,
        # --8<-- [start:output]
        # Not {{ ds }}: a run triggered without a logical date (Airflow 3 allows it) has none.
        # The run id keeps two runs of one day apart.
        output_path=(
            "{{ params.output_dir }}/{{ dag_run.run_after | ds }}/{{ run_id | folder_name }}"
        ),
        # --8<-- [end:output]
        deferrable=True,
        retries=2,
    )
# --8<-- [end:dag]
