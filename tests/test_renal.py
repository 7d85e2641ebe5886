"""Renal function: the equations, every renal rule naming its label's measure, surrogates, and indication tables."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jakinib
from jakinib.knowledge.schema import Predicate, Rule, predicate_fields
from jakinib.safety import engine, parse_patient, renal

KB = jakinib.load()
TODAY = dt.date(2026, 12, 1)
BASE = {"age": 60, "sex": "female", "conditions": [], "labs": {"anc": 4.0, "alc": 1.8, "hb": 13.0, "platelets": 250},
        "screening": {"tuberculosis": "negative", "hepatitis-b": "negative", "hepatitis-c": "negative", "zoster-vaccine": "done"}}
RENAL_RULES = [(d.name, r) for d in KB.drugs.values() for r in d.rules if r.renal is not None]
LABEL_SETS = sorted({(drug, reg) for drug, r in RENAL_RULES for reg in r.regulators})


def assess(labs: dict, drug: str, regulator: str, indication: str | None, **extra):
    raw = {**BASE, **extra, "labs": {**BASE["labs"], **labs}}
    return engine.check(KB, parse_patient(raw, KB), drugs=[drug], regulator=regulator, indication=indication,
                        today=TODAY).assessments[0]


# ---- equations ---------------------------------------------------------------------------------

def test_cockcroft_gault_matches_the_formula():
    # (140 - 67) x 72 / (72 x 1.1) x 0.85
    assert renal.cockcroft_gault(67, 72, "female", 1.1) == pytest.approx(73 / 1.1 * 0.85)
    assert renal.cockcroft_gault(67, None, "female", 1.1) is None


def test_ckd_epi_2021_matches_a_published_worked_value():
    # creatinine 1.2 mg/dL, 55-year-old man: 71 mL/min/1.73 m² (the NKF calculator's value, as quoted in stored material)
    assert round(renal.ckd_epi_2021(55, "male", 1.2)) == 71
    # by hand: 142 x (0.6/0.7)^-0.241 x 0.9938^40 x 1.012
    assert renal.ckd_epi_2021(40, "female", 0.6) == pytest.approx(142 * (0.6 / 0.7) ** -0.241 * 0.9938 ** 40 * 1.012)
    # creatinine-cystatin C, by hand at Scr/k > 1 and Scys/0.8 > 1
    expected = 135 * (1.8 / 0.9) ** -0.544 * (1.6 / 0.8) ** -0.778 * 0.9961 ** 70
    assert renal.ckd_epi_2021(70, "male", 1.8, 1.6) == pytest.approx(expected)


@settings(deadline=None, max_examples=200)
@given(age=st.floats(18, 100), sex=st.sampled_from(["female", "male"]), scr=st.floats(0.2, 15), cys=st.one_of(st.none(), st.floats(0.3, 8)),
       factor=st.floats(1.01, 3))
def test_ckd_epi_falls_as_creatinine_rises_and_is_continuous_at_the_knot(age, sex, scr, cys, factor):
    assert renal.ckd_epi_2021(age, sex, scr * factor, cys) < renal.ckd_epi_2021(age, sex, scr, cys)
    knot = 0.7 if sex == "female" else 0.9
    assert renal.ckd_epi_2021(age, sex, knot * (1 - 1e-9), cys) == pytest.approx(renal.ckd_epi_2021(age, sex, knot * (1 + 1e-9), cys))


def test_du_bois_bsa_and_deindexing():
    assert renal.bsa_du_bois(70, 170) == pytest.approx(0.007184 * 70 ** 0.425 * 170 ** 0.725)
    assert round(renal.bsa_du_bois(70, 170), 2) == 1.81
    assert renal.bsa_du_bois(70, None) is None


def test_nothing_is_derived_for_children():
    labs, notes = renal.derive_labs(12, "male", 40, 150, {"creatinine": 0.6})
    assert "egfr" not in labs and "crcl" not in labs and "not derived" in notes[0]


def test_cystatin_c_switches_to_the_combined_equation():
    p = parse_patient({**BASE, "labs": {"creatinine": 1.0, "cystatin-c": {"value": 1.2, "unit": "mg/L"}}}, KB)
    assert p.labs["egfr"] == pytest.approx(renal.ckd_epi_2021(60, "female", 1.0, 1.2))
    assert any("creatinine-cystatin C" in d for d in p.derived)


# ---- data: every renal rule names its measure ----------------------------------------------------

@pytest.mark.parametrize("rule", [r for _, r in RENAL_RULES], ids=lambda r: r.id)
def test_every_renal_rule_names_the_measure_it_reads(rule):
    used = predicate_fields(rule.when) & {"labs.crcl", "labs.egfr"}
    assert used == {f"labs.{rule.renal.measure}"}
    assert rule.renal.text and rule.renal.sources
    assert rule.renal.equation != "cockcroft-gault" or rule.renal.measure == "crcl"


def test_every_rule_reading_renal_function_has_a_renal_basis():
    for drug in KB.drugs.values():
        for rule in drug.rules:
            if predicate_fields(rule.when) & {"labs.crcl", "labs.egfr"}:
                assert rule.renal is not None, rule.id


def test_one_label_bands_by_one_basis():
    """Within one product x regulator, the renal rules agree on measure and indexing (one label, one definition)."""
    by_label: dict[tuple[str, str], set] = {}
    for _, rule in RENAL_RULES:
        for product in rule.products:
            for reg in rule.regulators:
                by_label.setdefault((product, reg), set()).add((rule.renal.measure, rule.renal.indexed, rule.renal.equation))
    mixed = {k: v for k, v in by_label.items() if len(v) > 1}
    assert not mixed, mixed


def test_a_rule_without_its_measure_is_rejected():
    when = Predicate.model_validate({"field": "labs.crcl", "op": "<", "value": 30})
    with pytest.raises(ValueError, match="renal measure"):
        Rule(id="x.y", products=["p"], regulators=["FDA"], when=when, status="avoid", message="m", sources=["seed"])
    with pytest.raises(ValueError, match=r"renal\.measure is egfr"):
        Rule(id="x.y", products=["p"], regulators=["FDA"], when=when, status="avoid", message="m", sources=["seed"],
             renal={"measure": "egfr", "equation": "any", "text": "t", "sources": ["seed"]})


# ---- the reported failures, now fixed --------------------------------------------------------------

def _renal_needs(a) -> list[str]:
    return [f.rule for f in a.findings if f.needs and set(f.needs) & {"labs.crcl", "labs.egfr"}]


def test_egfr_22_only_is_read_as_a_surrogate_for_a_crcl_label():
    a = assess({"egfr": 22}, "baricitinib", "EMA", "rheumatoid-arthritis")
    assert not _renal_needs(a)
    assert a.status == "avoid" and a.dose is not None and a.dose.text.startswith("Not recommended")
    surrogate = [f for f in a.findings if f.rule == "renal.surrogate.crcl"]
    assert surrogate and "eGFR 22" in surrogate[0].message and "applied as it stands" in surrogate[0].message


def test_tofacitinib_ema_at_egfr_22_is_reduced_to_once_daily():
    a = assess({"egfr": 22}, "tofacitinib", "EMA", "rheumatoid-arthritis")
    assert a.dose is not None and (a.dose.mg, a.dose.every_h) == (5, 24) and a.dose.adjusted
    assert any(f.rule == "tofacitinib.ema.renal-severe" and f.surrogate for f in a.findings)


def test_creatinine_only_patient_gets_derived_egfr_and_the_adjusted_dose():
    a = assess({"creatinine": 1.4}, "baricitinib", "FDA", "rheumatoid-arthritis")
    assert not _renal_needs(a)
    assert a.dose is not None and (a.dose.mg, a.dose.every_h) == (1, 24)
    assert not any(f.rule.startswith("renal.surrogate") for f in a.findings)  # eGFR is the label's own measure


def test_unknown_renal_function_never_gives_the_normal_dose():
    a = assess({}, "tofacitinib", "FDA", "rheumatoid-arthritis")
    assert a.dose is not None and a.dose.withheld and a.dose.mg is None
    assert _renal_needs(a)


def test_near_a_cut_off_the_conservative_band_is_applied_and_both_doses_shown():
    a = assess({"egfr": 58}, "tofacitinib", "FDA", "rheumatoid-arthritis")  # CrCl label, cut-off 50 within 30 %
    assert (a.dose.mg, a.dose.every_h) == (5, 24)
    assert a.dose.candidates and len(a.dose.candidates) == 2
    assert (a.dose.candidates[1].mg, a.dose.candidates[1].every_h) == (5, 12)  # face value: normal function
    clear = assess({"egfr": 90}, "tofacitinib", "FDA", "rheumatoid-arthritis")  # 90 x 0.7 = 63 > 50: clearly normal
    assert (clear.dose.mg, clear.dose.every_h) == (5, 12) and not clear.dose.candidates


def _indications(drug: str, regulator: str) -> list[str | None]:
    rules = [r for d, r in RENAL_RULES if d == drug and regulator in r.regulators]
    named = sorted({i for r in rules for i in (r.indications or [])})
    approved = sorted({row.approval.indication for row in KB.approved_rows(drug, regulator)})
    return named or approved or [None]


CASES = [(drug, reg, ind) for drug, reg in LABEL_SETS for ind in _indications(drug, reg)]


@pytest.mark.parametrize("labs", [{"egfr": 12}, {"egfr": 22}, {"egfr": 45}, {"egfr": 80}, {"creatinine": 0.8}, {"creatinine": 2.6}],
                         ids=lambda x: "-".join(f"{k}{v}" for k, v in x.items()))
@pytest.mark.parametrize(("drug", "regulator", "indication"), CASES, ids=lambda x: str(x))
def test_egfr_only_and_creatinine_only_patients_get_a_dose_or_not_recommended(drug, regulator, indication, labs):
    a = assess(labs, drug, regulator, indication)
    assert not _renal_needs(a), "a renal rule was left unresolved"
    assert a.dose is None or not a.dose.withheld
    if a.dose is None:
        assert any(f.rule in ("dose.not-recorded", "approval.off-label", "approval.below-min-age", "approval.none",
                              "approval.indication-unknown") for f in a.findings)
    rules = [r for r in KB.rules_for(a.product, regulator) if r.renal and (not r.indications or indication in r.indications)]
    if "egfr" in labs and any(r.renal.measure == "crcl" for r in rules):
        assert any(f.rule == "renal.surrogate.crcl" for f in a.findings)


# ---- "both" vs "either" (issue 11, item 8) ------------------------------------------------------

@pytest.mark.parametrize(("platelets", "anc", "fires"), [(30, 4.0, True), (250, 0.8, True), (30, 0.8, True), (250, 4.0, False)])
def test_fedratinib_eu_baseline_limits_apply_when_either_count_is_low(platelets, anc, fires):
    a = assess({"platelets": platelets, "anc": anc, "crcl": 90}, "fedratinib", "EMA", "myelofibrosis")
    hit = [f for f in a.findings if f.rule == "fedratinib.ema.baseline-counts-low"]
    assert bool(hit) == fires
    if fires:
        assert a.status == "do-not-start"
    rule = next(r for r in KB.drugs["fedratinib"].rules if r.id == "fedratinib.ema.baseline-counts-low")
    assert rule.note and "either" in rule.note


# ---- indication-specific tables (issue 11, item 6) ------------------------------------------------

def test_baricitinib_us_covid_has_its_own_renal_table():
    normal = assess({"egfr": 90}, "baricitinib", "FDA", "covid-19")
    assert (normal.dose.mg, normal.dose.every_h) == (4, 24)
    moderate = assess({"egfr": 45}, "baricitinib", "FDA", "covid-19")
    assert (moderate.dose.mg, moderate.dose.every_h) == (2, 24) and moderate.status == "caution"
    severe = assess({"egfr": 20}, "baricitinib", "FDA", "covid-19")
    assert severe.dose.mg is None and severe.dose.adjusted  # band read, dose not verified: never the 4 mg dose
    esrd = assess({"egfr": 10}, "baricitinib", "FDA", "covid-19")
    assert esrd.status == "avoid" and esrd.dose.text.startswith("Not recommended")


def test_baricitinib_us_alopecia_areata_never_gets_the_standard_dose_with_renal_impairment():
    a = assess({"egfr": 45}, "baricitinib", "FDA", "alopecia-areata")
    assert a.dose.mg is None and a.dose.adjusted
    assert any(f.rule == "baricitinib.fda.renal-aa" for f in a.findings)
    ok = assess({"egfr": 90}, "baricitinib", "FDA", "alopecia-areata")
    assert ok.dose.mg == 2 and not ok.dose.adjusted


def test_a_dose_lowered_for_another_reason_stays_as_an_upper_limit_when_renal_function_is_unknown():
    a = assess({}, "baricitinib", "EMA", "rheumatoid-arthritis", age=80)  # EU: 2 mg from age; CrCl unknown
    assert a.dose.mg == 2 and a.dose.adjusted and not a.dose.withheld
    assert "upper limit" in a.dose.text and "renal function unknown" in a.dose.reason


# ---- every approved indication has a dose, or says it has none (issue 11, item 4) ----------------

APPROVED = sorted({(row.drug, row.product, row.approval.regulator, row.approval.indication, row.approval.min_age_years or 0)
                   for row in KB.all_approvals() if row.approval.decision == "approved"})


@pytest.mark.parametrize(("drug", "product", "regulator", "indication", "min_age"), APPROVED, ids=lambda x: str(x))
def test_every_approved_indication_gets_a_dose_or_says_dose_not_recorded(drug, product, regulator, indication, min_age):
    a = assess({"egfr": 95, "crcl": 100, "alt": 20, "ast": 20}, drug, regulator, indication, age=max(min_age, 40), weight_kg=70)
    if a.product != product or a.approved is not True:
        pytest.skip(f"assessed on {a.product}, approved={a.approved}")
    said = any(f.rule == "dose.not-recorded" for f in a.findings)
    assert (a.dose is not None) != said, (a.dose, [f.rule for f in a.findings])


def _approvals_without_a_dose():
    out = []
    for row in KB.all_approvals():
        label = KB.label(row.product, row.approval.regulator)
        if row.approval.decision == "approved" and label is not None and not any(
                d.indication == row.approval.indication for d in label.doses):
            out.append(row)
    return out


def test_a_missing_dose_is_a_finding_never_a_silent_none():
    missing = _approvals_without_a_dose()
    if not missing:
        pytest.skip("every approval has a recorded dose")
    checked = 0
    for row in missing:
        a = assess({"egfr": 95, "crcl": 100}, row.drug, row.approval.regulator, row.approval.indication,
                   age=max(row.approval.min_age_years or 0, 40), weight_kg=70)
        if a.product == row.product and a.approved:
            checked += 1
            assert a.dose is None and any(f.rule == "dose.not-recorded" and "not recorded" in f.message for f in a.findings)
    assert checked


@settings(deadline=None, max_examples=60)
@given(case=st.sampled_from(CASES), egfr=st.floats(5, 150), factor=st.floats(0.3, 0.99))
def test_a_lower_surrogate_never_improves_the_status_or_raises_the_dose(case, egfr, factor):
    drug, regulator, indication = case
    order = ("contraindicated", "do-not-start", "avoid", "caution", "ok")
    hi, lo = assess({"egfr": egfr}, drug, regulator, indication), assess({"egfr": egfr * factor}, drug, regulator, indication)
    assert order.index(lo.status) <= order.index(hi.status)
    if hi.dose and lo.dose and hi.dose.mg and lo.dose.mg and hi.dose.every_h and lo.dose.every_h:
        assert lo.dose.mg / lo.dose.every_h <= hi.dose.mg / hi.dose.every_h + 1e-9


def test_label_silent_on_indexing_uses_the_lower_of_indexed_and_deindexed_egfr():
    # EU abrocitinib writes its eGFR bands in mL/min (indexing not stated): a small patient's de-indexed value counts
    bsa = renal.bsa_du_bois(45, 150)
    assert 65 * bsa / 1.73 < 60 < 65
    small = assess({"egfr": 65}, "abrocitinib", "EMA", "atopic-dermatitis", weight_kg=45, height_cm=150)
    assert any(f.rule == "abrocitinib.ema.renal-moderate" for f in small.findings)
    no_height = assess({"egfr": 65}, "abrocitinib", "EMA", "atopic-dermatitis", weight_kg=45)
    assert not any(f.rule == "abrocitinib.ema.renal-moderate" for f in no_height.findings)
    big = assess({"egfr": 65}, "abrocitinib", "EMA", "atopic-dermatitis", weight_kg=100, height_cm=190)
    assert not any(f.rule == "abrocitinib.ema.renal-moderate" for f in big.findings)  # indexed value is the lower one


# ---- upadacitinib (US) and ruxolitinib (EU) renal rules (issue 11, items 1 and 6) ----------------

@pytest.mark.parametrize("labs", [{"egfr": 22}, {"creatinine": 2.6}], ids=["egfr22", "creatinine2.6"])
def test_upadacitinib_us_severe_renal_impairment_is_read_per_indication(labs):
    ad = assess(labs, "upadacitinib", "FDA", "atopic-dermatitis")
    assert (ad.dose.mg, ad.dose.every_h) == (15, 24) and not ad.dose.withheld
    assert any(f.rule == "upadacitinib.fda.renal-severe-ad" for f in ad.findings)
    for indication in ("ulcerative-colitis", "crohns-disease", "rheumatoid-arthritis", "giant-cell-arteritis"):
        a = assess(labs, "upadacitinib", "FDA", indication)
        assert a.dose.mg is None and a.dose.adjusted and not a.dose.withheld, indication  # never the 45 mg induction
        assert "not verified" in a.dose.reason
    normal = assess({"egfr": 45}, "upadacitinib", "FDA", "ulcerative-colitis")
    assert (normal.dose.mg, normal.dose.every_h) == (45, 24)


@pytest.mark.parametrize("indication", ["atopic-dermatitis", "ulcerative-colitis", "rheumatoid-arthritis"])
def test_upadacitinib_us_end_stage_renal_disease_is_not_recommended(indication):
    a = assess({"egfr": 10}, "upadacitinib", "FDA", indication)
    assert a.status == "avoid" and a.dose.text.startswith("Not recommended")
    rule = next(r for r in KB.drugs["upadacitinib"].rules if r.id == "upadacitinib.fda.esrd")
    assert rule.renal.measure == "egfr" and rule.renal.indexed is True


def test_ruxolitinib_eu_severe_renal_impairment_by_indication():
    pv = assess({"crcl": 25}, "ruxolitinib", "EMA", "polycythaemia-vera")
    assert (pv.dose.mg, pv.dose.every_h) == (5, 12) and pv.dose.adjusted
    for indication in ("myelofibrosis", "graft-versus-host-disease"):
        a = assess({"crcl": 25}, "ruxolitinib", "EMA", indication)
        assert a.dose.mg is None and a.dose.adjusted, indication  # halved platelet-based dose / unread GvHD row: no number
    assert assess({"crcl": 45}, "ruxolitinib", "EMA", "polycythaemia-vera").dose.mg == 10  # no EU band above 30 ml/min
    by_egfr = assess({"egfr": 22}, "ruxolitinib", "EMA", "polycythaemia-vera")
    assert (by_egfr.dose.mg, by_egfr.dose.every_h) == (5, 12)
    assert any(f.rule == "renal.surrogate.crcl" for f in by_egfr.findings)


def test_every_label_set_with_a_renal_rule_is_in_the_egfr_and_creatinine_battery():
    """The 'Done when' battery above covers upadacitinib (FDA) and ruxolitinib (EMA) now that they have renal rules."""
    assert {("upadacitinib", "FDA"), ("ruxolitinib", "EMA"), ("ruxolitinib", "FDA"), ("tofacitinib", "FDA"),
            ("baricitinib", "FDA"), ("fedratinib", "EMA")} <= set(LABEL_SETS)


def test_a_rule_dose_equal_to_the_usual_dose_caps_it_and_its_text_is_shown():
    """The usual US atopic dermatitis text offers 30 mg; severe renal impairment caps at 15 mg. The rule's dose equals the
    usual daily dose, and it still wins: the patient must not read '... consider 30 mg'."""
    import jakinib

    a = jakinib.check({"age": 40, "sex": "female", "labs": {"egfr": 22}}, drugs=["upadacitinib"], regulator="FDA",
                      indication="atopic-dermatitis").assessments[0]
    assert a.dose.mg == 15 and a.dose.adjusted and "30 mg" not in a.dose.text.replace("no escalation to 30 mg", "")
