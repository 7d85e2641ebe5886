"""Search: a set of real queries with the result a clinician expects in the top 3, snippets, typos, odd input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# (query, kind, id pattern): the expected hit must be among the first three.
QUERIES = [
    # brands and research codes
    ("Rinvoq", "drug", "upadacitinib"), ("Olumiant", "drug", "baricitinib"), ("Xeljanz XR", "drug", "tofacitinib"),
    ("Cibinqo", "drug", "abrocitinib"), ("Litfulo", "drug", "ritlecitinib"), ("Sotyktu", "drug", "deucravacitinib"),
    ("Jyseleca", "drug", "filgotinib"), ("Opzelura", "drug", "ruxolitinib"), ("Jakavi", "drug", "ruxolitinib"),
    ("Inrebic", "drug", "fedratinib"), ("Vonjo", "drug", "pacritinib"), ("Omjjara", "drug", "momelotinib"),
    ("Leqselvi", "drug", "deuruxolitinib"), ("Corectim", "drug", "delgocitinib"), ("Smyraf", "drug", "peficitinib"),
    ("LY3009104", "drug", "baricitinib"), ("PF-04965842", "drug", "abrocitinib"), ("CTP-543", "drug", "deuruxolitinib"),
    ("CP-690,550", "drug", "tofacitinib"), ("ABT-494", "drug", "upadacitinib"),
    # indications, by name and by the abbreviations clinicians use
    ("vitiligo", "drug", "ruxolitinib"), ("vitiligo", "indication", "vitiligo"), ("AD", "indication", "atopic-dermatitis"),
    ("eczema", "indication", "atopic-dermatitis"), ("hand eczema", "indication", "chronic-hand-eczema"),
    ("hand eczema", "drug", "delgocitinib"), ("alopecia areata", "indication", "alopecia-areata"),
    ("RA", "indication", "rheumatoid-arthritis"), ("psoriatic arthritis", "indication", "psoriatic-arthritis"),
    ("crohn", "drug", "upadacitinib"), ("myelofibrosis", "drug", "fedratinib"), ("polycythemia vera", "drug", "ruxolitinib"),
    ("GVHD", "drug", "ruxolitinib"), ("covid", "drug", "baricitinib"), ("psoriasis", "drug", "deucravacitinib"),
    # safety topics
    ("herpes zoster", "class-fact", "herpes-zoster"), ("shingles", "class-fact", "herpes-zoster"),
    ("TB", "screening", r".*:tuberculosis"), ("hepatitis B", "screening", r".*:hepatitis-b"),
    ("pregnancy", "pregnancy", r".*:pregnancy"), ("breastfeeding", "pregnancy", r".*:breastfeeding"),
    ("lymphoma", "class-fact", "t-cell-lymphoma"), ("MACE", "boxed-warning", r".*:boxed"),
    ("live vaccine", "rule", r".*live-vaccines"), ("probenecid", "rule", r"baricitinib\..*oat3.*"),
    ("ketoconazole", "rule", r".*strong-cyp3a4.*"), ("lipids", "warning", r".*:lipids"),
    # mechanism and the class
    ("TYK2", "drug", "deucravacitinib"), ("JAK3", "drug", "ritlecitinib"), ("jakinibs", "class-fact", "definition"),
    ("cost", "class-fact", "cost"), ("cream", "drug", "ruxolitinib"),
    # typos and prefixes
    ("upadacitnib", "drug", "upadacitinib"), ("baricitinb", "drug", "baricitinib"), ("rinv", "drug", "upadacitinib"),
]


@pytest.mark.parametrize(("query", "kind", "pattern"), QUERIES, ids=[f"{q}->{i}" for q, _, i in QUERIES])
def test_query_finds_expected_in_top_three(kb, query, kind, pattern):
    top = [(h["kind"], h["id"]) for h in kb.search(query)[:3]]
    assert any(k == kind and re.fullmatch(pattern, i) for k, i in top), f"{query!r}: top 3 were {top}"


def test_query_set_is_large_enough():
    assert len({q for q, _, _ in QUERIES}) >= 40


def test_herpes_zoster_reaches_every_drug_whose_label_discusses_it(kb):
    drugs = {h["url"].split("/")[2].split("#")[0] for h in kb.search("herpes zoster", limit=50) if h["url"].startswith("/drugs/")}
    assert {"tofacitinib", "ruxolitinib", "baricitinib", "upadacitinib"} <= drugs


def test_an_exact_name_comes_first(kb):
    for name, drug in [("Olumiant", "baricitinib"), ("olumiant", "baricitinib"), ("INCB028050", "baricitinib"), ("tofacitinib", "tofacitinib")]:
        first = kb.search(name)[0]
        assert (first["kind"], first["id"], first["exact"]) == ("drug", drug, True)


def test_snippets_are_cut_at_word_boundaries_and_marked(kb):
    texts = {d.body for d in kb._search_index.docs}  # the indexed text each snippet is cut from
    hits = [h for h in kb.search("herpes zoster", limit=50) if h["kind"] == "warning"]
    assert hits
    for h in hits:
        assert "<mark>" in h["snippet_html"], h
        core = h["snippet"].strip("…")
        assert any(core in t for t in texts), f"snippet not a run of whole words from the label text: {h['snippet']!r}"
        for t in texts:
            at = t.find(core)
            if at >= 0:
                before, after = t[at - 1:at] if at else "", t[at + len(core):at + len(core) + 1]
                assert not (before.isalnum() or after.isalnum()), f"snippet cuts a word: {h['snippet']!r}"
                break


def test_snippet_html_escapes_text(kb):
    for h in kb.search("hypersensitivity", limit=50):
        assert "<" not in h["snippet_html"].replace("<mark>", "").replace("</mark>", "")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_searches_without_error(kb, text):
    hits = kb.search(text)
    assert isinstance(hits, list)
    assert all({"kind", "id", "label", "url", "snippet"} <= set(h) for h in hits)


@pytest.mark.parametrize("text", ['"', "*", "AND", "NEAR(a b)", "a OR", "-", "col:x", "^x", "((", "''"])
def test_fts_syntax_in_queries_is_plain_text(kb, text):
    assert isinstance(kb.search(text), list)
