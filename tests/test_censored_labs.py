"""Labs reported with a comparator ("eGFR <15", "ANC <0.5", "eGFR >60"): the checker reads them as bounds, never as
the number written, in every renal rule of every label, and the cohort screen gives the checker's answers."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from jakinib.cohort import screen
from jakinib.knowledge import fields as f
from jakinib.safety import engine, renal
from jakinib.safety.patient import parse_patient
from test_cohort import expected, flat_row, got

TODAY = dt.date(2026, 12, 1)
BASE = {"age": 50, "sex": "female", "weight_kg": 70, "pregnant": False, "breastfeeding": False, "smoking": "never",
        "conditions": [], "medications": [], "vaccines_planned": [],
        "screening": {t: "negative" for t in ("tuberculosis", "hepatitis-b", "hepatitis-c", "hiv")}}


def lab(value: float, cmp: str | None, name: str) -> dict | float:
    return {"value": value, "comparator": cmp, "unit": f.LAB_UNITS[name]} if cmp else value


def assess(kb, drug: str, regulator: str, indication: str | None, labs: dict) -> engine.Assessment:
    patient = parse_patient({**BASE, "indication": indication, "labs": labs}, kb)
    return engine.check(kb, patient, [drug], regulator, indication, TODAY).assessments[0]


def outcome(a: engine.Assessment) -> tuple:
    d = a.dose
    return a.status, d and d.mg, d and d.every_h, bool(d and d.withheld)


def withheld(a: engine.Assessment) -> bool:
    """No dose given: withheld while a renal input is unknown, or none at all."""
    return a.dose is None or a.dose.withheld or (a.dose.mg is None and a.status in ("avoid", "contraindicated", "do-not-start"))


def test_egfr_below_15_is_end_stage_not_the_15_to_30_band(kb):
    """US Rinvoq AD: eGFR < 15 not recommended, 15 to < 30 -> 15 mg. "<15" was read as 15 and got 15 mg."""
    at_15 = assess(kb, "upadacitinib", "FDA", "atopic-dermatitis", {"egfr": 15})
    below = assess(kb, "upadacitinib", "FDA", "atopic-dermatitis", {"egfr": lab(15, "<", "egfr")})
    assert at_15.dose.mg == 15
    assert below.status == "avoid" and below.dose.mg is None
    assert outcome(below) == outcome(assess(kb, "upadacitinib", "FDA", "atopic-dermatitis", {"egfr": 12}))


def test_a_bound_that_spans_two_bands_withholds_the_dose(kb):
    """"<30" may be 15-<30 (15 mg) or < 15 (not recommended): unknown, so no dose is given."""
    a = assess(kb, "upadacitinib", "FDA", "atopic-dermatitis", {"egfr": lab(30, "<", "egfr")})
    assert withheld(a) and a.status != "ok"
    assert any(x.rule.startswith("upadacitinib") and x.needs for x in a.findings)


def test_above_the_top_cut_off_is_normal_function(kb):
    """">60" is above every US baricitinib RA cut-off (30, 60): the usual dose, no renal unknown."""
    exact = assess(kb, "baricitinib", "FDA", "rheumatoid-arthritis", {"egfr": 90})
    above = assess(kb, "baricitinib", "FDA", "rheumatoid-arthritis", {"egfr": lab(60, ">", "egfr")})
    assert outcome(above) == outcome(exact)
    assert not any("labs.egfr" in x.needs for x in above.findings)


def _renal_labels(kb):
    """(product, regulator, indication, measure, cut-offs) for every label scope with renal rules."""
    for (product, regulator), rules in sorted(kb._rules_index.items()):
        renal_rules = [r for r in rules if r.renal]
        for ind in sorted({i for r in renal_rules for i in (r.indications or [None])}, key=str):
            scoped = [r for r in renal_rules if not r.indications or ind in r.indications]
            for measure in sorted({r.renal.measure for r in scoped}):
                cuts = renal.thresholds(scoped, f"labs.{measure}")
                if cuts:
                    yield product, regulator, ind, measure, cuts


def assess_product(kb, product: str, regulator: str, indication: str | None, labs: dict) -> engine.Assessment:
    patient = parse_patient({**BASE, "indication": indication, "labs": labs}, kb)
    drug, prod = kb.product(product)
    return engine.assess(kb, patient, drug, regulator, indication, TODAY, prod)


def test_every_renal_rule_reads_a_bound_as_a_bound(kb):
    """For every label with renal rules and each of its cut-offs t: "<t" (">t") never gives an outcome that no exact
    value below (above) t gives: it gives the outcome all of them share, or withholds the dose."""
    checked = 0
    for product, regulator, indication, measure, cuts in _renal_labels(kb):
        grid = sorted({1.0, 200.0, *cuts, *(c - 0.01 for c in cuts), *(c + 0.01 for c in cuts),
                       *((a + b) / 2 for a, b in zip((0.0, *cuts), (*cuts, 200.0), strict=True))})
        for t in cuts:
            for cmp, side in (("<", [v for v in grid if v < t]), (">", [v for v in grid if v > t])):
                exact = {outcome(assess_product(kb, product, regulator, indication, {measure: v})) for v in side}
                bound = assess_product(kb, product, regulator, indication, {measure: lab(t, cmp, measure)})
                where = (product, regulator, indication, f"{measure} {cmp}{t:g}", outcome(bound), exact)
                assert withheld(bound) or outcome(bound) in exact, where
                if len(exact) == 1 and not withheld(bound):
                    assert outcome(bound) == next(iter(exact)), where
                checked += 1
    assert checked >= 40, checked


@pytest.fixture(scope="module")
def censored_patients(kb):
    """Patients whose renal values and blood counts are bounds at the rules' cut-offs (and a censored creatinine)."""
    values = {"egfr": [15, 30, 60], "crcl": [15, 30, 50, 60], "anc": [0.5, 1.0], "platelets": [50, 100], "creatinine": [0.5, 4.0]}
    out, i = [], 0
    for name, vs in values.items():
        for v in vs:
            for cmp in ("<", ">", "<=", ">="):
                for ind in ("atopic-dermatitis", "rheumatoid-arthritis", "myelofibrosis"):
                    p = {**BASE, "id": f"c{i:03d}", "indication": ind, "labs": {name: {"value": v, "comparator": cmp, "unit": f.LAB_UNITS[name]}}}
                    out.append(p)
                    i += 1
    return out


def test_screen_gives_the_checker_answers_for_censored_labs(kb, tmp_path, censored_patients):
    """The flat table carries "<15" as it is written; the screen reads it as the checker does, for every drug."""
    rows = []
    for p in censored_patients:
        (name, v), = p["labs"].items()
        row = flat_row({**p, "labs": {}, "metabolizer": {}})
        row[f"labs.{name}"] = f"{v['comparator']}{v['value']:g}"
        rows.append(row)
    columns = sorted({k for r in rows for k in r})
    path = tmp_path / "censored.csv"
    pl.DataFrame({k: [None if r.get(k) is None else str(r[k]) for r in rows] for k in columns}, schema=dict.fromkeys(columns, pl.String)) \
        .with_columns(pl.col(k).fill_null("") for k in ("conditions", "medications", "vaccines_planned")).write_csv(path)
    for regulator in ("FDA", "EMA"):
        result = screen.screen(path, kb, regulators=[regulator], today=TODAY).rows
        for p in censored_patients:
            simple = {k: v for k, v in p.items() if k != "id"}
            assert got(result, p["id"], regulator) == expected(kb, parse_patient(simple, kb), regulator), (regulator, p["labs"])


def test_a_fhir_comparator_reaches_the_screen(kb, tmp_path):
    """A Bundle whose ANC is "<0.5" (valueQuantity.comparator) is screened, not an internal error, and agrees with check."""
    import json

    from jakinib.interop.fhir import patient_from_bundle

    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-01-01"}},
        {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/p1"},
                      "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]}, "effectiveDateTime": "2026-11-20",
                      "valueQuantity": {"value": 0.5, "comparator": "<", "unit": "10*3/uL", "system": "http://unitsofmeasure.org",
                                        "code": "10*3/uL"}}}]}
    path = tmp_path / "b.ndjson"
    path.write_text(json.dumps(bundle) + "\n")
    rows = screen.screen(path, kb, regulators=["FDA"], today=TODAY).rows
    patient = patient_from_bundle(bundle, kb, TODAY)
    assert patient.lab_comparators == {"anc": "<"}
    want = {a.drug: (a.status, [x.rule for x in a.findings]) for a in engine.check(kb, patient, None, "FDA", None, TODAY).assessments}
    have = {r["drug"]: (r["status"], list(r["findings"])) for r in rows.iter_rows(named=True)}
    assert have == want
    assert any("anc" in r for r in want["tofacitinib"][1])
