"""The OpenLineage methods of the Rivya operators (the provider calls them; the extra builds them).

``rivya_provider.lineage`` imports the OpenLineage packages, so it is imported only inside these
methods: without the ``openlineage`` extra nothing calls them and nothing is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rivya_provider.client import (
    REFERENCE_ITEMS_PARAM,
    GenerationFailedError,
    GenerationTask,
    GenerationTimeoutError,
    RequestValidationError,
)
from rivya_provider.operators._inputs import item_list, param_dict
from rivya_provider.operators._references import as_source_list
from rivya_provider.triggers.events import GenerationEvent

if TYPE_CHECKING:
    from rivya_provider.lineage import Lineage


class GenerationLineage:
    """OpenLineage for ``RivyaGenerateOperator``: references in, results out, a run facet.

    The operator records what it learns as it goes (:meth:`_remember`), so a failed task's
    event still says which generation failed; on complete the facet comes from the manifest the
    task returned.
    """

    model: str
    model_params: Any
    reference_files: Any
    reference_items: Any
    _lineage_known: dict[str, Any] | None = None
    _lineage_returned: dict[str, Any] | None = None

    def _remember(self, task: GenerationTask, origin: str) -> None:
        """Keep the generation's id, status and origin for the lineage events of this try."""
        self._lineage_known = {
            "model": task.model or self.model,
            "generation_id": task.id,
            "status": str(task.status),
            "origin": origin,
            "reserved_credits": task.reserved_credits,
            "charged_credits": task.final_credits,
        }

    def _remember_event(self, event: GenerationEvent) -> None:
        """Keep what the trigger's event says about the generation, before acting on it."""
        self._lineage_known = {
            "generation_id": event.generation_id,
            "origin": event.carry.get("origin", "submitted"),
            "status": (event.task or {}).get("status") or event.last_status,
        }

    def _remember_error(self, exc: GenerationFailedError | GenerationTimeoutError) -> None:
        """Note how the generation ended when waiting for it raised."""
        known = dict(self._lineage_known or {})
        known["generation_id"] = exc.task_id
        if isinstance(exc, GenerationFailedError):
            known.update(status="failed", charged_credits=0)  # a failed generation costs nothing
        else:
            known["status"] = exc.last_status
        self._lineage_known = known

    def _lineage_inputs(self) -> list[Any]:
        """Name the reference files and the given reference items (not this task's uploads)."""
        from rivya_provider.lineage import item_datasets, path_dataset

        try:
            params = param_dict(self.model_params)
            items = item_list(params.get(REFERENCE_ITEMS_PARAM), "model_params")
            items += item_list(self.reference_items, "reference_items")
            sources = as_source_list(self.reference_files)
        except RequestValidationError:  # the task itself reports bad inputs
            return []
        return [path_dataset(s) for s in sources] + item_datasets(items)

    def get_openlineage_facets_on_start(self) -> Lineage:
        """Describe the generation about to start: its inputs and model."""
        from rivya_provider.lineage import generation_lineage

        return generation_lineage(inputs=self._lineage_inputs(), manifest=None, model=self.model)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Lineage:
        """Describe the finished generation from the manifest the task returned.

        :param task_instance: the task instance that finished.
        """
        from rivya_provider.lineage import generation_lineage, returned_value

        manifest = returned_value(task_instance, self._lineage_returned)
        return generation_lineage(
            inputs=self._lineage_inputs(),
            manifest=manifest if isinstance(manifest, Mapping) else None,
            model=self.model,
            known=self._lineage_known,
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Lineage:
        """Describe the failed generation with what the task knew when it failed.

        :param task_instance: the task instance that failed.
        """
        from rivya_provider.lineage import generation_lineage

        return generation_lineage(
            inputs=self._lineage_inputs(),
            manifest=None,
            model=self.model,
            known=self._lineage_known,
        )


class UploadLineage:
    """OpenLineage for ``RivyaUploadFileOperator``: the files in, the Rivya files out."""

    files: Any
    _lineage_returned: list[dict[str, Any]] | None = None

    def get_openlineage_facets_on_start(self) -> Lineage:
        """Describe the upload about to start: the files to send."""
        from rivya_provider.lineage import upload_lineage

        return upload_lineage(sources=as_source_list(self.files), items=None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Lineage:
        """Describe the finished upload: the files sent and the Rivya files they became.

        :param task_instance: the task instance that finished.
        """
        from rivya_provider.lineage import returned_value, upload_lineage

        items = returned_value(task_instance, self._lineage_returned)
        return upload_lineage(
            sources=as_source_list(self.files),
            items=[i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else None,
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Lineage:
        """Describe the failed upload: the files it was given.

        :param task_instance: the task instance that failed.
        """
        return self.get_openlineage_facets_on_start()
