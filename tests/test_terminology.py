"""The one mapping layer (interop/terminology.py): RxNorm codes at every level and RxNorm-style names."""

from __future__ import annotations

import datetime as dt

import pytest

import jakinib
from jakinib.interop import fhir, terminology
from jakinib.safety import engine

KB = jakinib.load()
RX = terminology.RXNORM
TODAY = dt.date(2026, 11, 25)


@pytest.mark.parametrize("codings, text, ingredient, classes, matched_by, strength", [
    ([(RX, "309362", "Clopidogrel 75 MG Oral Tablet")], None, "clopidogrel", ("antiplatelet",), "code", 75.0),
    ([(RX, "309362", None)], None, "clopidogrel", ("antiplatelet",), "code", 75.0),
    ([(RX, "855332", "Warfarin Sodium 5 MG Oral Tablet")], None, "warfarin", ("anticoagulant",), "code", 5.0),
    ([(RX, "999999999", "Carbamazepine[Tegretol]")], None, "carbamazepine", ("strong-cyp3a4-inducer",), "text", None),
    ([], "clopidogrel 75 MG Oral Tablet", "clopidogrel", ("antiplatelet",), "text", 75.0),
    ([], "fluvoxamine maleate 100 MG Oral Tablet", "fluvoxamine", ("strong-cyp2c19-inhibitor", "strong-cyp1a2-inhibitor"), "text", 100.0),
    ([], "Verapamil Hydrochloride 40 MG", "verapamil", ("moderate-cyp3a4-inhibitor",), "text", 40.0),
    ([], "24 HR diltiazem hydrochloride 120 MG Extended Release Oral Capsule", "diltiazem", ("moderate-cyp3a4-inhibitor",), "text", 120.0),
])
def test_interaction_medicines_resolve_at_any_level(codings, text, ingredient, classes, matched_by, strength):
    m = terminology.resolve_medication(KB, codings, text)
    assert m is not None and m.drug is None
    assert (m.ingredient, m.classes, m.matched_by, m.strength_mg) == (ingredient, classes, matched_by, strength)


@pytest.mark.parametrize("codings, text, drug, matched_by", [
    ([(RX, "1357541", None)], None, "tofacitinib", "code"),           # SCD only, as the CDS Hooks sandbox sends it
    ([(RX, "1357547", None)], None, "tofacitinib", "code"),           # SBD
    ([(RX, "2591487", None)], None, "abrocitinib", "code"),
    ([(RX, "1193331", None)], None, "ruxolitinib", "code"),
    ([(RX, "2570757", None)], None, "ruxolitinib", "code"),
    ([], "abrocitinib 100 MG Oral Tablet", "abrocitinib", "text"),
    ([], "Rinvoq 15 mg extended-release tablet", "upadacitinib", "text"),
    ([(RX, "0", "baricitinib 2 MG Oral Tablet [Olumiant]")], None, "baricitinib", "text"),
])
def test_jak_inhibitors_resolve_by_code_and_text(codings, text, drug, matched_by):
    m = terminology.resolve_medication(KB, codings, text)
    assert m is not None and (m.drug, m.matched_by) == (drug, matched_by)


def test_every_jak_code_names_its_drug_and_every_product_exists():
    products = {p.id for d in KB.drugs.values() for p in d.products}
    for c in KB.rxnorm:
        if c.ingredient in KB.drugs:
            assert c.ingredient in c.name.lower()
            assert c.product is None or c.product in products
        assert c.sources


def test_unknown_medicines_are_none_and_never_suggest():
    import difflib

    calls = []
    original = difflib.get_close_matches
    difflib.get_close_matches = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        assert terminology.resolve_medication(KB, [(RX, "316672", "Simvistatin 10 MG")], None) is None
        assert terminology.resolve_medication(KB, [], "clopidogrell 75 mg") is None
    finally:
        difflib.get_close_matches = original
    assert calls == []


def test_parse_name_structure():
    assert terminology.parse_name("Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet")[0] == [
        "acetaminophen", "hydrocodone bitartrate"]
    assert terminology.parse_name("Carbamazepine[Tegretol]") == (["carbamazepine"], ["tegretol"], None)
    assert terminology.parse_name("10 ML Furosemide 10 MG/ML Injection") == (["furosemide"], [], None)


def _bundle(*resources):
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r}
                                                                      for i, r in enumerate(resources)]}


PATIENT = {"resourceType": "Patient", "id": "p", "birthDate": "1980-01-01", "gender": "male"}


def test_clopidogrel_scd_makes_abrocitinib_contraindicated():
    """Issue 10: clopidogrel (RxNorm SCD 309362) + abrocitinib under FDA came out do-not-start, not contraindicated."""
    bundle = _bundle(PATIENT, {"resourceType": "MedicationRequest", "status": "active", "medicationCodeableConcept": {
        "coding": [{"system": RX, "code": "309362", "display": "Clopidogrel 75 MG Oral Tablet"}]}})
    p = fhir.patient_from_bundle(bundle, KB, TODAY)
    assert "antiplatelet" in p.medication_classes and not p.unmapped_medications
    a = engine.check(KB, p, drugs=["abrocitinib"], regulator="FDA", indication="atopic-dermatitis", today=TODAY).assessments[0]
    assert a.status == "contraindicated"


def test_medication_reference_contained_and_in_bundle_are_resolved():
    contained = {"resourceType": "MedicationRequest", "status": "active", "medicationReference": {"reference": "#m1"},
                 "contained": [{"resourceType": "Medication", "id": "m1", "code": {"coding": [
                     {"system": RX, "code": "855332", "display": "Warfarin Sodium 5 MG Oral Tablet"}]}}]}
    med = {"resourceType": "Medication", "id": "m2", "code": {"text": "Carbamazepine[Tegretol]"}}
    by_ref = {"resourceType": "MedicationRequest", "status": "active", "medicationReference": {"reference": "Medication/m2"}}
    p = fhir.patient_from_bundle(_bundle(PATIENT, contained, med, by_ref), KB, TODAY)
    assert set(p.medications) == {"warfarin", "carbamazepine"} and not p.unmapped_medications
    assert any("Carbamazepine[Tegretol]" in d and "by its name" in d for d in p.derived)


def test_ordered_jak_inhibitor_is_not_an_unmapped_co_medication():
    bundle = _bundle(PATIENT, {"resourceType": "MedicationRequest", "status": "active",
                               "medicationCodeableConcept": {"text": "abrocitinib 100 MG Oral Tablet"}})
    read = fhir.read_bundle(bundle, KB, TODAY)
    assert read.ordered == ["abrocitinib"] and read.simple["medications"] == []
