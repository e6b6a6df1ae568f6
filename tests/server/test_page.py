"""The web page at /, in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

CI installs chromium with ``scripts/install-chromium.sh``; a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-chromium.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_type_a_query_see_ranked_results(browser, base_url, docs_collection):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base_url}/?collection={docs_collection}")
    page.wait_for_selector(f"#collection option[value='{docs_collection}']", state="attached", timeout=20_000)
    assert page.input_value("#collection") == docs_collection
    page.fill("#query", "which mountain is the tallest in Japan")
    page.click("#go")
    page.wait_for_selector("li.hit", timeout=30_000)
    hits = page.locator("li.hit")
    assert hits.count() == 5
    first = hits.nth(0)
    assert "Fuji" in first.locator(".snippet").inner_text()
    assert first.locator(".source").inner_text() == "docs/d3.txt"
    scores = [float(hits.nth(i).locator(".score").inner_text()) for i in range(hits.count())]
    assert scores == sorted(scores, reverse=True)
    assert "results in" in page.inner_text("#status")
    assert errors == []
    page.close()


def test_image_collection_shows_thumbnails(browser, base_url, image_collection):
    page = browser.new_page()
    page.goto(f"{base_url}/?collection={image_collection}")
    page.wait_for_selector(f"#collection option[value='{image_collection}']", state="attached", timeout=20_000)
    page.fill("#query", "blue picture")
    page.click("#go")
    page.wait_for_selector("li.hit img.thumb", timeout=30_000)
    page.wait_for_function("document.querySelector('li.hit img.thumb').naturalWidth > 0", timeout=20_000)
    assert page.locator("li.hit").nth(0).locator(".source").inner_text().endswith("blue.png")
    page.close()


def test_search_error_is_shown(browser, base_url, docs_collection):
    page = browser.new_page()
    page.goto(f"{base_url}/?collection={docs_collection}")
    page.wait_for_selector(f"#collection option[value='{docs_collection}']", state="attached", timeout=20_000)
    page.click("summary")
    page.fill("#filter", "no_such_column = 1")
    page.fill("#query", "anything")
    page.click("#go")
    page.wait_for_selector("#status.error", timeout=20_000)
    assert "Search failed" in page.inner_text("#status")
    page.close()


def test_search_typed_before_the_collection_list_arrives(browser, base_url, docs_collection):
    """Issue 20: a search submitted while /collections is still on its way waits for the list (it used to answer
    "Pick a collection first." and then show one). The browser holds the list's response until the search is in."""
    page = browser.new_page()
    held: list = []
    page.route("**/collections", lambda route: held.append(route))
    page.goto(f"{base_url}/?collection={docs_collection}")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the page did not ask for /collections"
    page.fill("#query", "which mountain is the tallest in Japan")
    page.click("#go")
    page.wait_for_timeout(300)
    assert "Pick a collection" not in page.inner_text("#status")
    held[0].continue_()
    page.wait_for_selector("li.hit", timeout=30_000)
    assert page.locator("li.hit").nth(0).locator(".source").inner_text() == "docs/d3.txt"
    page.close()
