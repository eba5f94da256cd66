"""DAGs of the UI plugin's end-to-end test (``tests/e2e/test_ui_plugin.py``) and screenshots.

- ``rivya_ui_gallery``: three mapped generations (one prompt carries HTML, which the view must
  show as text), results copied to ``{{ params.output_dir }}/<run id>``.
- ``rivya_ui_private``: one generation, for a user the test's auth manager denies this DAG.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param

from rivya_provider.operators.generate import RivyaGenerateOperator

GALLERY_PROMPTS = [
    "A lighthouse on a cliff at dawn, flat poster colours",
    "A red fox in fresh snow, watercolour",
    "Spring sale <b>banner</b> & 'quotes', bold letters",
]
PRIVATE_PROMPT = "A confidential product prototype on a grey table"
OUTPUT_PARAM = Param(
    os.environ.get("RIVYA_OUTPUT_DIR", os.path.join(tempfile.gettempdir(), "rivya-ui")),
    type="string",
)
COMMON: dict[str, Any] = {
    "model": "flux-2-flex",
    "output_path": "{{ params.output_dir }}/{{ run_id }}",
    "deferrable": False,
    "poll_interval": 0.5,
    "generation_timeout": 120.0,
}

with DAG(
    dag_id="rivya_ui_gallery",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"output_dir": OUTPUT_PARAM},
):
    RivyaGenerateOperator.partial(
        task_id="generate", model_params={"aspectRatio": "1:1"}, **COMMON
    ).expand(prompt=GALLERY_PROMPTS)

with DAG(
    dag_id="rivya_ui_private",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"output_dir": OUTPUT_PARAM},
):
    RivyaGenerateOperator(
        task_id="generate", prompt=PRIVATE_PROMPT, model_params={"aspectRatio": "16:9"}, **COMMON
    )
