"""FHIR R4 input: lenient parsing, code mapping, same report as the simple JSON, and bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jakinib
from jakinib.errors import InputError
from jakinib.interop import fhir
from jakinib.safety import engine, parse_patient

KB = jakinib.load()
TODAY = dt.date(2026, 11, 25)
EXAMPLES = Path(__file__).parents[1] / "examples"
CODED_CONDITIONS = sorted(t.id for t in KB.conditions.values() if t.snomed or t.icd10)
CODED_MEDS = sorted(m.name for m in KB.medications.values())


def report_json(patient, regulator="EMA", indication="atopic-dermatitis"):
    data = engine.check(KB, patient, regulator=regulator, indication=indication, today=TODAY).to_json()
    data.pop("unmapped")
    data["derived"] = [d for d in data["derived"] if "by its name" not in d]  # FHIR text matches are reported
    return data


labs = st.fixed_dictionaries({}, optional={
    "anc": st.floats(0.2, 12).map(lambda x: round(x, 2)),
    "alc": st.floats(0.2, 5).map(lambda x: round(x, 2)),
    "hb": st.floats(6, 18).map(lambda x: round(x, 1)),
    "platelets": st.integers(20, 600),
    "egfr": st.integers(5, 130),
    "crcl": st.integers(5, 150),
})
results = st.sampled_from(["negative", "positive", "indeterminate"])
patients = st.fixed_dictionaries({
    "age": st.integers(12, 95),
    "sex": st.sampled_from(["female", "male"]),
    "smoking": st.sampled_from(["never", "former", "current"]),
    "conditions": st.lists(st.sampled_from(CODED_CONDITIONS), max_size=3, unique=True),
    "labs": labs,
    "medications": st.lists(st.sampled_from(CODED_MEDS), max_size=2, unique=True),
    "screening": st.fixed_dictionaries({}, optional={"tuberculosis": results, "hepatitis-b": results,
                                                     "hepatitis-c": results, "zoster-vaccine": st.just("done")}),
}).map(lambda p: {**p, "pregnant": False} if p["sex"] == "female" else p)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=patients, regulator=st.sampled_from(["FDA", "EMA"]))
def test_same_patient_as_json_and_as_fhir_gives_the_same_report(raw, regulator):
    from_json = parse_patient(raw, KB)
    from_fhir = fhir.patient_from_bundle(fhir.bundle_from_simple(raw, KB, TODAY), KB, TODAY)
    assert report_json(from_json, regulator) == report_json(from_fhir, regulator)


def test_example_bundle_matches_example_patient():
    raw = json.loads((EXAMPLES / "patient.json").read_text())
    bundle = json.loads((EXAMPLES / "bundle.json").read_text())
    a = fhir.patient_from_bundle(bundle, KB, TODAY)
    assert a.conditions == ("myocardial-infarction", "latent-tuberculosis")
    assert a.labs["anc"] == pytest.approx(1.8) and a.smoking == "current" and a.age == 67
    carried = {k: v for k, v in raw.items() if k not in ("weight_kg", "breastfeeding", "indication")}
    assert report_json(a) == report_json(parse_patient(carried, KB))


def test_lenient_bundle_without_type_and_with_unknown_resources():
    bundle = {"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Patient", "birthDate": "1980-05-02", "gender": "male"}},
        {"resource": {"resourceType": "Procedure", "code": {"text": "appendectomy"}}},
        {"resource": {"resourceType": "Condition", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I21.4"}]}}},
        {"resource": {"resourceType": "Condition", "code": {"text": "mystery syndrome"}}},
        {"resource": {"resourceType": "Condition", "verificationStatus": {"coding": [{"code": "refuted"}]},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84114007"}]}}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "731-0"}]},
                      "valueQuantity": {"value": 450, "unit": "cells/uL"}, "effectiveDateTime": "2026-11-01"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "71773-6"}]},
                      "interpretation": [{"coding": [{"code": "NEG"}]}], "effectiveDateTime": "2026-01-02"}},
    ]}
    p = fhir.patient_from_bundle(bundle, KB, TODAY)
    assert p.age == 46 and p.sex == "male" and p.pregnant is False
    assert p.conditions == ("myocardial-infarction",)  # ICD-10 I21.4 -> I21; refuted heart failure skipped
    assert p.labs["alc"] == pytest.approx(0.45)
    assert p.screening["tuberculosis"].result == "negative"
    assert any("Procedure" in u for u in p.unmapped) and any("mystery syndrome" in u for u in p.unmapped)


def test_latest_observation_wins_by_instant_not_by_string():
    """Issue 10: 'latest' compared date strings; 23:30 at UTC-5 is later than 01:00 UTC the next day."""
    obs = [{"resourceType": "Observation", "status": "final", "effectiveDateTime": d,
            "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
            "valueQuantity": {"value": v, "unit": "10*9/L"}} for d, v in (
                ("2026-11-01T23:30:00-05:00", 80), ("2026-11-02T01:00:00+00:00", 210), ("2026-10-01", 50))]
    p = fhir.patient_from_bundle({"resourceType": "Bundle", "entry": [{"resource": r} for r in obs]}, KB, TODAY)
    assert p.labs["platelets"] == 80


@pytest.mark.parametrize("payload, fragment", [
    ({"resourceType": "Bundle", "entry": "nope"}, "Bundle.entry"),
    ({"resourceType": "Bundle", "entry": [{"resource": {"no": "type"}}]}, "resourceType"),
    ({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "birthDate": "yesterday"}}]}, "birthDate"),
    ({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "code": {"coding": [
        {"system": "http://loinc.org", "code": "718-7"}]}, "valueQuantity": {"value": 12}}}]}, "without a unit"),
    ({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "code": {"coding": [
        {"system": "http://loinc.org", "code": "718-7"}]}, "valueQuantity": {"value": 125, "unit": "g/dL"},
        "effectiveDateTime": dt.date.today().isoformat()}}]}, "implausible"),
    ({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}, {"resource": {"resourceType": "Patient"}}]},
     "more than one Patient"),
])
def test_bad_bundles_are_one_line_errors(payload, fragment):
    with pytest.raises(InputError, match=fragment):
        jakinib.read_patient(payload, KB)


@pytest.mark.parametrize("content, fragment", [
    ('{"age": 40, "labs": {"hb": 125}}', "did you mean 125 g/L"),
    ('{"age": 40, "labs": {"hb": {"value": 12}}}', "needs a 'unit'"),
    ('{"age": 40, "labs": {"hb": {"value": 12, "unit": "furlongs"}}}', "unknown unit"),
    ('{"age": 40, "labs": {"alc": {"value": 12, "unit": "g/dL"}}}', "cannot be converted"),
    ('{"age": 40, "conditions": ["dragon pox"]}', "unknown condition"),
    ('{"age": 40, "smoking": "sometimes"}', "patient.smoking"),
    ('{"age": 400}', "implausible"),
    ('{"age": 40, "shoe_size": 9}', "unknown field"),
    ('{"age": 40, "screening": {"tuberculosis": "maybe"}}', "screening.tuberculosis"),
    ('{"age": 40,', "malformed JSON"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_patient_json_through_the_cli(cli, tmp_path, content, fragment):
    path = tmp_path / "p.json"
    path.write_text(content)
    r = cli("check", str(path), "--drug", "tofacitinib")
    assert r.code == 2 and fragment in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_check_cli_unknown_drug_and_missing_file(cli, tmp_path):
    assert cli("check", str(tmp_path / "nope.json")).code == 2
    path = tmp_path / "p.json"
    path.write_text("{}")
    r = cli("check", str(path), "--drug", "aspirin")
    assert r.code == 2 and "unknown drug" in r.err


def test_lab_units_are_converted():
    p = parse_patient({"labs": {"alc": {"value": 450, "unit": "cells/mm3"}, "hb": {"value": 121, "unit": "g/L"},
                                "platelets": {"value": 150, "unit": "10*3/uL"}}}, KB)
    assert p.labs == pytest.approx({"alc": 0.45, "hb": 12.1, "platelets": 150})
