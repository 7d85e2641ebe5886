"""The safety checker: properties (hypothesis) and specific behaviour on the real knowledge base."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jakinib
from jakinib.knowledge.schema import STATUS_ORDER
from jakinib.safety import engine, parse_patient, units

KB = jakinib.load()
TODAY = dt.date(2026, 11, 25)
BASE = {
    "age": 40, "sex": "female", "pregnant": False, "breastfeeding": False, "smoking": "never", "conditions": [],
    "labs": {"anc": 4.0, "alc": 1.8, "hb": 13.5, "platelets": 250, "egfr": 95, "crcl": 100, "alt": 20, "ast": 20},
    "medications": [], "metabolizer": {"CYP2C19": "normal", "CYP2C9": "normal"},
    "screening": {"tuberculosis": "negative", "hepatitis-b": "negative", "hepatitis-c": "negative", "zoster-vaccine": "done"},
}
REGULATORS = sorted({a.approval.regulator for a in KB.all_approvals()})
LOWER_IS_WORSE = ("anc", "alc", "hb", "platelets", "egfr", "crcl")
HIGHER_IS_WORSE = ("alt", "ast")
MEDS = sorted(KB.medications)
CONDITIONS = sorted(KB.conditions)
slow = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rank(status: str) -> int:
    """Higher is better (ok = 4)."""
    return STATUS_ORDER.index(status)


def statuses(raw: dict, regulator: str) -> dict[str, str]:
    report = engine.check(KB, parse_patient(raw, KB), regulator=regulator, today=TODAY)
    return {a.drug: a.status for a in report.assessments}


@slow
@given(lab=st.sampled_from(LOWER_IS_WORSE + HIGHER_IS_WORSE), factor=st.floats(0.05, 0.95),
       regulator=st.sampled_from(REGULATORS))
def test_a_worse_lab_never_improves_a_status(lab, factor, regulator):
    lo, hi = KB.labs[lab].plausible
    good = copy.deepcopy(BASE)
    bad = copy.deepcopy(BASE)
    value = BASE["labs"][lab]
    bad["labs"][lab] = max(lo, value * factor) if lab in LOWER_IS_WORSE else min(hi, value / factor)
    before, after = statuses(good, regulator), statuses(bad, regulator)
    for drug in before:
        assert rank(after[drug]) <= rank(before[drug]), (drug, lab, bad["labs"][lab], before[drug], after[drug])


def assert_never_better(changed: dict, regulator: str, what: str) -> None:
    before, after = statuses(BASE, regulator), statuses(changed, regulator)
    for drug in before:
        assert rank(after[drug]) <= rank(before[drug]), (drug, what, before[drug], after[drug])


@slow
@given(condition=st.sampled_from(CONDITIONS), regulator=st.sampled_from(REGULATORS))
def test_adding_a_condition_never_improves_a_status(condition, regulator):
    assert_never_better({**copy.deepcopy(BASE), "conditions": [condition]}, regulator, condition)


@slow
@given(med=st.sampled_from(MEDS), regulator=st.sampled_from(REGULATORS))
def test_adding_an_interacting_medicine_never_improves_a_status(med, regulator):
    assert_never_better({**copy.deepcopy(BASE), "medications": [med]}, regulator, med)


@settings(deadline=None)
@given(value=st.floats(0.01, 500), unit=st.sampled_from(["cells/mm3", "cells/uL", "10*3/uL", "10^9/L"]))
def test_count_units_round_trip(value, unit):
    canonical = units.convert(value, unit, "10^9/L")
    back = units.convert(canonical, "10^9/L", "10^9/L") / units.convert(1.0, unit, "10^9/L")
    assert back == pytest.approx(value, rel=1e-9)


@settings(deadline=None)
@given(value=st.floats(0.5, 30))
def test_haemoglobin_g_per_l_round_trip(value):
    assert units.convert(value * 10, "g/L", "g/dL") == pytest.approx(value)


def test_missing_screening_is_never_ok():
    raw = copy.deepcopy(BASE)
    raw["screening"] = {}
    report = engine.check(KB, parse_patient(raw, KB), regulator="FDA", today=TODAY)
    for a in report.assessments:
        if a.route == "oral" and "tuberculosis" in a.screening_missing:
            assert a.status != "ok"


def test_unknown_inputs_say_what_is_needed():
    report = engine.check(KB, parse_patient({"age": 50}, KB), drugs=["tofacitinib"], regulator="FDA",
                          indication="rheumatoid-arthritis", today=TODAY)
    a = report.assessments[0]
    assert a.status != "ok"
    needs = {n for fnd in a.findings for n in (fnd.needs or [])}
    assert "labs.alc" in needs


def test_off_label_is_flagged():
    report = engine.check(KB, parse_patient(BASE, KB), drugs=["tofacitinib"], regulator="FDA",
                          indication="atopic-dermatitis", today=TODAY)
    a = report.assessments[0]
    assert a.approved is False and any(f.rule == "approval.off-label" for f in a.findings)


def test_regional_difference_shows_for_tofacitinib_lymphocytes():
    raw = copy.deepcopy(BASE)
    raw["labs"]["alc"] = 0.6  # between the FDA's 0.5 and a stricter threshold elsewhere
    fda = engine.check(KB, parse_patient(raw, KB), drugs=["tofacitinib"], regulator="FDA", indication="rheumatoid-arthritis")
    ema = engine.check(KB, parse_patient(raw, KB), drugs=["tofacitinib"], regulator="EMA", indication="rheumatoid-arthritis")
    fda_rules = {f.rule for f in fda.assessments[0].findings}
    ema_rules = {f.rule for f in ema.assessments[0].findings}
    assert fda_rules != ema_rules


def test_monitoring_dates_count_from_today():
    report = engine.check(KB, parse_patient(BASE, KB), drugs=["upadacitinib"], regulator="FDA",
                          indication="atopic-dermatitis", today=TODAY)
    dates = [m.date for m in report.assessments[0].monitoring if m.date]
    assert dates and min(dates) >= TODAY.isoformat()


def test_creatinine_clearance_is_derived_by_cockcroft_gault_and_reported():
    raw = {"age": 67, "sex": "female", "weight_kg": 72, "labs": {"creatinine": {"value": 97, "unit": "umol/L"}}}
    p = parse_patient(raw, KB)
    # (140 - 67) x 72 / (72 x 97/88.4) x 0.85, with 88.4 µmol/L per mg/dL from creatinine's molar mass
    assert p.labs["creatinine"] == pytest.approx(97 / 88.4, rel=1e-3)
    assert p.labs["crcl"] == pytest.approx((140 - 67) / (97 / 88.4) * 0.85, rel=1e-3)
    assert p.derived and "Cockcroft-Gault" in p.derived[0]
    given = parse_patient({**raw, "labs": {**raw["labs"], "crcl": 40}}, KB)
    assert given.labs["crcl"] == 40 and not any("crcl" in d for d in given.derived)  # a measured value is never overwritten
    missing = parse_patient({"age": 67, "labs": {"creatinine": 1.1}}, KB)
    assert "crcl" not in missing.labs  # no weight or sex: unknown, never guessed
