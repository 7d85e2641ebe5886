"""What the checker does not read from FHIR but care gaps need: the current JAK inhibitor with its start date and
dose, and the dates of lab records.

It reads the same codings and dates as ``interop/fhir.py`` (its helpers, not a copy of them) and resolves drugs and
labs through the knowledge base (drug names, brands and synonyms; labs.yaml LOINC codes).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from jakinib.cohort.flatten import Therapy
from jakinib.interop import fhir
from jakinib.knowledge.base import KnowledgeBase, _key

MG = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b", re.IGNORECASE)
PERIOD_H = {"h": 1.0, "d": 24.0, "wk": 168.0}


def _date(text: Any) -> dt.date | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _jak(kb: KnowledgeBase, concept: Any) -> str | None:
    """The JAK inhibitor a medication concept names (generic, brand or synonym; or the first word of a clinical-drug
    display such as 'abrocitinib 100 MG Oral Tablet')."""
    names = kb._names  # the knowledge base's drug-name index (kb.drug without the error's close-match search)
    for _, code, display in fhir._codings(concept):
        for text in (code, display, display.split(" ")[0]):
            hit = names.get(_key(text))
            if hit:
                return hit
    return None


def _start(r: dict[str, Any]) -> dt.date | None:
    period = r.get("effectivePeriod")
    if isinstance(period, dict) and _date(period.get("start")):
        return _date(period.get("start"))
    for key in ("effectiveDateTime", "authoredOn", "dateAsserted"):
        if _date(r.get(key)):
            return _date(r.get(key))
    return None


def _dose(r: dict[str, Any], concept: Any) -> tuple[float | None, float | None]:
    mg = every_h = None
    dosage = (r.get("dosageInstruction") or r.get("dosage") or [None])[0]
    if isinstance(dosage, dict):
        for dr in dosage.get("doseAndRate") or []:
            q = dr.get("doseQuantity") if isinstance(dr, dict) else None
            if isinstance(q, dict) and isinstance(q.get("value"), (int, float)) and str(q.get("unit", q.get("code", ""))).lower() == "mg":
                mg = float(q["value"])
        rep = (dosage.get("timing") or {}).get("repeat") or {}
        freq, period, unit = rep.get("frequency"), rep.get("period"), rep.get("periodUnit")
        if isinstance(freq, (int, float)) and isinstance(period, (int, float)) and unit in PERIOD_H and freq > 0:
            every_h = period * PERIOD_H[unit] / freq
    if mg is None:
        for _, _, display in fhir._codings(concept):
            m = MG.search(display)
            if m:
                mg = float(m.group(1))
                break
    return mg, every_h


def read(resources: list[dict[str, Any]], kb: KnowledgeBase, lab_by_loinc: dict[str, str]) -> Therapy:
    """The current JAK inhibitor (the latest active one by start date), its dose, and dated lab records."""
    t = Therapy()
    best: dt.date | None = None
    for r in resources:
        kind = r.get("resourceType")
        if kind in ("MedicationRequest", "MedicationStatement"):
            if r.get("status") and r["status"] not in fhir.MED_ACTIVE:
                continue
            concept = r.get("medicationCodeableConcept")
            name = _jak(kb, concept)
            if name is None:
                continue
            start = _start(r)
            if t.jak is None or (start is not None and (best is None or start > best)):
                t.jak, t.start, best = name, start, start
                t.dose_mg, t.every_h = _dose(r, concept)
        elif kind == "Observation":
            if r.get("status") and r["status"] not in fhir.OBS_OK:
                continue
            when = _date(fhir._when(r))
            if when is None:
                continue
            for system, code, _ in fhir._codings(r.get("code")):
                if system == "loinc" and code in lab_by_loinc:
                    t.records.setdefault(lab_by_loinc[code], []).append(when)
                    break
    return t


def lab_index(kb: KnowledgeBase) -> dict[str, str]:
    return {code: lab.id for lab in kb.labs.values() for code in lab.loinc}
