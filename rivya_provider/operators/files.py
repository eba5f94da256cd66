"""``RivyaUploadFileOperator``: upload reference files once, hand on reference media items."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from rivya_provider import checks
from rivya_provider.client import CATALOG, FieldProblem, FileKind, RequestValidationError
from rivya_provider.exceptions import failing_fast
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.operators._lineage import UploadLineage
from rivya_provider.operators._references import (
    FileSource,
    as_source_list,
    inspect_files,
    upload_files,
)
from rivya_provider.resume import TaskMemory


class RivyaUploadFileOperator(UploadLineage, BaseOperator):
    """Upload reference files to the Rivya Files API; return items for ``referenceMediaItems``.

    Every file is checked locally first (real type from its signature, size against the limits of
    ``model`` or the Files API defaults): one bad file fails the task before anything is sent.
    The XCom is a list of reference media items in wire form (``url``, ``kind``, ``name``,
    ``mimeType``, ``durationToken``), ready for ``RivyaGenerateOperator(reference_items=...)``.
    On Airflow 3.3+ a retry reuses the uploads of an earlier try (by content hash). With the
    ``openlineage`` extra installed, the task emits OpenLineage events: the files in, the Rivya
    files out.

    :param files: one or many local paths or ObjectStoragePath URIs (``s3://``, ``gs://``,
        ``file://``...).
    :param kind: ``image``, ``video`` or ``audio``; inferred from each file's content when omitted.
    :param model: apply this model's file limits (Rivya checks the model accepts the kind).
    :param rivya_conn_id: the Airflow Connection of type ``rivya``.
    """

    template_fields: Sequence[str] = ("files", "kind", "model")
    ui_color = "#f4e9ff"

    def __init__(
        self,
        *,
        files: FileSource | Sequence[FileSource],
        kind: FileKind | str | None = None,
        model: str | None = None,
        rivya_conn_id: str = RivyaHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.files = files
        self.kind = kind
        self.model = model
        self.rivya_conn_id = rivya_conn_id
        checks.raise_problems(
            checks.file_sources("files", files), subject=f"arguments of task {self.task_id!r}"
        )

    @cached_property
    def hook(self) -> RivyaHook:
        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    def execute(self, context: Any) -> list[dict[str, Any]]:
        with failing_fast(self.rivya_conn_id):
            sources = as_source_list(self.files)
            if not sources:
                problem = FieldProblem("files", "is empty; give at least one path or URI")
                raise RequestValidationError([problem])
            try:
                catalog = self.hook.client.model_catalog() if self.model else CATALOG
                checked = inspect_files(
                    sources, model=self.model or None, kind=self.kind or None, catalog=catalog
                )
                items = upload_files(
                    self.hook.client,
                    checked,
                    model=self.model or None,
                    kind=self.kind or None,
                    memory=TaskMemory(context.get("task_state_store")),
                )
            finally:
                self.hook.close()
        self.log.info("%d reference file(s) ready", len(items))
        self._lineage_returned = items
        return items
