"""Every page of the app in Chromium at 1280 and 390 px: no horizontal overflow, and a screenshot of each.

The pages are enumerated from the app's own routes (a new page is covered, or this file fails). Screenshots go to a
temporary folder; ``pytest tests/test_pages_layout.py --update-screenshots`` writes the committed copies in
docs/screenshots/ instead. Beside the sweep: the reference-page checks of issue 13 (drug summary above the fold,
the approvals table's last column reachable, the pathway diagram, readable checker options, unclipped IC50 labels).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Route

from test_browser import CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (.ci/run installs Debian's chromium)")

WIDTHS = {1280: 900, 390: 844}  # desktop, and a phone's viewport (CSS px)
NOT_PAGES = ("/openapi.json",)  # GET routes that answer JSON, not a page
REDIRECTS = {"/drugs": "/approvals"}  # routes that send the reader to another page (checked, not photographed)
API_PREFIXES = ("/api/", "/cds-services", "/static")


def page_routes() -> list[str]:
    """The app's GET routes that render a page (JSON API, CDS Hooks and static files excluded)."""
    from jakinib.web.app import create_app

    paths = []
    for route in create_app().routes:
        if isinstance(route, Route) and "GET" in (route.methods or ()) and route.path not in NOT_PAGES \
                and not route.path.startswith(API_PREFIXES):
            paths.append(route.path)
    return sorted(set(paths) - set(REDIRECTS))


SAMPLES = {"/drugs/{name}": None, "/search": ["/search?q=zoster"], "/approvals": ["/approvals", "/approvals?regulator=EMA"],
           "/jak-inhibitors": ["/jak-inhibitors", "/jak-inhibitors?region=EMA"]}
PHOTOGRAPHED_DRUG = "/drugs/upadacitinib"


def urls_for(path: str, kb) -> list[str]:
    """Real URLs for a route: every drug for ``/drugs/{name}``; a route with another parameter fails the sweep."""
    if path == "/drugs/{name}":
        return [f"/drugs/{d}" for d in kb.drugs]
    assert "{" not in path, f"{path}: add sample values for its parameters to SAMPLES in tests/test_pages_layout.py"
    return SAMPLES.get(path) or [path]


def _sweep(kb) -> list[tuple[str, bool]]:
    """(url, photograph it?): every URL of every page route; one screenshot per route (one drug page)."""
    out = []
    for path in page_routes():
        urls = urls_for(path, kb)
        out += [(u, u == PHOTOGRAPHED_DRUG if path == "/drugs/{name}" else i == 0) for i, u in enumerate(urls)]
    return out


def _shot_name(url: str) -> str:
    name = re.sub(r"[/?=&]+", "-", url.strip("/")) or "home"
    return re.sub(r"[^a-zA-Z0-9-]", "", name)


@pytest.fixture(scope="module", params=sorted(WIDTHS), ids=lambda w: f"{w}px")
def viewport(request, browser):
    width = request.param
    ctx = browser.new_context(viewport={"width": width, "height": WIDTHS[width]})
    pg = ctx.new_page()
    pg.width = width
    yield pg
    ctx.close()


def test_the_sweep_covers_every_page_route(kb):
    routes = page_routes()
    for expected in ("/", "/drugs/{name}", "/approvals", "/pathways", "/check", "/simulate", "/jak-inhibitors", "/compare"):
        assert expected in routes
    urls = _sweep(kb)
    assert len([u for u, _ in urls if u.startswith("/drugs/")]) == len(kb.drugs)
    assert sum(shoot for _, shoot in urls) == len(routes)  # one screenshot per page route


def test_redirect_routes_land_on_a_page(server):
    import httpx

    for path, target in REDIRECTS.items():
        r = httpx.get(server.url + path)
        assert r.status_code == 303 and r.headers["location"] == target


def test_no_page_overflows_and_each_is_photographed(server, viewport, kb, screenshot_dir):
    overflowing = {}
    for url, photograph in _sweep(kb):
        response = viewport.goto(server.url + url)
        assert response is not None and response.ok, url
        wide = viewport.evaluate("document.scrollingElement.scrollWidth")
        if wide > viewport.evaluate("innerWidth"):
            overflowing[url] = wide
        if url.startswith("/drugs/"):  # every drug page opens with its summary on the first screen
            top = viewport.locator("#summary-h").bounding_box()
            assert top and top["y"] + top["height"] <= viewport.evaluate("innerHeight"), url
        if photograph:
            viewport.screenshot(path=str(screenshot_dir / f"page-{_shot_name(url)}-{viewport.width}.png"))
    # The checker's result is a page too (POST /check).
    viewport.goto(server.url + "/check")
    viewport.fill("#age", "68")
    viewport.click("#run-check")
    viewport.wait_for_selector("#report")
    if viewport.evaluate("document.scrollingElement.scrollWidth") > viewport.evaluate("innerWidth"):
        overflowing["POST /check"] = viewport.evaluate("document.scrollingElement.scrollWidth")
    viewport.screenshot(path=str(screenshot_dir / f"page-check-result-{viewport.width}.png"))
    assert not overflowing, f"wider than {viewport.width} px: {overflowing}"
    assert len(list(screenshot_dir.glob(f"page-*-{viewport.width}.png"))) == len(page_routes()) + 1


def test_drug_summary_is_above_the_fold(server, viewport):
    viewport.goto(server.url + "/drugs/upadacitinib?region=FDA")
    fold = viewport.evaluate("innerHeight")
    heading = viewport.locator("#summary-h").bounding_box()
    boxed = viewport.locator("#summary .boxed").first.bounding_box()
    assert heading and heading["y"] + heading["height"] <= fold
    assert boxed and boxed["y"] < fold  # the boxed warning starts on the first screen
    assert "Serious infections" in viewport.locator("#summary .boxed").first.inner_text()
    if viewport.width >= 1280:  # on a desktop the whole warning and the approved indications start on screen one
        assert boxed["y"] + boxed["height"] <= fold
        assert viewport.locator("#glance-indications").bounding_box()["y"] < fold
    indications = viewport.locator("#glance-indications tbody th").all_inner_texts()
    assert "Atopic dermatitis" in indications and "Rheumatoid arthritis" in indications
    assert viewport.locator("#glance-checks li").count() >= 2
    toc = viewport.locator("nav.toc a").all_inner_texts()
    assert any("FDA label" in t for t in toc)
    for href in viewport.locator("nav.toc a").evaluate_all("els => els.map(e => e.getAttribute('href'))"):
        assert viewport.locator(href).count() == 1, href  # every entry of the contents lands on a section


def test_region_choice_is_remembered_across_pages(server, browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.goto(server.url + "/drugs/baricitinib")
    assert pg.locator("#region").input_value() == "FDA"  # the server's default when nothing is remembered
    pg.select_option("#region", "EMA")
    pg.wait_for_url(re.compile(r"region=EMA"))
    pg.goto(server.url + "/drugs/upadacitinib")  # no ?region=: the choice comes from the cookie
    assert pg.locator("#region").input_value() == "EMA"
    assert pg.locator("#summary-h").inner_text() == "At a glance in European Union (EMA)"
    pg.goto(server.url + "/jak-inhibitors")
    assert pg.locator("#region-name").inner_text() == "European Union (EMA)"
    pg.goto(server.url + "/check")
    assert pg.locator("#regulator").input_value() == "EMA"
    pg.select_option("#regulator", "TGA")  # a checker run under another regulator is remembered too
    pg.fill("#age", "50")
    pg.click("#run-check")
    pg.wait_for_selector("#report")
    pg.goto(server.url + "/drugs/upadacitinib")
    assert pg.locator("#region").input_value() == "TGA"
    ctx.close()
    fresh = browser.new_context()
    pg = fresh.new_page()
    pg.goto(server.url + "/drugs/upadacitinib")
    assert pg.locator("#region").input_value() == "FDA"
    pg.goto(server.url + "/drugs/upadacitinib?region=Narnia")  # an unknown region shows the default, remembers nothing
    assert pg.locator("#region").input_value() == "FDA"
    assert not [c for c in fresh.cookies() if c["name"] == "jakinib_region"]
    pg.goto(server.url + "/drugs/upadacitinib?region=japan")  # a country name resolves like the CLI's --regulator
    assert pg.locator("#region").input_value() == "PMDA"
    assert [c["value"] for c in fresh.cookies() if c["name"] == "jakinib_region"] == ["PMDA"]
    fresh.close()


def test_approvals_table_fits_and_its_last_column_is_reachable(server, viewport, kb):
    viewport.goto(server.url + "/approvals")
    box = viewport.locator("#matrix-scroll")
    frame = box.bounding_box()
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= viewport.width
    heads = viewport.locator("#matrix thead th").all_inner_texts()
    assert heads[-1] == [r for r in ("FDA", "EMA", "TGA", "PMDA", "MHRA", "Medsafe", "HealthCanada", "NMPA") if r in heads][-1]
    box.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    last = viewport.locator("#matrix thead th").last.bounding_box()
    assert last["x"] + last["width"] <= frame["x"] + frame["width"] + 1  # scrolled fully into the box
    first = viewport.locator("#matrix thead th.drug-col").bounding_box()
    assert abs(first["x"] - frame["x"]) <= 2  # the drug column stays in view (sticky)
    cells = " ".join(viewport.locator("#matrix tbody").all_inner_texts())
    products = [p.id for d in kb.drugs.values() for p in d.products]
    assert not [p for p in products if re.search(rf"\b{re.escape(p)}\b", cells)]  # brands, not product ids
    assert "Rinvoq" in cells and "Olumiant" in cells


def test_approvals_filtered_hides_empty_columns_and_counts_match(server, viewport):
    viewport.goto(server.url + "/approvals?regulator=EMA")
    assert viewport.locator("#matrix thead th").all_inner_texts() == ["Drug", "Indication", "EMA"]
    rows = viewport.locator("#matrix tbody tr").count()
    drugs = viewport.locator("#matrix tbody th.drug-col").all_inner_texts()
    assert int(viewport.locator("#count-rows").inner_text()) == rows > 0
    assert int(viewport.locator("#count-drugs").inner_text()) == len(drugs) == len(set(drugs))  # each drug named once
    assert int(viewport.locator("#count-decisions").inner_text()) == viewport.locator("#matrix .entry").count()
    viewport.goto(server.url + "/approvals?regulator=EMA&indication=alopecia-areata")
    assert viewport.locator("#matrix thead th").all_inner_texts() == ["Drug", "Indication", "EMA"]
    assert int(viewport.locator("#count-rows").inner_text()) == viewport.locator("#matrix tbody tr").count()


def test_pathway_diagram_is_built_from_the_knowledge_base(server, viewport, kb):
    from jakinib.pharmacology.simulate import simulate

    viewport.goto(server.url + "/pathways")
    svg = viewport.locator("#pathway-diagram")
    assert svg.count() == 1
    rows = viewport.locator("#pathway-diagram g.pathway")
    assert rows.evaluate_all("els => els.map(e => e.dataset.cytokine)") == [p.cytokine for p in kb.pathways]
    epo = viewport.locator('#pathway-diagram g.pathway[data-cytokine="EPO"]').text_content()
    assert "JAK2" in epo and "STAT5" in epo
    sim = simulate(kb, "tofacitinib")
    expected = {p.cytokine: p.avg_inhibition_pct for p in sim.pathways if p.avg_inhibition_pct is not None}
    shown = viewport.locator('#pathway-diagram g.inhibition[data-drug="tofacitinib"]').evaluate_all(
        "els => els.map(e => [e.parentElement.dataset.cytokine, Number(e.dataset.pct)])")
    assert shown and {c: round(v, 1) for c, v in shown} == {c: round(v, 1) for c, v in expected.items()}
    frame = viewport.locator("#diagram").bounding_box()
    assert frame["x"] + frame["width"] <= viewport.width  # a wide diagram scrolls inside its frame


def test_article_dates_do_not_wrap(server, viewport):
    viewport.goto(server.url + "/jak-inhibitors?region=FDA")
    lines = viewport.locator("#region-approvals time").evaluate_all("els => els.map(e => e.getClientRects().length)")
    assert lines and set(lines) == {1}


def test_checker_screening_options_are_readable(server, viewport, kb):
    viewport.goto(server.url + "/check")
    labels = viewport.locator("fieldset label:has(select[id^=screen_])").evaluate_all(
        "els => els.map(e => e.firstChild.textContent.trim())")
    assert labels and not [x for x in labels if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", x)]  # no raw slugs
    assert "Hepatitis B" in labels
    zoster = viewport.locator("#screen_zoster-vaccine option").all_inner_texts()
    assert zoster == ["not done", "done"]
    tb = viewport.locator("#screen_tuberculosis option").all_inner_texts()
    assert "negative" in tb and "positive" in tb and "done" not in tb
    viewport.select_option("#drug", "upadacitinib")
    viewport.fill("#age", "40")
    viewport.click("#run-check")
    missing = [t.removeprefix("☐").strip() for t in viewport.locator("#assessment-upadacitinib .checklist li").all_inner_texts()]
    assert "Hepatitis B" in missing and not [t for t in missing if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", t)]
    monitoring = viewport.locator("#assessment-upadacitinib details li").all_text_contents()
    assert monitoring and not [t for t in monitoring if re.search(r"\b[a-z]+-[a-z]+:", t)]  # test names, not slugs


def test_simulator_ic50_labels_are_not_clipped(server, viewport):
    viewport.goto(server.url + "/simulate")
    viewport.wait_for_selector("#sim-plot svg")
    overflow = viewport.locator("#sim-plot svg").evaluate(
        """svg => { const w = svg.viewBox.baseVal.width;
                    return [...svg.querySelectorAll('text')].map(t => t.getBBox()).filter(b => b.x + b.width > w + 0.5).length; }""")
    assert overflow == 0
    assert viewport.locator("#sim-plot svg text", has_text="IC50").count() >= 1
