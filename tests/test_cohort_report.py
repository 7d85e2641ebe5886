"""The cohort HTML report opens offline in Chromium (file://, network blocked) with its three charts."""

from __future__ import annotations

import shutil
from pathlib import Path

import html5lib
import pytest

from jakinib.cohort import generate as gen
from jakinib.cohort import report, screen
from test_browser import ARGS, CHROMIUM, SHOTS

TODAY = __import__("datetime").date(2026, 12, 1)
DOC_SHOT = Path(__file__).parents[1] / "docs" / "screenshots" / "cohort-report.png"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (.ci/run installs Debian's chromium)")


@pytest.fixture(scope="module")
def report_file(kb, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    path = gen.write_flat(gen.patients(400, 11, TODAY, kb), d / "c.parquet")
    result = screen.screen(path, kb, regulators=["FDA", "EMA"], today=TODAY)
    out = d / "screen.html"
    out.write_text(report.render(result), encoding="utf-8")
    return out, result


def test_report_is_valid_standalone_html(report_file):
    path, _ = report_file
    text = path.read_text()
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text


def test_report_opens_offline_in_chromium_with_its_charts(report_file, request):
    from playwright.sync_api import sync_playwright

    path, result = report_file
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1200, "height": 1400}, offline=True)
        page = ctx.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        for chart in ("#chart-gaps", "#chart-status", "#chart-overdue"):
            box = page.locator(f"{chart} svg").bounding_box()
            assert box and box["width"] > 300 and box["height"] > 20, chart
            assert page.locator(f"{chart} svg rect.bar").count() > 0, chart
        gaps = result.summary["gaps"]
        assert page.locator("#chart-gaps svg rect.bar").count() == len(gaps)
        assert page.locator("#chart-status svg text").count() == len(result.summary["drugs"])
        assert page.locator("#most-at-risk tbody tr").count() == len(result.summary["most_at_risk"])
        assert requests == [path.as_uri()]
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "cohort-report.png"), full_page=True)
        browser.close()
    if not DOC_SHOT.exists() or request.config.getoption("--update-screenshots"):  # tests leave the tree clean
        shutil.copy(SHOTS / "cohort-report.png", DOC_SHOT)
