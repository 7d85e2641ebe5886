"""Issue 11 item 10 on the pages: the verification grade beside every checker finding, and where two independent
copies agree or differ (and which one jakinib follows), over real HTTP against a running server."""

from __future__ import annotations

import html
import re

import httpx

from jakinib.knowledge import schema

PATIENT = {"age": 70, "smoking": "current", "labs": {"crcl": 40, "anc": 0.8}, "medications": ["ketoconazole"]}
FORM = {"regulator": "FDA", "drug": "tofacitinib", "indication": "ulcerative-colitis", "age": "70", "smoking": "current",
        "lab_crcl": "40", "lab_anc": "0.8", "medications": "ketoconazole"}
GRADE = re.compile(r'<span class="grade grade-(\w+)" title="verification grade: [^"]+">(\w+)</span>')


def _findings(page: str, drug: str) -> list[str]:
    article = page.split(f'id="assessment-{drug}"')[1].split("</article>")[0]
    block = article.split('<ul class="findings">')[1].split("</ul>")[0]
    return re.findall(r"<li>(.*?)</li>", block)


def test_check_page_shows_the_grade_beside_every_finding(server):
    api = httpx.post(server.url + "/api/v1/check", params={"drug": "tofacitinib", "regulator": "FDA",
                                                           "indication": "ulcerative-colitis"}, json=PATIENT).json()
    expected = [(f["message"], f["grade"]) for f in api["assessments"][0]["findings"]]
    page = httpx.post(server.url + "/check", data=FORM)
    assert page.status_code == 200, page.text[:300]
    items = _findings(page.text, "tofacitinib")
    assert len(items) == len(expected) >= 5
    for li, (message, grade) in zip(items, expected, strict=True):
        assert html.escape(message, quote=True) in li or message in html.unescape(li)
        shown = GRADE.findall(li)
        assert shown == [(grade, grade)], (message, shown)
    assert {g for _, g in expected} <= set(schema.GRADES) and len({g for _, g in expected}) >= 2


def test_a_fact_confirmed_by_a_second_copy_is_marked_and_others_are_not(server, kb):
    """The approvals table: a cell whose sources name an independent copy that agrees carries a 'confirmed' mark."""
    from jakinib.knowledge import provenance

    page = httpx.get(server.url + "/approvals", params={"drug": "tofacitinib"}).text
    cells = re.findall(r'<span class="entry"[^>]*>(.*?)</span>(?=<span class="entry"|</td>)', page, re.S)
    marked = [c for c in cells if 'class="confirmed"' in c]
    assert marked and len(marked) < len(cells)
    rows = kb.approvals(drug="tofacitinib")
    assert sum(provenance.confirmed(kb.sources, r.approval.sources) for r in rows) == len(marked)


def test_references_say_which_copies_agree_and_which_was_followed(server):
    toz = httpx.get(server.url + "/drugs/tofacitinib", params={"region": "FDA"}).text
    ref = next(li for li in re.findall(r'<li id="ref-\d+">(.*?)</li>', toz, re.S) if "[xeljanz-fda-uc-2018;" in li)
    assert "Agrees with an independent copy: Transcription of the US PI for XELJANZ" in html.unescape(ref)
    assert GRADE.search(ref)
    upa = httpx.get(server.url + "/drugs/upadacitinib", params={"region": "FDA"}).text
    ref = next(li for li in re.findall(r'<li id="ref-\d+">(.*?)</li>', upa, re.S) if "[rinvoq-fda-pjia-2024;" in li)
    assert re.search(r"Differs from Drugs@FDA \(openFDA\) NDA 218347 RINVOQ LQ[^<]*, which jakinib follows\.",
                     html.unescape(ref)), ref


def test_review_prints_what_agrees_and_what_differs(cli):
    out = cli("kb", "review", "--drug", "tofacitinib", "--regulator", "FDA").out
    assert "xeljanz-fda-uc-2018 (checked" in out and "confirmed by xeljanz-fda-2018-label-copy" in out
    (row,) = cli("kb", "review", "--drug", "tofacitinib", "--regulator", "FDA", "--json").json()
    assert row["confirmed"] >= 1
    uc = next(s for s in row["sources"] if s["id"] == "xeljanz-fda-uc-2018")
    assert uc["confirmed_by"] == ["xeljanz-fda-2018-label-copy"]
