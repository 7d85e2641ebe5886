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


# ---- issue 10: each case seen on real-world-shaped records ------------------------------------------

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


def _b(*resources, patient=None):
    pat = patient if patient is not None else {"resourceType": "Patient", "id": "p1", "birthDate": "1960-01-01", "gender": "female"}
    return {"resourceType": "Bundle", "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate([pat, *resources])]}


def _cond(system, code, status="active", display=None):
    return {"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {"coding": [{"code": status}]}, "code": {"coding": [{"system": system, "code": code, "display": display}]}}


def _obs(code, value, unit, when="2026-11-20", comparator=None):
    q = {"value": value, "unit": unit, **({"comparator": comparator} if comparator else {})}
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"}, "effectiveDateTime": when,
            "code": {"coding": [{"system": LOINC, "code": code}]}, "valueQuantity": q}


def _assess(p, drug, regulator, indication="atopic-dermatitis"):
    return engine.check(KB, p, drugs=[drug], regulator=regulator, indication=indication, today=TODAY).assessments[0]


@pytest.mark.parametrize("system, code, slug", [
    (SNOMED, "422504002", "stroke"), (SNOMED, "88805009", "heart-failure"), (SNOMED, "53741008", "cardiovascular-risk-factors"),
    (SNOMED, "93761005", "malignancy"), (SNOMED, "254837009", "malignancy"), (ICD10CM, "I639", "stroke"),
    (ICD10CM, "I63.9", "stroke"), (ICD10CM, "C509", "malignancy"),
])
def test_conditions_match_value_sets_and_dotless_icd10(system, code, slug):
    p = fhir.patient_from_bundle(_b(_cond(system, code)), KB, TODAY)
    assert slug in p.conditions


def test_pregnancy_recorded_as_a_condition_fires_the_ema_contraindication():
    p = fhir.patient_from_bundle(_b(_cond(SNOMED, "72892002", display="Normal pregnancy"),
                                    patient={"resourceType": "Patient", "id": "p1", "birthDate": "1996-01-01", "gender": "female"}), KB, TODAY)
    assert p.pregnant is True
    a = _assess(p, "upadacitinib", "EMA")
    assert a.status == "contraindicated" and not any("needs pregnant" in f.message for f in a.findings)


def test_past_cancer_fires_current_or_past_malignancy_rule():
    """EMA Article 20 'current or past malignancy': a resolved colon cancer is history, and the rule reads it."""
    p = fhir.patient_from_bundle(_b(_cond(SNOMED, "93761005", status="resolved")), KB, TODAY)
    assert p.history == ("malignancy",) and p.conditions == ()
    a = _assess(p, "upadacitinib", "EMA")
    assert "upadacitinib.ema.malignancy" in {f.rule for f in a.findings if f.severity != "caution" or not f.needs}


def test_active_allergy_to_the_drug_is_a_hypersensitivity_contraindication():
    allergy = {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p1"},
               "clinicalStatus": {"coding": [{"code": "active"}]}, "verificationStatus": {"coding": [{"code": "confirmed"}]},
               "code": {"text": "Rinvoq"}}
    p = fhir.patient_from_bundle(_b(allergy), KB, TODAY)
    assert p.allergies == ("upadacitinib",)
    assert _assess(p, "upadacitinib", "FDA").status == "contraindicated"
    assert not any(f.rule.endswith("hypersensitivity") for f in _assess(p, "tofacitinib", "TGA", "rheumatoid-arthritis").findings
                   if not f.needs)


def test_comparator_is_honoured_conservatively():
    p = fhir.patient_from_bundle(_b(_obs("731-0", 0.5, "10*9/L", comparator="<")), KB, TODAY)
    a = _assess(p, "abrocitinib", "FDA")
    assert any(f.rule == "abrocitinib.fda.alc-low" and f.severity == "do-not-start" and not f.needs for f in a.findings)


def test_stale_lab_is_reported_and_treated_as_missing():
    p = fhir.patient_from_bundle(_b(_obs("777-3", 20, "10*9/L", when="2005-03-01")), KB, TODAY)
    assert "platelets" not in p.labs and "stale" in p.lab_notes["platelets"]
    a = _assess(p, "abrocitinib", "FDA")
    assert any(u.startswith("labs.platelets not used") and "stale" in u for u in p.unmapped)
    assert any(f.rule == "abrocitinib.fda.platelets-low" and f.needs == ["labs.platelets"] for f in a.findings)


def test_unreadable_unit_makes_that_lab_unknown_not_the_whole_check():
    p = fhir.patient_from_bundle(_b(_obs("751-8", 2, "bananas/uL"), _obs("718-7", 13, "g/dL")), KB, TODAY)
    assert "anc" not in p.labs and "bananas" in p.lab_notes["anc"] and p.labs["hb"] == 13
    assert any("labs.anc not used" in u for u in p.unmapped)


@pytest.mark.parametrize("unit, value, expected", [
    ("x10E3/uL", 1.5, 1.5), ("K/µL", 1.5, 1.5), ("K/μL", 1.5, 1.5), ("10³/µL", 1.5, 1.5), ("Thousand/uL", 1.5, 1.5),
    ("G/L", 1.5, 1.5), ("cells/mm3", 1500, 1.5), ("10*3/uL", 1.5, 1.5),
])
def test_real_world_count_units(unit, value, expected):
    p = fhir.patient_from_bundle(_b(_obs("751-8", value, unit)), KB, TODAY)
    assert p.labs["anc"] == pytest.approx(expected)


def test_ucum_case_g_per_litre_is_grams_for_haemoglobin_and_giga_for_counts():
    p = fhir.patient_from_bundle(_b(_obs("718-7", 130, "g/L"), _obs("751-8", 2.0, "G/L")), KB, TODAY)
    assert p.labs["hb"] == pytest.approx(13.0) and p.labs["anc"] == pytest.approx(2.0)
    p = fhir.patient_from_bundle(_b(_obs("718-7", 130, "G/L")), KB, TODAY)
    assert "hb" not in p.labs and "hb" in p.lab_notes  # giga per litre is not a mass concentration


def test_egfr_unit_with_superscript():
    p = fhir.patient_from_bundle(_b(_obs("48642-3", 44, "mL/min/1.73m²")), KB, TODAY)
    assert p.labs["egfr"] == 44


def test_weight_and_creatinine_give_cockcroft_gault_crcl():
    p = fhir.patient_from_bundle(_b(_obs("29463-7", 68.4, "kg"), _obs("38483-4", 1.0, "mg/dL"), _obs("8302-2", 160, "cm"),
                                    patient={"resourceType": "Patient", "id": "p1", "birthDate": "1953-01-01", "gender": "female"}), KB, TODAY)
    assert p.weight_kg == 68.4 and p.height_cm == 160 and p.age == 73
    assert p.labs["crcl"] == pytest.approx((140 - 73) * 68.4 / 72 * 0.85, rel=1e-3)


def test_counts_derived_from_wbc_and_differential_of_the_same_specimen():
    t = "2026-11-20T08:00:00Z"
    p = fhir.patient_from_bundle(_b(_obs("6690-2", 4.0, "10*3/uL", t), _obs("770-8", 20, "%", t), _obs("736-9", 10, "%", t)), KB, TODAY)
    assert p.labs["anc"] == pytest.approx(0.8) and p.labs["alc"] == pytest.approx(0.4)
    assert any("derived from WBC" in d for d in p.derived)
    other = fhir.patient_from_bundle(_b(_obs("6690-2", 4.0, "10*3/uL", t), _obs("770-8", 20, "%", "2026-11-21")), KB, TODAY)
    assert "anc" not in other.labs  # different specimens: not combined


def test_resources_about_another_patient_are_refused():
    other = _obs("777-3", 200, "10*9/L")
    other["subject"] = {"reference": "Patient/someone-else"}
    with pytest.raises(InputError, match="someone-else"):
        fhir.patient_from_bundle(_b(other), KB, TODAY)


def test_deceased_patient_is_refused():
    dead = {"resourceType": "Patient", "id": "p1", "birthDate": "1910-01-01", "gender": "female", "deceasedDateTime": "2020-02-02"}
    with pytest.raises(InputError, match="deceased"):
        fhir.patient_from_bundle(_b(patient=dead), KB, TODAY)


@pytest.mark.parametrize("ext, expected", [
    ({"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-individual-sex",
      "valueCoding": {"system": SNOMED, "code": "248152002"}}, "female"),
    ({"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "M"}, "male"),
])
def test_sex_from_us_core_extensions(ext, expected):
    pat = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01", "extension": [ext]}
    assert fhir.patient_from_bundle(_b(patient=pat), KB, TODAY).sex == expected


def test_pregnancy_is_not_asked_of_an_84_year_old():
    pat = {"resourceType": "Patient", "id": "p1", "birthDate": "1942-01-01", "gender": "female"}
    p = fhir.patient_from_bundle(_b(patient=pat), KB, TODAY)
    assert p.pregnant is False and any("outside the 10-55" in d for d in p.derived)
    a = _assess(p, "upadacitinib", "EMA")
    assert not any("pregnant" in (f.needs or []) for f in a.findings)


@pytest.mark.parametrize("bad", [
    {"effectivePeriod": {"end": 5}}, {"code": {"coding": 5}}, {"status": ["final"]}, {"code": {"coding": [{"code": 5}]}},
    {"valueQuantity": {"value": True, "unit": "g/dL"}}, {"effectiveDateTime": 20260101},
])
def test_malformed_observation_elements_never_crash(bad):
    obs = {**_obs("718-7", 13, "g/dL"), **bad}
    fhir.patient_from_bundle(_b(obs), KB, TODAY)  # read or skipped, never a traceback


def test_every_label_screening_item_is_reportable_in_json_and_fhir():
    from jakinib.knowledge import fields

    fhir_codes = {c.field.split(".", 1)[1] for c in KB.codes if c.field.startswith("screening.")}
    json_only = {"thiamine"}  # no thiamine-level code could be verified (sources/vocab.yaml vocab-screening-codes-2026)
    for d in KB.drugs.values():
        for label in d.labels:
            for item in label.screening:
                assert item.test in fields.SCREENING_TESTS, f"{d.name}/{label.regulator}: {item.test}"
                assert item.test in fhir_codes or item.test in json_only, f"{item.test} has no FHIR code"
                parse_patient({"screening": {item.test: "done"}}, KB)
    ecg = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": "Patient/p1"}, "performedDateTime": "2026-11-01",
           "code": {"coding": [{"system": SNOMED, "code": "29303009"}]}}
    assert fhir.patient_from_bundle(_b(ecg), KB, TODAY).screening["ecg"].result == "done"


def test_unmapped_lists_only_what_could_matter_and_counts_the_rest():
    noise = [{"resourceType": "Claim", "patient": {"reference": "Patient/p1"}} for _ in range(50)]
    noise += [{"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"},
               "code": {"coding": [{"system": LOINC, "code": "39156-5"}]}, "valueQuantity": {"value": 30, "unit": "kg/m2"}}] * 20
    p = fhir.patient_from_bundle(_b(*noise), KB, TODAY)
    assert len(p.unmapped) == 1 and "50 Claim" in p.unmapped[0] and "20 Observation" in p.unmapped[0]
