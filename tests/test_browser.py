"""Pages in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium; never a downloaded browser).

The first-time-user path (home -> drug -> approvals in their country -> checker result) is walked with
screenshots kept in test-artifacts/screenshots/ (``--update-screenshots`` writes the copies in docs/screenshots/).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urljoin, urlparse

import html5lib
import httpx
import pytest

CHROMIUM = os.environ.get("JAKINIB_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("JAKINIB_SCREENSHOTS", Path(__file__).parents[1] / "test-artifacts" / "screenshots"))
PAGES = ["/", "/jak-inhibitors", "/jak-inhibitors?region=EMA", "/drugs/upadacitinib", "/drugs/ruxolitinib?region=FDA",
         "/approvals", "/approvals?indication=alopecia-areata", "/compare", "/check", "/pathways", "/simulate", "/search?q=zoster"]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (.ci/run installs Debian's chromium)")


@pytest.fixture
def page(browser, request, screenshot_dir):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.errors = errors
    pg.shots = screenshot_dir if request.config.getoption("--update-screenshots") else SHOTS
    yield pg
    ctx.close()


def shot(page, name: str) -> None:
    page.shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(page.shots / f"{name}.png"), full_page=False)


def test_first_time_user_path(server, page):
    page.goto(server.url + "/")
    shot(page, "1-home")
    page.fill("#q2", "Rinvoq")
    page.click(".big-search button")
    page.wait_for_url(re.compile(r"/drugs/upadacitinib"))
    assert page.locator("h1").inner_text().startswith("upadacitinib")
    shot(page, "2-drug")
    page.select_option("#region", "EMA")
    page.wait_for_url(re.compile(r"region=EMA"))
    headings = page.locator("#approvals ~ h3").all_inner_texts()
    assert "European Union (EMA)" in headings and "United States (FDA)" not in headings
    shot(page, "3-drug-approvals-eu")
    page.click("text=Check a patient for upadacitinib")
    page.wait_for_url(re.compile(r"/check\?drug=upadacitinib"))
    page.select_option("#regulator", "EMA")
    page.select_option("#indication", "atopic-dermatitis")
    page.fill("#age", "68")
    page.select_option("#sex", "male")
    page.select_option("#smoking", "current")
    page.fill("#lab_alc", "1.5")
    page.fill("#lab_anc", "3.2")
    page.fill("#lab_hb", "14")
    page.select_option("#screen_tuberculosis", "negative")
    page.select_option("#screen_hepatitis-b", "negative")
    page.select_option("#screen_hepatitis-c", "negative")
    page.click("#run-check")
    page.wait_for_selector("#assessment-upadacitinib")
    status = page.locator("#assessment-upadacitinib .status").first.inner_text()
    assert status == "Avoid"  # EU: >= 65 and a current smoker: only if no suitable alternative
    assert page.locator("#assessment-upadacitinib .findings li").count() >= 1  # every status comes with its findings
    shot(page, "4-checker-result")
    assert not page.errors


def test_region_switch_changes_the_article(server, page):
    page.goto(server.url + "/jak-inhibitors?region=FDA")
    fda = page.locator("#region-approvals tbody tr").all_inner_texts()
    page.select_option("#region", "EMA")
    page.wait_for_url(re.compile(r"region=EMA"))
    assert page.locator("#region-name").inner_text() == "European Union (EMA)"
    ema = page.locator("#region-approvals tbody tr").all_inner_texts()
    assert fda and ema and fda != ema
    shot(page, "5-article-eu")


def test_checker_form_shows_a_unit_error(server, page):
    page.goto(server.url + "/check")
    page.fill("#age", "40")
    page.fill("#lab_hb", "125")
    page.click("#run-check")
    assert "g/L" in page.locator("#check-error").inner_text()


def test_simulation_shows_its_plot(server, page):
    page.goto(server.url + "/simulate")
    options = page.locator("#sim-drug option").all_inner_texts()
    assert options
    page.click("#run-sim")
    page.wait_for_selector("#simulation, #sim-error")
    if page.locator("#sim-error").count():
        pytest.fail(page.locator("#sim-error").inner_text())
    assert page.locator("#sim-plot svg").count() == 1
    shot(page, "6-simulation")


@pytest.mark.parametrize("path", PAGES)
def test_page_is_valid_html_light_and_its_links_work(server, path):
    r = httpx.get(server.url + path)
    assert r.status_code == 200
    assert len(r.content) < 300_000
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    parser.parse(r.text)
    links = set(re.findall(r'href="([^"#]+)', r.text)) | set(re.findall(r'src="([^"]+)', r.text))
    for link in sorted(links):
        url = urljoin(server.url + path, link)
        if urlparse(url).netloc != urlparse(server.url).netloc:
            continue
        assert httpx.get(url, follow_redirects=True).status_code == 200, link


def test_checker_reads_an_uploaded_bundle(server, page, tmp_path):
    """The uploaded FHIR Bundle is the patient: the example bundle's 67-year-old smoker is 'Avoid' under EMA."""
    page.goto(server.url + "/check?drug=baricitinib")
    page.select_option("#regulator", "EMA")
    page.set_input_files("#bundle", str(Path(__file__).parents[1] / "examples" / "bundle.json"))
    page.click("#run-check")
    page.wait_for_selector("#assessment-baricitinib")
    assert page.locator("#assessment-baricitinib .status").first.inner_text() == "Avoid"
    bad = tmp_path / "not-a-bundle.json"
    bad.write_bytes(b'{"resourceType": "Bundle", ')
    page.set_input_files("#bundle", str(bad))
    page.click("#run-check")
    error = page.locator("#check-error").inner_text()
    assert "not-a-bundle.json" in error and "malformed JSON" in error
    assert page.locator("#report").count() == 0
    assert not [e for e in page.errors if "status of 400" not in e]  # the refused upload is answered with 400


def test_docs_render_offline(server, browser):
    """Swagger UI renders from jakinib's own assets; any request to another host is blocked and fails the test."""
    ctx = browser.new_context()
    foreign: list[str] = []

    def gate(route):
        if urlparse(route.request.url).netloc != urlparse(server.url).netloc:
            foreign.append(route.request.url)
            return route.abort()
        return route.continue_()

    ctx.route("**/*", gate)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.goto(server.url + "/docs")
    pg.wait_for_selector(".opblock-summary-path")
    assert pg.locator(".opblock-summary-path").count() >= 10
    ctx.close()
    assert not foreign and not errors, (foreign, errors)
