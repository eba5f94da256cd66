"""End to end: the Rivya UI plugin inside a real api-server, with Airflow's own auth.

One module-scoped deployment (``ui_scenario``) runs three DAGs against the emulator (one with a
person's reviews, answered through the REST API, and a generation that fails); the tests then
ask the plugin's routes, as ``admin``, as ``outsider`` (denied ``rivya_ui_private`` by the test
auth manager) and anonymously, what they show, and try to reach files the manifests do not list.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import pytest

from tests.airflow_compat import airflow_at_least
from tests.e2e.ui_dags.rivya_ui import GALLERY_PROMPTS, PRIVATE_PROMPT
from tests.e2e.ui_scenario import (
    GALLERY,
    LIVE,
    PRIVATE,
    REVIEW,
    RUN_IDS,
    START_CREDITS,
    UiScenario,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not airflow_at_least("3.1"), reason="UI external views need Airflow 3.1+ (3.0 has none)"
    ),
]


def run_path(dag_id: str) -> str:
    return f"/rivya/runs/{dag_id}/{quote(RUN_IDS[dag_id], safe='')}"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiScenario]:
    from tests.e2e.ui_scenario import run_ui_scenario

    with run_ui_scenario(tmp_path_factory.mktemp("ui")) as running:
        yield running


@pytest.fixture(scope="module")
def admin(scenario: UiScenario) -> Iterator[httpx.Client]:
    with scenario.client("admin") as client:
        yield client


@pytest.fixture(scope="module")
def outsider(scenario: UiScenario) -> Iterator[httpx.Client]:
    with scenario.client("outsider") as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(scenario: UiScenario) -> Iterator[httpx.Client]:
    with scenario.client(None) as client:
        yield client


def manifests(client: httpx.Client, dag_id: str) -> list[dict[str, Any]]:
    """The run's manifests as Airflow's REST API serves them, in map-index order."""
    base = f"/api/v2/dags/{dag_id}/dagRuns/{RUN_IDS[dag_id]}/taskInstances/generate"
    count = len(GALLERY_PROMPTS) if dag_id == GALLERY else 1
    found = []
    for map_index in range(count) if dag_id == GALLERY else [-1]:
        response = client.get(f"{base}/xcomEntries/return_value", params={"map_index": map_index})
        response.raise_for_status()
        found.append(response.json()["value"])
    assert len(found) == count
    return found


def test_the_plugin_and_its_views_are_registered(admin: httpx.Client) -> None:
    plugins = admin.get("/api/v2/plugins").raise_for_status().json()["plugins"]
    rivya = next(p for p in plugins if p["name"] == "rivya")
    views = {v["destination"]: v["href"] for v in rivya["external_views"]}
    assert views == {"dag_run": "rivya/runs/{DAG_ID}/{RUN_ID}", "nav": "rivya/overview"}


def test_the_run_view_lists_every_generation(admin: httpx.Client) -> None:
    response = admin.get(run_path(GALLERY))
    assert response.status_code == 200, response.text
    page = response.text
    for prompt in GALLERY_PROMPTS[:2]:
        assert prompt in page
    # The HTML in the third prompt is shown as text.
    assert "Spring sale &lt;b&gt;banner&lt;/b&gt; &amp; &#x27;quotes&#x27;" in page
    assert "<b>banner</b>" not in page
    charged = sum(m["charged_credits"] for m in manifests(admin, GALLERY))
    assert f"3 generation(s), {charged:g} credits charged" in page
    for manifest in manifests(admin, GALLERY):
        assert manifest["generation_id"] in page
    for map_index in range(3):
        assert f"[{map_index}]" in page
    assert page.count('class="shot"') == 3
    assert "script-src" not in response.headers["content-security-policy"]


def test_the_review_board_names_assets_marks_reviews_and_shows_the_failed_generation(
    admin: httpx.Client,
) -> None:
    page = admin.get(run_path(REVIEW)).raise_for_status().text
    # The task instances' rendered map indexes, as Airflow's own pages name them.
    assert page.count('<span class="label">hero-banner</span>') == 2  # first look and retake
    assert page.count('<span class="label">feed-square</span>') == 1
    assert '<span class="label">generate' not in page  # not "generate [0]"
    # The rejected first look names the review that rejected it; its retake was approved.
    assert '<span class="mark mark-rejected" title="Answered in task review [0]">' in page
    assert page.count('<span class="mark mark-retake">retake</span>') == 1
    assert page.count("mark mark-approved") == 2
    # The approved images are the ones the publish step names; the rejected one is not.
    assert page.count('<span class="mark mark-published" title="Published by task publish">') == 2
    # The generation that failed has a card, with no credits.
    assert '<span class="label">broken</span><span class="mark mark-failed">failed</span>' in page
    assert "0 credits · failed" in page
    assert "This run has no Rivya generations" not in page
    assert "http-equiv" not in page  # the run has finished: no reloading


def test_images_are_served_by_manifest_number_with_their_recorded_bytes(
    admin: httpx.Client,
) -> None:
    for index, manifest in enumerate(manifests(admin, GALLERY)):
        (result,) = manifest["files"]
        response = admin.get(f"{run_path(GALLERY)}/files/{index}/0")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == result["content_type"]
        assert hashlib.sha256(response.content).hexdigest() == result["sha256"]


@pytest.mark.parametrize(
    "tail",
    [
        "/files/3/0",  # no fourth generation
        "/files/0/1",  # one file only
        "/files/-1/0",
        "/files/0/..%2F..%2F..%2Fetc%2Fpasswd",
        "/files/..%2F..%2Fairflow.db/0",
        "/files/0/0/../../../../etc/passwd",
    ],
)
def test_nothing_but_listed_files_is_reachable(admin: httpx.Client, tail: str) -> None:
    response = admin.get(f"{run_path(GALLERY)}{tail}")
    assert response.status_code in {404, 422}, response.text
    assert b"root:" not in response.content
    assert b"SQLite format" not in response.content


def test_a_file_changed_after_the_run_is_not_served(
    admin: httpx.Client, scenario: UiScenario
) -> None:
    (result,) = manifests(admin, PRIVATE)[0]["files"]
    path = Path(result["path"].removeprefix("file://"))
    assert admin.get(f"{run_path(PRIVATE)}/files/0/0").status_code == 200
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    try:
        assert admin.get(f"{run_path(PRIVATE)}/files/0/0").status_code == 404
    finally:
        path.write_bytes(original)


def test_anonymous_requests_are_refused(anonymous: httpx.Client) -> None:
    for path in (run_path(GALLERY), f"{run_path(GALLERY)}/files/0/0", "/rivya/overview"):
        response = anonymous.get(path)
        assert response.status_code == 401, (path, response.status_code)
        assert GALLERY_PROMPTS[0] not in response.text


def test_a_forged_token_is_refused(scenario: UiScenario) -> None:
    headers = {"Authorization": "Bearer not.a.token"}
    response = httpx.get(f"{scenario.base_url}{run_path(GALLERY)}", headers=headers)
    assert response.status_code in {401, 403}
    assert GALLERY_PROMPTS[0] not in response.text


def test_a_user_who_may_not_read_the_dag_sees_nothing_of_it(outsider: httpx.Client) -> None:
    for path in (run_path(PRIVATE), f"{run_path(PRIVATE)}/files/0/0"):
        response = outsider.get(path)
        assert response.status_code == 403, (path, response.status_code)
        assert PRIVATE_PROMPT not in response.text
    # The same user reads the other DAG: the denial is per DAG, not per user.
    assert outsider.get(run_path(GALLERY)).status_code == 200
    assert outsider.get(f"{run_path(GALLERY)}/files/0/0").status_code == 200


def run_day(scenario: UiScenario, dag_id: str) -> str:
    """The UTC day of the run's ``run_after``, the day the chart counts its generations on."""
    run_after = scenario.runs[dag_id]["run_after"].replace("Z", "+00:00")
    return datetime.fromisoformat(run_after).astimezone(timezone.utc).date().isoformat()


def dag_link(dag_id: str) -> str:
    return f'<a href="../dags/{dag_id}" title="The DAG in Airflow">{dag_id}</a>'


def test_the_overview_sums_spend_per_readable_dag(
    admin: httpx.Client, outsider: httpx.Client, scenario: UiScenario
) -> None:
    gallery = sum(m["charged_credits"] for m in manifests(admin, GALLERY))
    private = sum(m["charged_credits"] for m in manifests(admin, PRIVATE))
    page = admin.get("/rivya/overview").raise_for_status().text
    row = "<td>{}</td><td class=num>1</td><td class=num>{}</td><td class=num>{:g}</td>"
    assert row.format(dag_link(GALLERY), 3, gallery) in page
    assert row.format(dag_link(PRIVATE), 1, private) in page
    # The chart puts each DAG's credits on the UTC day of its run's run_after.
    assert '<svg class="chart"' in page
    assert page.count('<g class="day">') == 30
    for dag_id, credits in ((GALLERY, gallery), (PRIVATE, private)):
        assert f"<title>{run_day(scenario, dag_id)} · {dag_id}: {credits:g} credits</title>" in page
    hidden = outsider.get("/rivya/overview").raise_for_status().text
    assert GALLERY in hidden
    assert f"· {GALLERY}: {gallery:g} credits</title>" in hidden
    assert PRIVATE not in hidden


def test_a_dag_name_on_the_overview_links_to_the_dags_page_in_airflow(
    admin: httpx.Client,
) -> None:
    page = admin.get("/rivya/overview").raise_for_status().text
    assert dag_link(GALLERY) in page
    # Relative to the credits page, the link is the UI's own route of the DAG.
    target = urljoin("/rivya/overview", f"../dags/{GALLERY}")
    assert target == f"/dags/{GALLERY}"
    response = admin.get(target)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_the_overview_shows_the_live_balance(admin: httpx.Client, scenario: UiScenario) -> None:
    credits = (
        httpx.get(
            f"{scenario.emulator.base_url}/api/v1/credits",
            headers={"Authorization": f"Bearer {scenario.emulator.api_key}"},
        )
        .raise_for_status()
        .json()
    )
    balance = credits["current_credits"]
    assert balance < START_CREDITS  # the four generations were charged
    page = admin.get("/rivya/overview").raise_for_status().text
    assert f"<div class=big>{balance:g}</div>" in page
    assert scenario.emulator.api_key not in page


def _browser_or_skip() -> None:
    pytest.importorskip("playwright", reason="Playwright is not installed (requirements/dev.in)")
    from tests.browser_support import chromium_path

    if chromium_path() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")


def test_the_run_tab_shows_the_generations_in_a_real_browser(scenario: UiScenario) -> None:
    _browser_or_skip()
    from tests.browser_support import browser_page, login
    from tests.e2e.ui_scenario import open_in_ui, run_view_url

    with browser_page() as page:
        login(
            page, base_url=scenario.base_url, username="admin", password=scenario.passwords["admin"]
        )
        frame = open_in_ui(page, run_view_url(scenario, GALLERY), heading="Rivya generations")
        assert frame.locator("article.asset").count() == 3
        # Decoded images of the real size the emulator drew (1:1), not broken placeholders.
        sizes = frame.eval_on_selector_all(
            "img.shot", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])"
        )
        assert len(sizes) == 3
        assert all(width > 0 and width == height for width, height in sizes), sizes
        assert GALLERY_PROMPTS[2] in frame.locator(".board").inner_text()
        assert frame.locator(".board b").count() == 0  # the prompt's <b> stayed text


def test_the_browser_session_cookie_carries_the_same_dag_permissions(
    scenario: UiScenario,
) -> None:
    _browser_or_skip()
    from tests.browser_support import browser_page, login

    with browser_page() as page:
        login(
            page,
            base_url=scenario.base_url,
            username="outsider",
            password=scenario.passwords["outsider"],
        )
        denied = page.goto(f"{scenario.base_url}{run_path(PRIVATE)}")
        assert denied is not None
        assert denied.status == 403
        assert PRIVATE_PROMPT not in page.content()
        allowed = page.goto(f"{scenario.base_url}{run_path(GALLERY)}")
        assert allowed is not None
        assert allowed.status == 200
        assert GALLERY_PROMPTS[0] in page.content()


def test_a_generation_under_way_has_a_card_with_its_credits_reserved_and_the_page_reloads(
    admin: httpx.Client,
) -> None:
    page = admin.get(run_path(LIVE)).raise_for_status().text
    assert '<span class="label">live-banner</span>' in page
    assert '<span class="mark mark-in-progress">in progress</span>' in page
    # flux-2-flex's catalogue price, held while the task waits in the triggerer.
    assert "14 credits reserved · deferred" in page
    assert "0 credits charged, 14 reserved; run running" in page
    assert '<meta http-equiv="refresh" content="10">' in page
    assert 'class="shot"' not in page  # no image yet


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two CSS ``rgb(...)`` colours."""

    def luminance(colour: str) -> float:
        channels = [int(c) / 255 for c in colour[colour.index("(") + 1 : -1].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_review_board_in_a_browser_at_two_widths_light_and_dark(scenario: UiScenario) -> None:
    _browser_or_skip()
    from tests.browser_support import browser_page, login
    from tests.e2e.ui_scenario import open_in_ui, run_view_url

    with browser_page(viewport=(1440, 900)) as page:
        login(
            page, base_url=scenario.base_url, username="admin", password=scenario.passwords["admin"]
        )
        for width in (1440, 1024):
            for scheme in ("light", "dark"):
                page.set_viewport_size({"width": width, "height": 900})
                page.emulate_media(color_scheme=scheme)
                frame = open_in_ui(
                    page, run_view_url(scenario, REVIEW), heading="Rivya generations"
                )
                labels = frame.locator("article.asset .label").all_inner_texts()
                assert sorted(labels) == ["broken", "feed-square", "hero-banner", "hero-banner"]
                assert frame.locator(".mark-rejected").count() == 1
                assert frame.locator(".mark-retake").count() == 1
                assert frame.locator(".mark-failed").inner_text() == "failed"
                assert frame.locator(".mark-published").count() == 2
                # Each image at its own ratio: the 21:9 banner is shown wide, not cropped square.
                ratios = frame.eval_on_selector_all(
                    "img.shot",
                    "imgs => imgs.map(i => [i.naturalWidth / i.naturalHeight,"
                    " i.clientWidth / i.clientHeight])",
                )
                assert len(ratios) == 3
                for natural, shown in ratios:
                    assert abs(natural - shown) < 0.05, ratios
                assert max(natural for natural, _ in ratios) > 2  # the banner
                # Links read against the page's background, in light and dark alike.
                colours = frame.evaluate(
                    "() => [getComputedStyle(document.querySelector('.facts a')).color,"
                    " getComputedStyle(document.body).backgroundColor]"
                )
                assert contrast(*colours) >= 4.5, (scheme, colours)
                # Nothing is cut off at the side.
                overflow = frame.evaluate(
                    "() => [document.scrollingElement.scrollWidth,"
                    " document.scrollingElement.clientWidth]"
                )
                assert overflow[0] <= overflow[1], (width, overflow)
                # Click to enlarge: the full image from the copy, over the page, larger than the
                # card shows it; a click closes it.
                frame.locator("a.enlarge").first.click()
                enlarged = frame.locator(".lightbox:target img")
                enlarged.wait_for(state="visible")
                shown = frame.eval_on_selector(
                    "a.enlarge img", "i => [i.clientWidth, i.clientHeight]"
                )
                big = enlarged.evaluate("i => [i.clientWidth, i.clientHeight, i.naturalWidth]")
                assert big[2] > 0, "the enlarged image did not load"
                assert big[0] > shown[0], (width, shown, big)
                assert big[1] > shown[1], (width, shown, big)
                src = enlarged.get_attribute("src")
                assert src is not None
                full = page.request.get(urljoin(frame.url, src))
                assert full.status == 200
                assert full.headers["content-type"].startswith("image/")
                frame.locator(".lightbox:target").click()
                assert frame.locator(".lightbox:target").count() == 0
                # A generation under way: its card says so, with the credits it holds.
                frame = open_in_ui(page, run_view_url(scenario, LIVE), heading="Rivya generations")
                card = frame.locator("article.asset")
                assert card.locator(".label").all_inner_texts() == ["live-banner"]
                assert card.locator(".mark-in-progress").inner_text() == "in progress"
                assert "14 credits reserved" in card.inner_text()
                overflow = frame.evaluate(
                    "() => [document.scrollingElement.scrollWidth,"
                    " document.scrollingElement.clientWidth]"
                )
                assert overflow[0] <= overflow[1], (width, overflow)


def test_the_credits_page_in_a_browser_at_1024_light_and_dark(scenario: UiScenario) -> None:
    _browser_or_skip()
    from tests.browser_support import browser_page, login
    from tests.e2e.ui_scenario import open_in_ui

    credits_url = f"{scenario.base_url}/plugin/rivya-credits"
    with browser_page(viewport=(1024, 900)) as page:
        login(
            page, base_url=scenario.base_url, username="admin", password=scenario.passwords["admin"]
        )
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            frame = open_in_ui(page, credits_url, heading="Rivya credits")
            chart = frame.locator("svg.chart")
            box = chart.bounding_box()
            assert box is not None
            assert box["width"] > 400, box
            assert box["height"] > 100, box
            assert frame.locator("svg.chart g.day").count() == 30
            assert frame.locator("svg.chart rect.c0, svg.chart rect.c1").count() >= 1
            overflow = frame.evaluate(
                "() => [document.scrollingElement.scrollWidth,"
                " document.scrollingElement.clientWidth]"
            )
            assert overflow[0] <= overflow[1], (scheme, overflow)
            # The axis labels follow the scheme's text colour, readable on its background.
            colours = frame.evaluate(
                "() => [getComputedStyle(document.querySelector('svg.chart text')).fill,"
                " getComputedStyle(document.body).backgroundColor]"
            )
            assert contrast(*colours) >= 4.5, (scheme, colours)
        # The DAG's name opens the DAG's page of the Airflow UI, in the view's frame (Airflow's
        # sandbox lets the frame navigate itself only).
        frame.locator(f"table a:text-is('{GALLERY}')").click()
        frame.wait_for_url(re.compile(rf"/dags/{GALLERY}(/|\?|$)"))
        frame.get_by_text(GALLERY).first.wait_for()
        # The browser's Back (the window's history: the frame's navigation is part of it) returns
        # to the credits page.
        page.evaluate("() => history.back()")
        frame.wait_for_url(re.compile(r"/rivya/overview$"))
