"""Airflow Asset events from the operators: what a generation made, in each event's ``extra``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow.providers.common.compat.sdk import Asset

from rivya_provider.manifest import GenerationManifest


def event_extra(manifest: GenerationManifest) -> dict[str, Any]:
    """Return the ``extra`` of an Asset event for one generation.

    ``files`` are the copied results, or the result URLs when nothing was copied.
    """
    return {
        "generation_id": manifest.generation_id,
        "model": manifest.model,
        "files": [f.path for f in manifest.files] or list(manifest.result_urls),
        "credits": manifest.charged_credits,
    }


def annotate_outlet_events(
    context: Any, outlets: Iterable[Any], manifest: GenerationManifest
) -> None:
    """Add the generation's id, model, files and credits to each Asset outlet's event extra.

    Asset aliases and other outlets are left alone: their events need an Asset chosen at run
    time, which only the DAG author knows.

    :param context: the task's context (its ``outlet_events``).
    :param outlets: the task's outlets.
    :param manifest: what the generation made.
    """
    events = context.get("outlet_events")
    if events is None:
        return
    extra = event_extra(manifest)
    for outlet in outlets:
        if isinstance(outlet, Asset):
            events[outlet].extra.update(extra)
