"""How the OpenLineage datasets and run facet of the operators are named and filled."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from rivya_provider.lineage import (
    RUN_FACET_SCHEMA_URL,
    RivyaGenerationRunFacet,
    generation_lineage,
    path_dataset,
    run_facet,
    upload_lineage,
    url_dataset,
)

HOST = socket.gethostname()


@pytest.mark.parametrize(
    ("source", "namespace", "name"),
    [
        ("/data/in/photo.png", f"file://{HOST}", "/data/in/photo.png"),
        ("file:///data/in/photo.png", f"file://{HOST}", "/data/in/photo.png"),
        ("s3://brand-assets/2026/photo.png", "s3://brand-assets", "2026/photo.png"),
        ("gs://bucket/a/b.webp", "gs://bucket", "a/b.webp"),
        ("s3://aws_marketing@brand-assets/photo.png", "s3://brand-assets", "photo.png"),
    ],
)
def test_files_are_named_by_scheme_and_authority_then_path(
    source: str, namespace: str, name: str
) -> None:
    dataset = path_dataset(source)

    assert (dataset.namespace, dataset.name) == (namespace, name)


def test_rivya_files_are_named_by_their_url_or_id() -> None:
    by_url = url_dataset("https://rivya.ai/cdn/files/file_1/photo.png")
    by_id = url_dataset("file_1")

    assert (by_url.namespace, by_url.name) == ("https://rivya.ai", "/cdn/files/file_1/photo.png")
    assert (by_id.namespace, by_id.name) == ("https://rivya.ai", "/files/file_1")


MANIFEST: dict[str, Any] = {
    "generation_id": "task_1",
    "status": "succeeded",
    "model": "flux-2-flex",
    "origin": "resumed",
    "reserved_credits": 14,
    "charged_credits": 14,
    "result_urls": ["https://rivya.ai/cdn/results/task_1/0.png"],
    "files": [],
}


def test_without_copies_the_outputs_are_the_result_urls() -> None:
    lineage = generation_lineage(inputs=[], manifest=MANIFEST, model="flux-2-flex")

    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("https://rivya.ai", "/cdn/results/task_1/0.png")
    ]
    facet = lineage.run_facets["rivyaGeneration"]
    assert isinstance(facet, RivyaGenerationRunFacet)
    assert (facet.generationId, facet.origin, facet.chargedCredits) == ("task_1", "resumed", 14)
    assert facet._schemaURL == RUN_FACET_SCHEMA_URL


def test_before_a_submission_the_facet_names_only_the_model() -> None:
    facet = run_facet(None, model="flux-kontext-pro", known=None)

    assert (facet.model, facet.generationId, facet.status) == ("flux-kontext-pro", None, None)


def test_an_upload_links_its_files_to_the_rivya_files() -> None:
    lineage = upload_lineage(
        sources=["s3://b/photo.png"], items=[{"url": "https://rivya.ai/cdn/files/f/photo.png"}]
    )

    assert [(d.namespace, d.name) for d in lineage.inputs] == [("s3://b", "photo.png")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("https://rivya.ai", "/cdn/files/f/photo.png")
    ]
