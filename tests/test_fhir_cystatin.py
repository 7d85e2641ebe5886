"""Issue 10: cystatin C had no LOINC code, so a FHIR record could never give the CKD-EPI 2021 creatinine-cystatin C eGFR."""

from __future__ import annotations

import datetime as dt

import jakinib
from jakinib.interop import fhir

KB = jakinib.load()


def _obs(code: str, value: float, unit: str, when: str = "2026-11-20") -> dict:
    return {"resourceType": "Observation", "status": "final", "effectiveDateTime": when,
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "valueQuantity": {"value": value, "unit": unit}}


def _read(*obs: dict):
    pat = {"resourceType": "Patient", "id": "p", "birthDate": "1960-01-01", "gender": "male"}
    return fhir.patient_from_bundle({"resourceType": "Bundle", "entry": [{"resource": r} for r in (pat, *obs)]}, KB, dt.date(2026, 11, 25))


def test_cystatin_c_from_fhir_gives_the_creatinine_cystatin_egfr_and_height_is_read():
    p = _read(_obs("8302-2", 180, "cm"), _obs("29463-7", 80, "kg"), _obs("2160-0", 1.0, "mg/dL"), _obs("33863-2", 1.0, "mg/L"))
    assert p.height_cm == 180 and p.labs["cystatin-c"] == 1.0
    assert any("creatinine-cystatin C" in d for d in p.derived)


def test_a_stale_cystatin_c_is_not_used():
    p = _read(_obs("2160-0", 1.0, "mg/dL"), _obs("33863-2", 1.0, "mg/L", when="2019-01-01"))
    assert "cystatin-c" not in p.labs and "stale" in p.lab_notes["cystatin-c"]
