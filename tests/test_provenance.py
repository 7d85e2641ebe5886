"""Provenance you can see: verification grades, what each drug x regulator rests on, sign-offs, coverage (NMPA, PMDA)."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest
import yaml

from jakinib.knowledge import loader, provenance, schema


@pytest.fixture
def data_copy(tmp_path):
    """An editable copy of the bundled data folder."""
    dst = tmp_path / "data"
    shutil.copytree(loader.DATA_DIR, dst)
    return dst


# ---- grades -----------------------------------------------------------------------------------------------
def test_every_source_has_a_grade_and_all_three_are_used(kb):
    grades = {src.grade for src in kb.sources.values()}
    assert grades == set(schema.GRADES)


def test_fact_grade_is_the_best_of_its_sources(kb):
    # the RINVOQ LQ approval date rests on FDA's own Drugs@FDA record (primary) and a news article (secondary)
    assert kb.sources["rinvoq-lq-drugsfda-nda218347"].grade == "primary"
    assert kb.sources["rinvoq-fda-pjia-2024"].grade == "secondary"
    assert kb.grade(["rinvoq-fda-pjia-2024", "rinvoq-lq-drugsfda-nda218347"]) == "primary"
    assert kb.grade(["rinvoq-fda-pjia-2024"]) == "secondary"
    assert kb.grade(["rinvoq-ema-2024#4.2", "rinvoq-fda-pjia-2024"]) == "transcription"


def test_a_source_without_a_grade_is_one_line_exit_2(cli, data_copy):
    path = data_copy / "sources" / "upadacitinib.yaml"
    text = path.read_text()
    path.write_text(re.sub(r"\n  grade: \w+", "", text, count=1))
    r = cli("kb", "validate", "--data-dir", str(data_copy))
    assert r.code == 2 and r.err.count("\n") == 1
    assert "upadacitinib.yaml" in r.err and "grade" in r.err


def test_stats_count_grades_of_sources_and_facts(cli, kb):
    stats = cli("kb", "stats", "--json").json()
    g = stats["grades"]
    assert set(g["sources"]) == set(g["facts"]) == set(schema.GRADES)
    assert sum(g["sources"].values()) == stats["sources"]
    assert all(n > 0 for n in g["facts"].values())
    assert sum(g["facts"].values()) == sum(1 for _ in provenance.all_facts(kb))
    table = cli("kb", "stats").out
    assert re.search(r"facts graded secondary\s*│\s*\d+", table)


def _walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def test_drug_json_shows_a_grade_beside_every_fact(cli, kb):
    d = cli("drug", "Rinvoq", "--json").json()
    graded = 0
    for path, node in _walk(d):
        if isinstance(node.get("sources"), list) and node["sources"]:
            assert node.get("grade") in schema.GRADES, path
            assert node["grade"] == kb.grade(node["sources"]), path
            graded += 1
    assert graded > 100


def test_approvals_table_and_json_show_the_grade(cli):
    rows = cli("approvals", "--drug", "upadacitinib", "--regulator", "FDA", "--json").json()
    assert rows and all(r["grade"] in schema.GRADES for r in rows)
    assert "grade" in cli("approvals", "--drug", "upadacitinib", "--regulator", "FDA").out


def test_api_and_pages_show_the_grade(server):
    rows = httpx.get(server.url + "/api/v1/approvals", params={"drug": "baricitinib", "regulator": "EMA"}).json()
    assert rows and all(r["grade"] in schema.GRADES for r in rows)
    d = httpx.get(server.url + "/api/v1/drugs/baricitinib").json()
    assert d["labels"][0]["grade"] in schema.GRADES
    page = httpx.get(server.url + "/drugs/baricitinib").text
    assert re.search(r'<sup class="cite">.*?</sup><span class="grade grade-(primary|transcription|secondary)"', page)


# ---- agreement and disagreement -------------------------------------------------------------------------
def test_disagreement_names_which_copy_was_followed(kb):
    src = kb.sources["rinvoq-fda-pjia-2024"]
    (dis,) = src.disagrees_with
    assert dis.source == dis.followed == "rinvoq-lq-drugsfda-nda218347"
    lq = [r for r in kb.approvals(drug="upadacitinib", regulator="FDA") if "rinvoq-fda-pjia-2024" in
          {c.partition("#")[0] for c in r.approval.sources}]
    assert lq and all(not (r.approval.date or "").startswith("2023-04") for r in lq)


def test_disagreement_must_follow_one_of_the_two(data_copy, cli):
    path = data_copy / "sources" / "upadacitinib.yaml"
    path.write_text(path.read_text().replace("      followed: rinvoq-lq-drugsfda-nda218347", "      followed: seed", 1))
    r = cli("kb", "validate", "--data-dir", str(data_copy))
    assert r.code == 2 and r.err.count("\n") == 1 and "followed" in r.err


def test_confirmed_by_must_name_a_known_source(data_copy, cli):
    path = data_copy / "sources" / "tofacitinib.yaml"
    path.write_text(path.read_text().replace("confirmed_by: [xeljanz-fda-2018-label-copy]", "confirmed_by: [no-such-copy]", 1))
    r = cli("kb", "validate", "--data-dir", str(data_copy))
    assert r.code == 2 and r.err.count("\n") == 1 and "no-such-copy" in r.err


def test_confirmed_facts_are_marked(kb):
    assert kb.sources["xeljanz-fda-uc-2018"].confirmed_by == ["xeljanz-fda-2018-label-copy"]
    assert provenance.confirmed(kb.sources, ["xeljanz-fda-uc-2018"])
    assert not provenance.confirmed(kb.sources, ["xeljanz-fda-ra-2012"])


# ---- kb review ----------------------------------------------------------------------------------------------
def test_review_one_drug_regulator_json(cli, kb):
    (row,) = cli("kb", "review", "--drug", "Xeljanz", "--regulator", "japan", "--json").json()
    assert (row["drug"], row["regulator"]) == ("tofacitinib", "PMDA")
    assert row["facts"] == sum(row["grades"].values()) > 0
    assert row["partial"] and row["partial"][0]["product"] == "tofacitinib-oral-ir"
    assert row["as_of"] == min(s["as_of"] for s in row["sources"])
    assert any(w.startswith("rule tofacitinib.pmda.") for w in row["secondary_only"])
    ids = {s["id"] for s in row["sources"]}
    assert "xeljanz-pmda-2013" in ids and all(s["grade"] == kb.sources[s["id"]].grade for s in row["sources"])
    assert row["signoffs"] == []


def test_review_lists_label_sections_read(cli):
    (row,) = cli("kb", "review", "--drug", "upadacitinib", "--regulator", "EMA", "--json").json()
    smpc = next(s for s in row["sources"] if s["id"] == "rinvoq-ema-2024")
    assert {"4.1", "4.2", "4.3"} <= set(smpc["sections"]) and smpc["grade"] == "transcription"


def test_review_table_for_people(cli):
    r = cli("kb", "review", "--drug", "upadacitinib", "--regulator", "FDA")
    assert r.code == 0, r.err
    assert "upadacitinib × FDA" in r.out and "sign-off: none recorded" in r.out
    assert "disagrees with rinvoq-lq-drugsfda-nda218347: followed rinvoq-lq-drugsfda-nda218347" in r.out


def test_review_all_covers_every_drug(cli, kb):
    rows = cli("kb", "review", "--json").json()
    assert {r["drug"] for r in rows} == set(kb.drugs)
    assert {r["regulator"] for r in rows} <= set(schema.REGULATORS)


def test_review_unknown_regulator_is_exit_2(cli):
    r = cli("kb", "review", "--regulator", "Atlantis")
    assert r.code == 2 and r.err.count("\n") == 1 and "Atlantis" in r.err


# ---- sign-offs ------------------------------------------------------------------------------------------------
SIGNOFF = {"reviewer": "Test Reviewer, clinical pharmacist", "date": "2026-12-01", "drug": "upadacitinib",
           "regulator": "EMA", "scope": "SmPC 4.1-4.3 and every rule", "sections": ["4.1", "4.2", "4.3"]}


def test_a_signoff_is_recorded_and_shown(data_copy, cli):
    (data_copy / "signoffs.yaml").write_text(yaml.safe_dump({"signoffs": [SIGNOFF]}))
    assert cli("kb", "validate", "--data-dir", str(data_copy)).code == 0
    (row,) = cli("kb", "review", "--drug", "upadacitinib", "--regulator", "EMA", "--data-dir", str(data_copy),
                 "--json").json()
    assert row["signoffs"] == [SIGNOFF]
    out = cli("kb", "review", "--drug", "upadacitinib", "--regulator", "EMA", "--data-dir", str(data_copy)).out
    assert "sign-off: Test Reviewer, clinical pharmacist 2026-12-01" in out


@pytest.mark.parametrize(("change", "expect"), [
    ({"drug": "notadrug"}, "unknown drug 'notadrug'"),
    ({"regulator": "Atlantis"}, "regulator"),
    ({"date": "1 December"}, "date"),
    ({"scope": None}, "scope"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_signoff_is_one_line_exit_2(data_copy, cli, change, expect):
    record = {k: v for k, v in {**SIGNOFF, **change}.items() if v is not None}
    (data_copy / "signoffs.yaml").write_text(yaml.safe_dump({"signoffs": [record]}))
    r = cli("kb", "validate", "--data-dir", str(data_copy))
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "signoffs.yaml" in r.err and expect in r.err


def test_provenance_fields_are_documented():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "knowledge-base.md").read_text()
    for model in (schema.SignOff, schema.Disagreement):
        for name in model.model_fields:
            assert re.search(rf"\b{name}\b", doc), f"{model.__name__}.{name} is not documented"
    assert "`primary`" in doc and "`transcription`" in doc and "`secondary`" in doc


# ---- coverage: PMDA and NMPA ----------------------------------------------------------------------------------
def _dates(rows, indication, product=None):
    return sorted(r["date"] or "" for r in rows if r["indication"] == indication and (product is None or r["product"] == product))


def test_pmda_ruxolitinib_answers_with_sourced_records(cli, kb):
    rows = cli("approvals", "--regulator", "PMDA", "--drug", "Jakavi", "--json").json()
    assert rows and all(r["regulator"] == "PMDA" and r["drug"] == "ruxolitinib" and r["sources"] for r in rows)
    assert _dates(rows, "myelofibrosis") == ["2014-07-04"]
    assert _dates(rows, "polycythaemia-vera") == ["2015-09-24"]
    assert _dates(rows, "graft-versus-host-disease", "ruxolitinib-oral") == ["2023-08-23", "2024-09-24"]
    assert _dates(rows, "graft-versus-host-disease", "ruxolitinib-oral-solution") == ["2024-09-24"]
    for r in rows:
        assert all(c.partition("#")[0] in kb.sources for c in r["sources"])
        assert r["grade"] in schema.GRADES


def test_pmda_ruxolitinib_by_age(cli):
    kids = cli("approvals", "--regulator", "PMDA", "--drug", "ruxolitinib", "--age", "8", "--json").json()
    assert {r["indication"] for r in kids} == {"graft-versus-host-disease"}
    assert {r["product"] for r in kids} == {"ruxolitinib-oral", "ruxolitinib-oral-solution"}


def test_pmda_upadacitinib_covers_its_japanese_indications(cli):
    rows = cli("approvals", "--regulator", "PMDA", "--drug", "upadacitinib", "--json").json()
    assert {r["indication"] for r in rows} == {
        "rheumatoid-arthritis", "psoriatic-arthritis", "ankylosing-spondylitis", "non-radiographic-axial-spondyloarthritis",
        "atopic-dermatitis", "ulcerative-colitis", "crohns-disease"}
    ad = next(r for r in rows if r["indication"] == "atopic-dermatitis")
    assert ad["date"] == "2021-08" and ad["min_age_years"] == 12
    assert "upadacitinib" not in {r["drug"] for r in cli("approvals", "--regulator", "PMDA", "--drug", "upadacitinib",
                                                           "--indication", "AD", "--age", "11", "--json").json()}


def test_nmpa_is_a_regulator_with_sourced_approvals(cli, kb):
    assert "NMPA" in schema.REGULATORS and kb.regulator("China") == kb.regulator("nmpa") == "NMPA"
    rows = cli("approvals", "--regulator", "NMPA", "--json").json()
    assert {"tofacitinib", "upadacitinib", "abrocitinib", "ruxolitinib", "ritlecitinib", "deucravacitinib", "golidocitinib",
            "ivarmacitinib"} <= {r["drug"] for r in rows}
    for r in rows:
        assert r["regulator"] == "NMPA" and r["sources"]
        assert all(c.partition("#")[0] in kb.sources for c in r["sources"])
    tofa = next(r for r in rows if r["drug"] == "tofacitinib")
    assert (tofa["indication"], tofa["date"]) == ("rheumatoid-arthritis", "2017-03")
    table = cli("approvals", "--regulator", "china")
    assert table.code == 0 and "NMPA" in table.out


def test_drugs_first_approved_in_china(cli, kb):
    for name, alias in (("ivarmacitinib", "SHR0302"), ("golidocitinib", "Gaoruizhe")):
        d = kb.drug(alias)
        assert d.name == name
        assert [t.kinase for t in d.targets] == ["JAK1"] and all(t.sources for t in d.targets)
        assert {a.regulator for a in d.approvals} == {"NMPA"}
        assert all(t.ic50_nM is None for t in d.targets), "no enzyme IC50 was verified"
    ptcl = cli("approvals", "--indication", "PTCL", "--json").json()
    assert [(r["drug"], r["regulator"], r["date"]) for r in ptcl] == [("golidocitinib", "NMPA", "2024-06")]
    summary = {r["name"]: r for r in cli("drugs", "--json").json()}
    assert summary["golidocitinib"]["regulators"] == ["NMPA"] and len(summary) == len(kb.drugs) >= 16


def test_nmpa_review_lists_what_it_rests_on(cli):
    rows = cli("kb", "review", "--regulator", "NMPA", "--json").json()
    assert {r["drug"] for r in rows} >= {"golidocitinib", "ivarmacitinib", "tofacitinib"}
    assert all(r["grades"]["primary"] == 0 and r["secondary_only"] for r in rows), "NMPA records rest on secondary reports"


def test_signoffs_survive_the_cache(data_copy, tmp_path, monkeypatch):
    from jakinib.knowledge import base

    monkeypatch.setenv("JAKINIB_CACHE_DIR", str(tmp_path / "cache"))
    (data_copy / "signoffs.yaml").write_text(yaml.safe_dump({"signoffs": [SIGNOFF]}))
    first = base.build(data_copy)
    assert base.cache_file(data_copy).is_file()
    again = base.build(data_copy)  # read back from the cache file
    assert [so.reviewer for so in again.signoffs] == [so.reviewer for so in first.signoffs] == [SIGNOFF["reviewer"]]
    assert again.sources["rinvoq-fda-pjia-2024"].disagrees_with == first.sources["rinvoq-fda-pjia-2024"].disagrees_with
