"""Real-world-shaped records: the 30 Synthea R4 bundles in ../shared/fhir/synthea and the text-only cohort.

Read from ../shared (never copied into the repository); skipped with a message when it is absent. "Today"
for each bundle is the date of its newest resource, so its last visit's labs are current.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import jakinib
from jakinib.errors import FhirError
from jakinib.interop import fhir, terminology
from jakinib.safety import engine

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared"
SYNTHEA = SHARED / "fhir" / "synthea"
BUNDLES = sorted(SYNTHEA.glob("*.json")) if SYNTHEA.is_dir() else []
KB = jakinib.load()
DECEASED = {"Isaura_Dietrich", "Loma_Johns"}  # deceasedDateTime in the record: refused, never assessed

pytestmark = pytest.mark.skipif(not BUNDLES, reason=f"Synthea bundles not found in {SYNTHEA} (../shared is absent)")


def name(path: Path) -> str:
    return "_".join(path.name.split("_")[:-1])


@cache
def load(path: Path) -> tuple[dict, dt.date]:
    bundle = json.loads(path.read_text())
    dates = [fhir.when_instant(e["resource"]) for e in bundle["entry"]]
    return bundle, max(d for d in dates if d).date()


@cache
def read(path: Path):
    bundle, today = load(path)
    r = fhir.read_bundle(bundle, KB, today)
    return r, fhir.patient_from_read(r, KB), today


def by_name(prefix: str) -> Path:
    return next(p for p in BUNDLES if p.name.startswith(prefix))


@pytest.mark.parametrize("path", BUNDLES, ids=name)
def test_bundle_reads_what_the_rules_need(path):
    bundle, today = load(path)
    if name(path) in DECEASED:
        with pytest.raises(FhirError, match="deceased"):
            fhir.read_bundle(bundle, KB, today)
        return
    _, p, _ = read(path)
    res = [e["resource"] for e in bundle["entry"]]
    assert p.age is not None and p.sex in ("female", "male")
    weights = [o for o in res if o["resourceType"] == "Observation" and o["code"]["coding"][0]["code"] == "29463-7"]
    if weights:
        newest = max(weights, key=lambda o: fhir.when_instant(o))
        if (today - fhir.when_instant(newest).date()).days <= fhir.WEIGHT_MAX_AGE_DAYS:
            assert p.weight_kg == pytest.approx(newest["valueQuantity"]["value"], abs=0.01)
    creat = [o for o in res if o["resourceType"] == "Observation" and o["code"]["coding"][0]["code"] in ("38483-4", "2160-0")]
    current = [o for o in creat if (today - fhir.when_instant(o).date()).days <= KB.labs["creatinine"].max_age_days]
    if current:
        assert "creatinine" in p.labs
        if p.weight_kg is not None:  # weight + creatinine + age + sex -> Cockcroft-Gault
            assert "crcl" in p.labs and any("Cockcroft-Gault" in d for d in p.derived)
    elif creat:
        assert "creatinine" in p.lab_notes and "stale" in p.lab_notes["creatinine"]
    egfr = [o for o in res if o["resourceType"] == "Observation" and o["code"]["coding"][0]["code"] == "33914-3"
            and (today - fhir.when_instant(o).date()).days <= 90]
    if egfr:  # a current measured eGFR is read; without one, eGFR is derived from a current creatinine (renal.py)
        assert "egfr" in p.labs and not any(d.startswith("labs.egfr") for d in p.derived)
    else:
        assert ("egfr" in p.labs) == any(d.startswith("labs.egfr") for d in p.derived)
    # every condition one of our rules concerns is read, active ones as current and resolved ones as history
    for c in (x for x in res if x["resourceType"] == "Condition"):
        hit = terminology.resolve_condition(KB, fhir._codings(c["code"]))
        if hit:
            past = c["clinicalStatus"]["coding"][0]["code"] in fhir.INACTIVE_CONDITION
            assert hit[0] in (p.history + p.conditions if past else p.conditions)
    # zoster vaccine (CVX 121 in these records) -> screening done
    if any(i["resourceType"] == "Immunization" and i["vaccineCode"]["coding"][0]["code"] == "121" for i in res):
        assert p.screening["zoster-vaccine"].result == "done"
    report = engine.check(KB, p, regulator="FDA", today=today)
    assert len(report.unmapped) <= 10, report.unmapped


def test_every_rxnorm_coded_medication_maps_to_its_ingredient_or_is_named_not_rule_relevant():
    seen = set()
    for path in BUNDLES:
        bundle, _ = load(path)
        for e in bundle["entry"]:
            r = e["resource"]
            if r["resourceType"] != "MedicationRequest":
                continue
            coding = r["medicationCodeableConcept"]["coding"][0]
            seen.add((coding["code"], coding["display"]))
    assert len(seen) > 40
    for code, display in seen:
        m = terminology.resolve_medication(KB, [(terminology.RXNORM, code, display)], None)
        if m is None:  # not a JAK inhibitor and no interaction class: reported by its parsed ingredient
            assert terminology.ingredient_names(display), display
    clopidogrel = terminology.resolve_medication(KB, [(terminology.RXNORM, "309362", None)], None)
    assert clopidogrel.classes == ("antiplatelet",) and clopidogrel.matched_by == "code"


def test_hand_worked_gayla_ferry_clopidogrel_makes_abrocitinib_contraindicated():
    """83-year-old woman on clopidogrel 75 mg (RxNorm 309362), coronary heart disease: US PI 4 contraindicates
    abrocitinib with antiplatelet therapy (except low-dose aspirin) in the first 3 months."""
    _, p, today = read(by_name("Gayla_Ferry"))
    assert p.age == 83 and p.sex == "female" and "antiplatelet" in p.medication_classes
    assert "cardiovascular-risk-factors" in p.conditions and p.pregnant is False
    a = engine.check(KB, p, drugs=["abrocitinib"], regulator="FDA", indication="atopic-dermatitis", today=today).assessments[0]
    assert a.status == "contraindicated" and "abrocitinib.fda.antiplatelet" in {f.rule for f in a.findings}


def test_hand_worked_rudy_macejkovic_past_mi_and_chd_give_tofacitinib_cv_warning():
    """59-year-old man with coronary heart disease and myocardial infarction: Xeljanz US boxed warning (MACE in
    RA patients >= 50 with a cardiovascular risk factor) applies."""
    _, p, today = read(by_name("Rudy_Macejkovic"))
    assert {"cardiovascular-risk-factors", "myocardial-infarction"} <= set(p.conditions + p.history)
    a = engine.check(KB, p, drugs=["tofacitinib"], regulator="FDA", indication="rheumatoid-arthritis", today=today).assessments[0]
    assert "tofacitinib.fda.age50-cv-risk" in {f.rule for f in a.findings if not f.needs}


def test_hand_worked_darin_skiles_past_cancer_fires_ema_malignancy():
    """Resolved malignancy in the record: EMA Article 20 'current or past malignancy' must fire for upadacitinib."""
    _, p, today = read(by_name("Darin_Skiles"))
    assert "malignancy" in p.history
    a = engine.check(KB, p, drugs=["upadacitinib"], regulator="EMA", indication="atopic-dermatitis", today=today).assessments[0]
    assert "upadacitinib.ema.malignancy" in {f.rule for f in a.findings if not f.needs}


def test_hand_worked_ali_herman_severe_renal_impairment_avoids_abrocitinib():
    """68-year-old man, eGFR 9.85 mL/min/1.73 m2 at his last visit: US PI 2.3 'not recommended' below 30."""
    _, p, today = read(by_name("Ali_Herman"))
    assert p.labs["egfr"] < 30 and "malignancy" in p.conditions
    a = engine.check(KB, p, drugs=["abrocitinib"], regulator="FDA", indication="atopic-dermatitis", today=today).assessments[0]
    assert "abrocitinib.fda.renal-severe" in {f.rule for f in a.findings if not f.needs}


def test_hand_worked_austin_spencer_warfarin_and_verapamil_classes():
    _, p, _ = read(by_name("Austin_Spencer"))
    assert {"warfarin", "verapamil"} <= set(p.medications)
    assert {"anticoagulant", "moderate-cyp3a4-inhibitor"} <= set(p.medication_classes)


# ---- the text-only cohort against the CQL peer -------------------------------------------------------

PEER = {"do-not-start": 280, "antiplatelet": 100, "dose-50": 361, "zoster-vaccinated": 786}  # shared/peers/README.md


@pytest.mark.skipif(not (SHARED / "peers" / "make_cohort.py").exists(), reason="../shared/peers is absent")
def test_text_only_cohort_matches_the_cql_peer(tmp_path):
    out = tmp_path / "c.ndjson"
    subprocess.run([sys.executable, str(SHARED / "peers" / "make_cohort.py"), "2000", str(out)], check=True, capture_output=True)
    today = dt.date(2026, 11, 25)  # the cohort's labs are dated 2026-10-01
    counts = dict.fromkeys(["do-not-start", "antiplatelet", "dose-50", "zoster-vaccinated", "hepatitis-b"], 0)
    for line in out.read_text().splitlines():
        r = fhir.read_bundle(json.loads(line), KB, today)
        assert len(r.ordered) == 1 and r.ordered[0] in KB.drugs  # the ordered JAK inhibitor is found by its text
        p = fhir.patient_from_read(r, KB)
        assert not any(r.ordered[0] in m.lower() for m in p.unmapped_medications)  # never an unmapped co-medication
        a = engine.check(KB, p, drugs=["abrocitinib"], regulator="FDA", indication="atopic-dermatitis", today=today).assessments[0]
        fired = {f.rule for f in a.findings if not f.needs}
        counts["antiplatelet"] += "abrocitinib.fda.antiplatelet" in fired
        counts["dose-50"] += bool(a.dose and a.dose.mg == 50)
        counts["zoster-vaccinated"] += "zoster-vaccine" in p.screening
        peer_dns = {"abrocitinib.fda.platelets-low", "abrocitinib.fda.alc-low", "abrocitinib.fda.anc-low",
                    "abrocitinib.fda.hb-low", "abrocitinib.fda.active-tb"}
        counts["do-not-start"] += bool(fired & peer_dns)
        counts["hepatitis-b"] += bool("abrocitinib.fda.hepatitis-b" in fired and not fired & peer_dns)
    for key, value in PEER.items():
        assert counts[key] == value, (key, counts)
    # jakinib's label rules also stop 30 more patients for active hepatitis B (US PI; the peer's ELM has no
    # hepatitis rule), so jakinib's label do-not-start count is 280 + 30 = 310.
    assert counts["hepatitis-b"] == 30
