"""OpenLineage for the Rivya operators: datasets from references and results, a run facet.

Imported only by the operators' ``get_openlineage_facets_*`` methods, which the OpenLineage
provider calls: install the ``openlineage`` extra to get events. Dataset names follow the
OpenLineage naming convention: the namespace is the scheme and authority (``s3://bucket``,
``https://rivya.ai``, ``file://<host>`` for local files), the name is the path (the object key
in a bucket).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet

from rivya_provider.manifest import GenerationManifest

#: Where the run facet's JSON schema is published (it also ships in this package and the docs).
RUN_FACET_SCHEMA_URL = (
    "https://rivya.ai/airflow-provider-rivya/schemas/RivyaGenerationRunFacet.json"
    "#/$defs/RivyaGenerationRunFacet"
)
#: What the operators' OpenLineage methods return.
Lineage = OperatorLineage[Dataset, RunFacet]
#: The key of the run facet in an OpenLineage event's ``run.facets``.
RUN_FACET_KEY = "rivyaGeneration"


@attr.define
class RivyaGenerationRunFacet(RunFacet):
    """What a Rivya generation was: model, id, status, origin and credits.

    :param model: the Rivya model id.
    :param generationId: Rivya's task id, once submitted.
    :param status: the generation's last known status (``succeeded``, ``failed``...).
    :param origin: ``submitted`` (new, charged), ``replayed`` or ``resumed`` (an earlier try's).
    :param reservedCredits: credits Rivya reserved for the generation.
    :param chargedCredits: credits Rivya charged for it.
    """

    model: str
    generationId: str | None = None  # noqa: N815 (OpenLineage facets use camelCase)
    status: str | None = None
    origin: str | None = None
    reservedCredits: float | None = None  # noqa: N815
    chargedCredits: float | None = None  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return RUN_FACET_SCHEMA_URL


def run_facet_schema() -> dict[str, Any]:
    """Return the run facet's JSON schema, as shipped in the package."""
    text = files("rivya_provider").joinpath("schemas/RivyaGenerationRunFacet.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def path_dataset(source: str) -> Dataset:
    """Name a file given as a local path or ObjectStoragePath URI.

    Only the text is read: naming needs no filesystem (nor the provider of ``s3://``...).

    :param source: ``/data/a.png``, ``file:///data/a.png``, ``s3://bucket/key``,
        ``s3://conn_id@bucket/key``...
    """
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    # A connection id in the authority (ObjectStoragePath's ``conn_id@bucket``) is no part of it.
    authority = parts.netloc.rpartition("@")[2]
    if scheme in ("", "file", "local"):
        path = parts.path if scheme else source
        # A local path means something only on the machine that read or wrote it.
        return Dataset(namespace=f"file://{authority or socket.gethostname()}", name=path)
    # Object stores: the bucket (or container) is the authority, the object key the name.
    return Dataset(namespace=f"{scheme}://{authority}", name=parts.path.lstrip("/") or "/")


def url_dataset(url: str) -> Dataset:
    """Name a file Rivya serves (a reference item's or a result's URL).

    :param url: an ``https://`` URL, or a bare Rivya file id.
    """
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path or "/")
    return Dataset(namespace="https://rivya.ai", name=f"/files/{url}")


def item_datasets(items: Iterable[Mapping[str, Any]]) -> list[Dataset]:
    """Name reference media items (wire form: ``url`` or ``id``) as datasets."""
    found = (item.get("url") or item.get("id") for item in items)
    return [url_dataset(str(value)) for value in found if value]


def run_facet(
    manifest: GenerationManifest | None, *, model: str, known: Mapping[str, Any] | None = None
) -> RivyaGenerationRunFacet:
    """Build the run facet from a returned manifest, else from what the task knew so far.

    :param manifest: the manifest the task returned, if any.
    :param model: the operator's model, when nothing else says which.
    :param known: ``generation_id``, ``status`` and ``origin`` recorded before a failure.
    """
    if manifest is not None:
        return RivyaGenerationRunFacet(
            model=manifest.model,
            generationId=manifest.generation_id,
            status=manifest.status,
            origin=manifest.origin,
            reservedCredits=manifest.reserved_credits,
            chargedCredits=manifest.charged_credits,
        )
    source = known or {}
    return RivyaGenerationRunFacet(
        model=str(source.get("model") or model),
        generationId=source.get("generation_id"),
        status=source.get("status"),
        origin=source.get("origin"),
        reservedCredits=source.get("reserved_credits"),
        chargedCredits=source.get("charged_credits"),
    )


def generation_lineage(
    *,
    inputs: list[Dataset],
    manifest: Any,
    model: str,
    known: Mapping[str, Any] | None = None,
) -> Lineage:
    """Describe one generation: its references in, its results out, and the run facet.

    Outputs are the copied files; without an ``output_path`` or ``output_dir``, the result URLs
    on Rivya.

    :param inputs: the reference files and items.
    :param manifest: the task's return value (a manifest on complete), or ``None`` (on start, on
        failure).
    :param model: the operator's model.
    :param known: what the task recorded before failing (see :func:`run_facet`).
    """
    returned = GenerationManifest.read(manifest)
    outputs: list[Dataset] = []
    if returned is not None:
        outputs = [path_dataset(file.path) for file in returned.files] or [
            url_dataset(url) for url in returned.result_urls
        ]
    return OperatorLineage(
        inputs=inputs,
        outputs=outputs,
        run_facets={RUN_FACET_KEY: run_facet(returned, model=model, known=known)},
    )


def upload_lineage(*, sources: list[str], items: list[Mapping[str, Any]] | None) -> Lineage:
    """Describe an upload: the local or object-store files in, the Rivya files out.

    :param sources: the files as given (paths or URIs).
    :param items: the reference media items the task returned, once it has.
    """
    return OperatorLineage(
        inputs=[path_dataset(s) for s in sources],
        outputs=item_datasets(items or []),
    )


def returned_value(task_instance: Any, cached: Any) -> Any:
    """Return the task's XCom return value: the copy kept in memory, else from XCom.

    :param task_instance: the finished task instance the listener passes.
    :param cached: what the operator kept when it returned, in this process.
    """
    if cached is not None:
        return cached
    try:
        return task_instance.xcom_pull(
            task_ids=task_instance.task_id, map_indexes=task_instance.map_index
        )
    except Exception:  # lineage must never fail the task: no manifest is still an event
        return None
