"""``python -m demo --approve``'s last lines: the table's total, then what the rejections added."""

from __future__ import annotations

from typing import Any

import pytest

from demo.__main__ import approval_lines
from demo.gallery import AssetCard, table

pytestmark = pytest.mark.no_airflow


def summary(credits: list[float], *, rejected: int, spent: float, failed: list[str]) -> Any:
    """A summary.json: one published image per credit count, ``spent`` over every generation."""
    return {
        "published": [f"/out/run/published/asset-{i}.png" for i in range(len(credits))],
        "assets": [
            {"client_request_id": f"asset-{i}", "charged_credits": c} for i, c in enumerate(credits)
        ],
        "rejected": [f"task_r{i}" for i in range(rejected)],
        "failed": failed,
        "credits": spent,
    }


def test_a_retake_is_added_to_the_tables_total_to_make_what_was_spent() -> None:
    # The shipped campaign: 58 credits for the six published images, one 14-credit retake.
    shipped = summary([14, 14, 8, 8, 4, 10], rejected=1, spent=72, failed=[])
    cards = [
        AssetCard(
            name=m["client_request_id"],
            model="m",
            prompt="p",
            params={},
            status="succeeded",
            credits=m["charged_credits"],
        )
        for m in shipped["assets"]
    ]
    total_row = table(cards).splitlines()[-1]

    assert total_row.split() == ["total", "58"]
    assert approval_lines(shipped) == [
        "Approval: 6 images published, 1 rejected; dropped after a second rejection: none",
        "Credits: 58 for the 6 published images (the table's total) + 14 for 1 rejected image = "
        "72 credits in all",
        "Published: /out/run/published",
    ]


def test_an_asset_rejected_twice_is_named_and_both_its_images_are_counted() -> None:
    lines = approval_lines(summary([14, 2.5], rejected=2, spent=36.5, failed=["feed-square"]))

    assert lines[:2] == [
        "Approval: 2 images published, 2 rejected; dropped after a second rejection: feed-square",
        "Credits: 16.5 for the 2 published images (the table's total) + 20 for 2 rejected images "
        "= 36.5 credits in all",
    ]


def test_nothing_rejected_says_the_tables_total_is_all() -> None:
    lines = approval_lines(summary([14], rejected=0, spent=14, failed=[]))

    assert lines == [
        "Approval: 1 image published, 0 rejected; dropped after a second rejection: none",
        "Credits: 14 in all (the table's total; no image was rejected)",
        "Published: /out/run/published",
    ]
