"""Renal rules for labels that had none (issue 11, items 1 and 6): a patient with severe renal impairment is never shown
the normal-function dose where a copy of the label says the dose changes, and every approved oral indication of a drug
that some label adjusts for renal function has a renal rule or is on the explicit list of labels whose renal section
jakinib has not verified (the list is kept exact, so it is the true gap list)."""

from __future__ import annotations

import datetime as dt

import pytest

import jakinib
from jakinib.safety import engine, parse_patient

KB = jakinib.load()
TODAY = dt.date(2026, 12, 1)
BASE = {"age": 60, "sex": "female", "weight_kg": 70, "conditions": [], "labs": {"anc": 4.0, "alc": 1.8, "hb": 13.0, "platelets": 250},
        "screening": {"tuberculosis": "negative", "hepatitis-b": "negative", "hepatitis-c": "negative", "zoster-vaccine": "done"}}


def assess(labs: dict, drug: str, regulator: str, indication: str, **extra):
    raw = {**BASE, **extra, "labs": {**BASE["labs"], **labs}}
    return engine.check(KB, parse_patient(raw, KB), drugs=[drug], regulator=regulator, indication=indication,
                        today=TODAY).assessments[0]


def fired(a) -> set[str]:
    return {f.rule for f in a.findings}


# ---- filgotinib (EU): 100 mg at CrCl 15 to < 60, not recommended below 15 -----------------------------------------
@pytest.mark.parametrize("indication", ["rheumatoid-arthritis", "ulcerative-colitis"])
@pytest.mark.parametrize("labs", [{"crcl": 20}, {"crcl": 59}, {"egfr": 22}, {"creatinine": 2.6}], ids=str)
def test_filgotinib_eu_moderate_or_severe_renal_impairment_gets_100_mg(indication, labs):
    a = assess(labs, "filgotinib", "EMA", indication)
    assert (a.dose.mg, a.dose.every_h) == (100, 24) and a.dose.adjusted, a.dose.text
    assert "filgotinib.ema.renal-moderate-severe" in fired(a)


def test_filgotinib_eu_end_stage_renal_disease_is_not_recommended_and_normal_function_gets_200_mg():
    esrd = assess({"crcl": 12}, "filgotinib", "EMA", "rheumatoid-arthritis")
    assert esrd.status == "avoid" and esrd.dose.mg is None and esrd.dose.text.startswith("Not recommended")
    normal = assess({"crcl": 90}, "filgotinib", "EMA", "rheumatoid-arthritis")
    assert (normal.dose.mg, normal.dose.every_h) == (200, 24) and not normal.dose.adjusted


# ---- upadacitinib (EU, TGA): never the 45 mg induction or 30 mg AD dose in severe renal impairment ----------------
@pytest.mark.parametrize("indication", ["ulcerative-colitis", "crohns-disease"])
@pytest.mark.parametrize("labs", [{"egfr": 12}, {"egfr": 22}, {"creatinine": 2.6}], ids=str)
def test_upadacitinib_eu_ibd_in_severe_renal_impairment_gets_no_induction_dose(indication, labs):
    a = assess(labs, "upadacitinib", "EMA", indication)
    assert a.dose.mg is None and a.dose.adjusted and not a.dose.withheld, a.dose.text
    assert "upadacitinib.ema.renal-severe-ibd" in fired(a) and "kidney problems" in a.dose.reason
    assert assess({"egfr": 45}, "upadacitinib", "EMA", indication).dose.mg == 45


def test_upadacitinib_eu_atopic_dermatitis_and_other_indications_by_band():
    ad = assess({"egfr": 22}, "upadacitinib", "EMA", "atopic-dermatitis")
    assert ad.dose.mg is None and "upadacitinib.ema.renal-severe-ad" in fired(ad)
    for indication in ("rheumatoid-arthritis", "atopic-dermatitis", "giant-cell-arteritis"):
        esrd = assess({"egfr": 12}, "upadacitinib", "EMA", indication)
        assert esrd.dose.mg is None and "upadacitinib.ema.renal-esrd-other" in fired(esrd), indication
    ra = assess({"egfr": 22}, "upadacitinib", "EMA", "rheumatoid-arthritis")
    assert (ra.dose.mg, ra.dose.every_h) == (15, 24)  # no verified EU band between 15 and 30 outside UC/CD/AD


def test_upadacitinib_tga_end_stage_renal_disease_is_never_silent():
    a = assess({"egfr": 12}, "upadacitinib", "TGA", "rheumatoid-arthritis")
    assert "upadacitinib.tga.renal-esrd" in fired(a)
    assert "upadacitinib.tga.renal-esrd" not in fired(assess({"egfr": 45}, "upadacitinib", "TGA", "rheumatoid-arthritis"))


# ---- tofacitinib: EU UC and pJIA, US paediatric ----------------------------------------------------------------
def test_tofacitinib_eu_ulcerative_colitis_in_severe_renal_impairment_gets_no_10_mg_induction():
    a = assess({"crcl": 20}, "tofacitinib", "EMA", "ulcerative-colitis")
    assert a.dose.mg is None and "tofacitinib.ema.renal-severe-uc" in fired(a)
    assert "5 mg twice daily where 10 mg twice daily is indicated" in a.dose.text
    normal = assess({"crcl": 45}, "tofacitinib", "EMA", "ulcerative-colitis")
    assert (normal.dose.mg, normal.dose.every_h) == (10, 12)


@pytest.mark.parametrize(("regulator", "rule"), [("EMA", "tofacitinib.ema.renal-severe-jia"),
                                                  ("FDA", "tofacitinib.fda.renal-pediatric-tablet")])
def test_tofacitinib_child_with_renal_impairment_gets_no_twice_daily_dose(regulator, rule):
    a = assess({"crcl": 25}, "tofacitinib", regulator, "juvenile-idiopathic-arthritis", age=10, weight_kg=30)
    assert a.dose.mg is None and a.dose.adjusted and rule in fired(a)
    assert rule not in fired(assess({"crcl": 90}, "tofacitinib", regulator, "juvenile-idiopathic-arthritis", age=10, weight_kg=30))


# ---- the gap list ------------------------------------------------------------------------------------------------
# Approved oral indications of a drug that some label adjusts for renal function, under a label whose renal section
# jakinib has not verified. Each is covered by a stop-gap rule (id ending 'not-verified') that withholds the dose where
# the verified US/EU labels of the same product change it; the label's own renal dosing is left out, not guessed.
RENAL_NOT_VERIFIED = {
    ("abrocitinib", "HealthCanada", "atopic-dermatitis"), ("abrocitinib", "MHRA", "atopic-dermatitis"),
    ("abrocitinib", "NMPA", "atopic-dermatitis"), ("abrocitinib", "TGA", "atopic-dermatitis"),
    ("baricitinib", "MHRA", "alopecia-areata"), ("baricitinib", "MHRA", "atopic-dermatitis"),
    ("baricitinib", "MHRA", "juvenile-idiopathic-arthritis"), ("baricitinib", "MHRA", "rheumatoid-arthritis"),
    ("baricitinib", "PMDA", "alopecia-areata"), ("baricitinib", "PMDA", "atopic-dermatitis"), ("baricitinib", "PMDA", "covid-19"),
    ("baricitinib", "PMDA", "rheumatoid-arthritis"), ("baricitinib", "TGA", "alopecia-areata"),
    ("baricitinib", "TGA", "atopic-dermatitis"), ("baricitinib", "TGA", "rheumatoid-arthritis"),
    ("fedratinib", "HealthCanada", "myelofibrosis"),
    ("ruxolitinib", "HealthCanada", "myelofibrosis"), ("ruxolitinib", "HealthCanada", "polycythaemia-vera"),
    ("ruxolitinib", "Medsafe", "myelofibrosis"), ("ruxolitinib", "PMDA", "graft-versus-host-disease"),
    ("ruxolitinib", "PMDA", "myelofibrosis"), ("ruxolitinib", "PMDA", "polycythaemia-vera"), ("ruxolitinib", "TGA", "myelofibrosis"),
    ("tofacitinib", "HealthCanada", "psoriatic-arthritis"), ("tofacitinib", "HealthCanada", "rheumatoid-arthritis"),
    ("tofacitinib", "HealthCanada", "ulcerative-colitis"), ("tofacitinib", "MHRA", "psoriatic-arthritis"),
    ("tofacitinib", "MHRA", "rheumatoid-arthritis"), ("tofacitinib", "MHRA", "ulcerative-colitis"),
    ("tofacitinib", "NMPA", "rheumatoid-arthritis"), ("tofacitinib", "PMDA", "rheumatoid-arthritis"),
    ("tofacitinib", "PMDA", "ulcerative-colitis"), ("tofacitinib", "TGA", "ankylosing-spondylitis"),
    ("tofacitinib", "TGA", "psoriatic-arthritis"), ("tofacitinib", "TGA", "rheumatoid-arthritis"),
    ("tofacitinib", "TGA", "ulcerative-colitis"),
    ("upadacitinib", "HealthCanada", "rheumatoid-arthritis"), ("upadacitinib", "MHRA", "atopic-dermatitis"),
    ("upadacitinib", "Medsafe", "atopic-dermatitis"), ("upadacitinib", "NMPA", "ankylosing-spondylitis"),
    ("upadacitinib", "NMPA", "atopic-dermatitis"), ("upadacitinib", "NMPA", "non-radiographic-axial-spondyloarthritis"),
    ("upadacitinib", "PMDA", "ankylosing-spondylitis"), ("upadacitinib", "PMDA", "atopic-dermatitis"),
    ("upadacitinib", "PMDA", "crohns-disease"), ("upadacitinib", "PMDA", "non-radiographic-axial-spondyloarthritis"),
    ("upadacitinib", "PMDA", "psoriatic-arthritis"), ("upadacitinib", "PMDA", "rheumatoid-arthritis"),
    ("upadacitinib", "PMDA", "ulcerative-colitis"),
}
# Approved, but the checker never assesses the product under that regulator (no label of its own): no rule at all.
NO_RENAL_RULE = {("tofacitinib", "EMA", "psoriatic-arthritis")}  # the EU prolonged-release tablet; its renal wording is not verified


def _renal_coverage() -> tuple[set, set]:
    """(approvals with no renal rule, approvals covered only by stop-gap 'not-verified' rules)."""
    none, stop_gap = set(), set()
    for drug in KB.drugs.values():
        if not any(r.renal for r in drug.rules):
            continue
        oral = {p.id for p in drug.products if p.route == "oral"}
        for row in KB.approvals(drug=drug.name):
            a = row.approval
            if a.decision != "approved" or a.product not in oral:
                continue
            rules = [r for r in drug.rules if r.renal and a.regulator in r.regulators and a.product in r.products
                     and (not r.indications or a.indication in r.indications)]
            if not rules:
                none.add((drug.name, a.regulator, a.indication))
            elif all(r.id.endswith("not-verified") for r in rules):
                stop_gap.add((drug.name, a.regulator, a.indication))
    return none, stop_gap


def test_every_approved_oral_indication_of_a_renally_adjusted_drug_has_a_renal_rule_or_is_a_listed_gap():
    none, stop_gap = _renal_coverage()
    assert none == NO_RENAL_RULE, f"approvals without any renal rule: {sorted(none ^ NO_RENAL_RULE)}"
    assert not stop_gap - RENAL_NOT_VERIFIED, f"new stop-gap-only approvals: {sorted(stop_gap - RENAL_NOT_VERIFIED)}"
    assert not RENAL_NOT_VERIFIED - stop_gap, f"now have a verified renal rule (drop from the list): {sorted(RENAL_NOT_VERIFIED - stop_gap)}"


def test_a_stop_gap_rule_never_states_a_dose_and_says_it_is_not_verified():
    gaps = [r for d in KB.drugs.values() for r in d.rules if r.id.endswith("not-verified")]
    assert len(gaps) >= 7
    for r in gaps:
        assert r.renal is not None and r.dose is None and r.status == "caution", r.id
        assert "not verified by jakinib" in r.message and "no dose" in r.message, r.id
        assert not {"FDA", "EMA"} & set(r.regulators), r.id  # US and EU rules rest on those labels' own text


@pytest.mark.parametrize(("drug", "regulator", "indication"), sorted(RENAL_NOT_VERIFIED), ids=str)
def test_an_unverified_label_never_gives_the_normal_dose_in_end_stage_renal_disease(drug, regulator, indication):
    a = assess({"egfr": 12}, drug, regulator, indication)
    assert a.dose is None or a.dose.mg is None, a.dose.text
    assert any(f.rule.endswith("not-verified") for f in a.findings)


@pytest.mark.parametrize(("drug", "regulator", "indication"), [("filgotinib", "EMA", "rheumatoid-arthritis"),
                                                               ("upadacitinib", "EMA", "ulcerative-colitis"),
                                                               ("tofacitinib", "EMA", "ulcerative-colitis")])
def test_labels_that_gained_a_renal_rule_are_off_the_gap_list(drug, regulator, indication):
    none, stop_gap = _renal_coverage()
    assert (drug, regulator, indication) not in RENAL_NOT_VERIFIED | none | stop_gap
