"""Issue 10: a screening result of any age counted as current. A dated negative (or done) result older than its window
(labs.yaml screening windows) is reported with its date and treated as not done; a positive stays informative; the same
from FHIR, from the patient JSON and in the cohort's flat table."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

import jakinib
from jakinib.interop import fhir
from jakinib.knowledge import fields
from jakinib.safety import engine
from jakinib.safety.patient import parse_patient

KB = jakinib.load()
TODAY = dt.date(2026, 11, 25)
LOINC = "http://loinc.org"


def _bundle(when: str, interpretation: str) -> dict:
    igra = {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"}, "effectiveDateTime": when,
            "code": {"coding": [{"system": LOINC, "code": "71773-6"}]}, "interpretation": [{"coding": [{"code": interpretation}]}]}
    pat = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01", "gender": "male"}
    return {"resourceType": "Bundle", "entry": [{"resource": r} for r in (pat, igra)]}


def _tb_findings(patient, drug="upadacitinib", regulator="FDA"):
    a = engine.check(KB, patient, drugs=[drug], regulator=regulator, indication="rheumatoid-arthritis", today=TODAY).assessments[0]
    return a, [f for f in a.findings if f.rule.startswith("screening.tuberculosis")]


def test_every_screening_test_has_a_window_and_every_window_says_why():
    assert set(KB.screening_windows) == set(fields.SCREENING_TESTS)
    assert all(w.why.strip() for w in KB.screening_windows.values())
    assert KB.screening_windows["zoster-vaccine"].max_age_days is None  # a vaccination does not expire with time


def test_an_old_negative_tb_test_from_fhir_is_stale_and_asked_for_again():
    a, found = _tb_findings(fhir.patient_from_bundle(_bundle("2005-03-01", "NEG"), KB, TODAY))
    assert [f.rule for f in found] == ["screening.tuberculosis"]
    assert "2005-03-01" in found[0].message and "not current" in found[0].message
    assert found[0].severity == "do-not-start" and "tuberculosis" in a.screening_missing


def test_a_recent_negative_tb_test_counts():
    a, found = _tb_findings(fhir.patient_from_bundle(_bundle("2026-10-01", "NEG"), KB, TODAY))
    assert found == [] and "tuberculosis" not in a.screening_missing


def test_an_old_positive_tb_test_stays_positive():
    _, found = _tb_findings(fhir.patient_from_bundle(_bundle("2005-03-01", "POS"), KB, TODAY))
    assert [f.rule for f in found] == ["screening.tuberculosis.positive"]


@pytest.mark.parametrize("days, stale", [(89, False), (90, False), (91, True)])
def test_the_window_edge_from_the_patient_json(days, stale):
    when = (TODAY - dt.timedelta(days=days)).isoformat()
    p = parse_patient({"age": 50, "sex": "male", "screening": {"tuberculosis": {"result": "negative", "date": when}}}, KB)
    a, found = _tb_findings(p)
    assert ("tuberculosis" in a.screening_missing) is stale and bool(found) is stale
    undated = parse_patient({"age": 50, "sex": "male", "screening": {"tuberculosis": "negative"}}, KB)
    assert "tuberculosis" not in _tb_findings(undated)[0].screening_missing  # the clinician's current answer


def test_the_cohort_flat_table_applies_the_same_window(tmp_path):
    from jakinib import screen

    base = {"age": 50, "sex": "male", "conditions": "", "medications": "", "indication": "rheumatoid-arthritis",
            "screening.tuberculosis": "negative"}
    rows = [{"id": "old", **base, "screening.tuberculosis.date": "2005-03-01"},
            {"id": "new", **base, "screening.tuberculosis.date": "2026-10-01"}]
    path = tmp_path / "cohort.csv"
    pl.DataFrame(rows).write_csv(path)
    rows_out = screen(path, drugs=["upadacitinib"], regulators=["FDA"], today=TODAY).rows
    table = rows_out.collect() if isinstance(rows_out, pl.LazyFrame) else rows_out
    missing = {r["id"]: r["screening_missing"] for r in table.iter_rows(named=True)}
    assert "tuberculosis" in missing["old"] and "tuberculosis" not in missing["new"]


def test_a_stale_negative_screen_rules_nothing_out_in_the_rules_either():
    """deucravacitinib's latent-TB rule reads screening.tuberculosis: a 2005 negative must leave it unknown (caution), not false."""
    old = parse_patient({"age": 50, "sex": "male", "screening": {"tuberculosis": {"result": "negative", "date": "2005-03-01"}}}, KB)
    new = parse_patient({"age": 50, "sex": "male", "screening": {"tuberculosis": {"result": "negative", "date": "2026-11-01"}}}, KB)
    rules = {name: {f.rule for f in engine.check(KB, p, drugs=["deucravacitinib"], regulator="FDA", indication="plaque-psoriasis",
                                                 today=TODAY).assessments[0].findings} for name, p in (("old", old), ("new", new))}
    latent = {r for r in rules["old"] if r.endswith("latent-tb")}
    assert latent and not latent & rules["new"]
