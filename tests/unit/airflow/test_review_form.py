"""The approval example's review form: what a reviewer reads for a first image and for a retake.

The form is markdown that Airflow's UI renders (at most 300 px wide for an image, raw HTML
dropped), so the image links to the full-size file, and the form names no server path.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import pytest

from tests.airflow.examples import EXAMPLE_DAGS_DIR

URL = "https://cdn.example/r/hero.png"


@pytest.fixture(scope="module")
def approval() -> ModuleType:
    """The example DAG file, imported as a module (its helpers need no DAG run)."""
    spec = importlib.util.spec_from_file_location(
        "approval_example_forms", EXAMPLE_DAGS_DIR / "rivya_marketing_approval.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest(**changes: Any) -> dict[str, Any]:
    return {
        "client_request_id": "hero-banner",
        "primary_url": URL,
        "prompt": "A lighthouse at dawn",
        "model": "flux-2-flex",
        "params": {"aspect_ratio": "16:9"},
        "charged_credits": 14,
        "generation_id": "task_1",
        "files": [{"path": "/srv/airflow/out/2026-12-07/run/hero-banner/task_1-0.png"}],
        **changes,
    }


def test_the_first_form_links_the_image_full_size_names_no_path_and_says_what_reject_does(
    approval: ModuleType,
) -> None:
    form = approval.review_form(manifest())

    assert form["subject"] == "hero-banner: publish this image?"
    body = form["body"]
    # The image itself is the link, and a plain link below says so.
    assert body.startswith(f"[![hero-banner]({URL})]({URL})\n\n[Open the full-size image]({URL})")
    assert "/srv/airflow" not in body
    assert "task_1-0.png" not in body
    assert "Saved as" not in body
    assert "**Prompt:** A lighthouse at dawn" in body
    assert "**Credits:** 14" in body
    assert body.endswith(
        "**Approve** publishes this image. **Reject** generates a new one once (charged again) "
        "and asks you about it; a second Reject drops the asset from this run."
    )
    assert "Second attempt" not in body


def test_the_retake_form_says_it_is_the_second_attempt_and_that_reject_drops_the_asset(
    approval: ModuleType,
) -> None:
    form = approval.review_form(manifest(generation_id="task_2"), retake=True)

    # The part before ":" names the asset (the map index and the reviewer read it).
    assert form["subject"] == "hero-banner: second attempt, publish this image?"
    body = form["body"]
    assert body.startswith("**Second attempt: the first image was rejected.**\n\n")
    assert f"[![hero-banner]({URL})]({URL})" in body
    assert (
        "**Reject** drops the asset: nothing of it is published in this run, it is not generated "
        "again, and the run's summary.json lists it under `failed`."
    ) in body
    assert "generates a new one" not in body
    assert "/srv/airflow" not in body


def test_a_generation_without_an_image_url_says_so(approval: ModuleType) -> None:
    body = approval.review_form(manifest(primary_url=None))["body"]

    assert body.startswith("*Rivya returned no image URL for this generation.*")
    assert "](None)" not in body
