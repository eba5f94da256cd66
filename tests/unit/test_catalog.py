"""Local validation of the three documented models: every param, prompt and reference rule."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from rivya_provider.client import (
    CATALOG,
    GenerationRequest,
    GenerationTask,
    ReferenceMediaItem,
    RequestValidationError,
    RivyaFile,
    TaskStatus,
    validate_generation,
)
from rivya_provider.client.catalog.live import catalog_from_models
from rivya_provider.client.catalog.wire import ModelInfo

pytestmark = pytest.mark.no_airflow

KONTEXT = ("flux-kontext-pro", "flux-kontext-max")
IMAGE = {"url": "https://cdn.test/a.png", "kind": "image"}


def check(model: str, params: dict[str, Any], prompt: str | None = "a red kite") -> Any:
    return validate_generation(GenerationRequest(model=model, prompt=prompt, params=params))


def rejected(model: str, params: dict[str, Any], prompt: str | None = "a red kite") -> str:
    with pytest.raises(RequestValidationError) as caught:
        check(model, params, prompt)
    return str(caught.value)


def test_a_model_rivyas_list_lacks_is_refused_with_the_closest_one() -> None:
    listed = catalog_from_models([ModelInfo(id="acme-sketch", display_name="Acme Sketch")])
    typo = GenerationRequest(model="flux-2-flx", prompt="a red kite")
    with pytest.raises(RequestValidationError) as caught:
        validate_generation(typo, catalog=listed)
    assert caught.value.fields == ["model"]
    assert "did you mean 'flux-2-flex'?" in str(caught.value)
    assert "acme-sketch" in str(caught.value)
    # Against the built-in catalogue (/models unread) an unknown model is Rivya's to judge.
    assert validate_generation(typo, catalog=CATALOG) == typo


def test_the_catalogue_holds_the_documented_models_and_credits() -> None:
    assert {m: s.base_credits for m, s in CATALOG.items()} == {
        "flux-2-flex": 14,
        "flux-kontext-pro": 4,
        "flux-kontext-max": 8,
    }
    assert CATALOG["flux-2-flex"].max_reference_images == 8
    assert CATALOG["flux-kontext-pro"].max_reference_images == 1


@pytest.mark.parametrize("ratio", ["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"])
@pytest.mark.parametrize("resolution", ["1K", "2K"])
def test_flex_accepts_every_documented_value(ratio: str, resolution: str) -> None:
    params = {"aspectRatio": ratio, "resolution": resolution}
    assert check("flux-2-flex", params).params == params


@pytest.mark.parametrize(
    ("model", "params", "field", "allowed"),
    [
        ("flux-2-flex", {"aspectRatio": "21:9"}, "params.aspectRatio", "1:1, 4:3, 3:4"),
        ("flux-2-flex", {"resolution": "4K"}, "params.resolution", "1K, 2K"),
        ("flux-kontext-pro", {"aspectRatio": "3:2"}, "params.aspectRatio", "21:9, 16:9"),
        ("flux-kontext-pro", {"outputFormat": "webp"}, "params.outputFormat", "jpeg, png"),
        ("flux-kontext-max", {"enableTranslation": "yes"}, "params.enableTranslation", "true"),
        ("flux-kontext-max", {"promptUpsampling": 1}, "params.promptUpsampling", "false, true"),
        ("flux-kontext-pro", {"safetyTolerance": 7}, "params.safetyTolerance", "0 to 6"),
        ("flux-kontext-pro", {"safetyTolerance": -1}, "params.safetyTolerance", "0 to 6"),
    ],
)
def test_bad_values_name_the_field_the_value_and_what_is_allowed(
    model: str, params: dict[str, Any], field: str, allowed: str
) -> None:
    message = rejected(model, params)
    assert field in message
    assert repr(next(iter(params.values()))) in message
    assert allowed in message
    assert model in message


@pytest.mark.parametrize("model", KONTEXT)
def test_kontext_accepts_every_documented_param(model: str) -> None:
    params = {
        "aspectRatio": "21:9",
        "outputFormat": "png",
        "enableTranslation": "false",
        "promptUpsampling": "true",
        "safetyTolerance": 0,
        "watermark": "ACME",
    }
    assert check(model, params).params == params


@pytest.mark.parametrize(
    ("given", "sent"), [(True, "true"), (False, "false"), ("true", "true"), ("false", "false")]
)
def test_boolean_selects_accept_python_bools_and_send_the_documented_strings(
    given: Any, sent: str
) -> None:
    params = check("flux-kontext-pro", {"enableTranslation": given, "promptUpsampling": given})
    assert params.params == {"enableTranslation": sent, "promptUpsampling": sent}


@pytest.mark.parametrize(("given", "sent"), [(2, 2), (6, 6), (2.5, 2.5), ("3", 3), (0.0, 0)])
def test_safety_tolerance_is_sent_as_a_number(given: Any, sent: float) -> None:
    value = check("flux-kontext-max", {"safetyTolerance": given}).params["safetyTolerance"]
    assert value == sent
    assert type(value) is type(sent)


@pytest.mark.parametrize("bad", [True, "high", None, [2], float("nan")])
def test_safety_tolerance_must_be_a_number(bad: Any) -> None:
    assert "params.safetyTolerance" in rejected("flux-kontext-pro", {"safetyTolerance": bad})


def test_watermark_must_be_text() -> None:
    message = rejected("flux-kontext-pro", {"watermark": 42})
    assert "params.watermark: expected text, got int 42" in message


def test_unknown_params_of_the_built_in_catalogue_are_sent_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The built-in description may be older than Rivya: a new param is Rivya's to judge.
    request = check("flux-2-flex", {"seed": 7, "aspectRatio": "16:9"})
    assert request.params == {"seed": 7, "aspectRatio": "16:9"}
    assert "Param 'seed' is not in the built-in description of flux-2-flex" in caplog.text


def test_unknown_params_of_a_strict_spec_are_rejected_with_a_suggestion() -> None:
    strict = {"flux-2-flex": replace(CATALOG["flux-2-flex"], strict_params=True)}
    with pytest.raises(RequestValidationError) as caught:
        validate_generation(
            GenerationRequest(model="flux-2-flex", prompt="p", params={"aspect_ratio": "1:1"}),
            catalog=strict,
        )
    message = str(caught.value)
    assert "params.aspect_ratio" in message
    assert "did you mean 'aspectRatio'" in message
    assert "known params: aspectRatio, resolution, referenceMediaItems" in message


@pytest.mark.parametrize("prompt", [None, "", "   "])
@pytest.mark.parametrize("model", list(CATALOG))
def test_prompt_is_required(model: str, prompt: str | None) -> None:
    assert "prompt: is required" in rejected(model, {}, prompt)


def test_flex_prompt_limit_is_5000_characters() -> None:
    assert check("flux-2-flex", {}, "x" * 5000).prompt == "x" * 5000
    assert "5001 characters; flux-2-flex allows at most 5000" in rejected(
        "flux-2-flex", {}, "x" * 5001
    )


@pytest.mark.parametrize("model", KONTEXT)
def test_kontext_has_no_documented_prompt_limit(model: str) -> None:
    assert check(model, {}, "y" * 20000).prompt == "y" * 20000


def test_flex_takes_up_to_eight_reference_images() -> None:
    items = [{**IMAGE, "url": f"https://cdn.test/{i}.png"} for i in range(8)]
    assert (
        len(check("flux-2-flex", {"referenceMediaItems": items}).params["referenceMediaItems"]) == 8
    )
    assert "9 items given; flux-2-flex accepts at most 8" in rejected(
        "flux-2-flex", {"referenceMediaItems": [*items, IMAGE]}
    )


@pytest.mark.parametrize("model", KONTEXT)
def test_kontext_takes_one_reference_image(model: str) -> None:
    assert check(model, {"referenceMediaItems": [IMAGE]}).params["referenceMediaItems"] == [IMAGE]
    assert f"2 items given; {model} accepts at most 1" in rejected(
        model, {"referenceMediaItems": [IMAGE, IMAGE]}
    )


def test_reference_items_are_checked_field_by_field() -> None:
    message = rejected(
        "flux-2-flex",
        {
            "referenceMediaItems": [
                {"url": "https://cdn.test/v.mp4", "kind": "video"},
                {"kind": "image"},
                {**IMAGE, "colour": "red"},
            ]
        },
    )
    assert "params.referenceMediaItems[0].kind: video is not accepted; allowed: image" in message
    assert "params.referenceMediaItems[1].url: Field required" in message
    assert "params.referenceMediaItems[2].colour: Extra inputs are not permitted" in message


def test_reference_items_must_be_a_list() -> None:
    assert "expected a list of reference media items, got dict" in rejected(
        "flux-2-flex", {"referenceMediaItems": IMAGE}
    )


def test_reference_items_accept_models_and_uploaded_files() -> None:
    uploaded = RivyaFile.model_validate(
        {
            "file_id": "file_1",
            "url": "https://cdn.test/f.webp",
            "kind": "image",
            "mimeType": "image/webp",
            "name": "f.webp",
        }
    )
    item = uploaded.as_reference()
    params = check("flux-kontext-pro", {"referenceMediaItems": [item]}).params
    assert params["referenceMediaItems"] == [
        {
            "url": "https://cdn.test/f.webp",
            "kind": "image",
            "name": "f.webp",
            "mimeType": "image/webp",
        }
    ]
    assert uploaded.id == "file_1"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(RequestValidationError) as caught:
        check("flux-2-flex", {"resolution": "8K", "aspectRatio": "5:4"}, prompt="")
    assert caught.value.fields == ["prompt", "params.resolution", "params.aspectRatio"]


def test_unknown_models_pass_through_untouched() -> None:
    request = GenerationRequest(model="flux-9", prompt=None, params={"whatever": {"a": 1}})
    assert validate_generation(request) is request


def test_requests_forbid_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="promt"):
        GenerationRequest.model_validate({"model": "flux-2-flex", "promt": "typo"})
    # The 128-character limit is documented for uploads only: generations leave it to Rivya.
    assert GenerationRequest(model="flux-2-flex", client_request_id="x" * 200).client_request_id
    with pytest.raises(ValidationError):
        ReferenceMediaItem.model_validate({"url": "u", "kind": "document"})


def test_task_status_knows_which_states_are_terminal() -> None:
    assert [s.value for s in TaskStatus if s.is_terminal] == ["succeeded", "failed"]


def test_task_result_urls_put_the_primary_first_without_duplicates() -> None:
    task = GenerationTask.model_validate(
        {
            "id": "t",
            "status": "succeeded",
            "model": "m",
            "created_at": "2026-05-11T00:00:00.000Z",
            "updated_at": "2026-05-11T00:00:01.000Z",
            "result": {
                "primary_url": "https://x/1.png",
                "urls": ["https://x/0.png", "https://x/1.png"],
            },
        }
    )
    assert task.result_urls == ["https://x/1.png", "https://x/0.png"]
    assert task.created_at is not None
    assert task.created_at.tzinfo is not None


def test_models_endpoint_entries_describe_params_as_documented() -> None:
    info = CATALOG["flux-kontext-pro"].to_model_info().model_dump()
    tolerance = next(p for p in info["params"] if p["key"] == "safetyTolerance")
    assert tolerance == {
        "key": "safetyTolerance",
        "type": "number",
        "required": False,
        "default": 2,
        "min": 0,
        "max": 6,
        "options": None,
    }
    assert info["base_credits"] == 4
    assert info["file_kinds"] == ["image"]
