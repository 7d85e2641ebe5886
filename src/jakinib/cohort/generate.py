"""A deterministic synthetic cohort in all three input forms: Bundle-per-line NDJSON, a FHIR Bulk export folder (split
and gzipped files per type) and a flat table (CSV or Parquet) — the same patients in each.

Bundles are written by ``interop/fhir.py``'s ``bundle_from_simple`` and then given what a real EHR export has: a JAK
inhibitor order with its start date and dose (by generic or brand name), dated lab records, a stale lab in another
unit (the latest one wins), resolved conditions (not counted), screening and vaccination dates before or after the
start. The flat table carries the same facts with units in some column names (``labs.hb [g/L]``).

Prevalences are plausible orders of magnitude for a dermatology/rheumatology JAK inhibitor clinic, not data.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path
from typing import Any

from jakinib.knowledge.base import KnowledgeBase

CONDITIONS = {"latent-tuberculosis": 0.03, "myocardial-infarction": 0.05, "venous-thromboembolism": 0.03, "malignancy": 0.04,
              "hepatitis-b": 0.01, "herpes-zoster": 0.05, "cardiovascular-risk-factors": 0.2, "moderate-hepatic-impairment": 0.01,
              "end-stage-renal-disease": 0.01, "diverticulitis": 0.02}
MEDICATIONS = {"methotrexate": 0.2, "ketoconazole": 0.02, "fluconazole": 0.02, "probenecid": 0.02, "clopidogrel": 0.05,
               "rifampicin": 0.01, "fluvoxamine": 0.02, "aspirin": 0.1}
ON_JAK = ("tofacitinib", "baricitinib", "upadacitinib", "abrocitinib", "ritlecitinib")
INDICATIONS = ("atopic-dermatitis", "rheumatoid-arthritis", "alopecia-areata", "psoriatic-arthritis", "ulcerative-colitis")
LABS = {"anc": (4.0, 1.5), "alc": (1.8, 0.6), "hb": (13.5, 1.8), "platelets": (250, 70), "egfr": (85, 25)}
FLOOR = {"anc": 0.1, "alc": 0.1, "hb": 5.0, "platelets": 10.0, "egfr": 5.0}  # keep draws inside the plausible ranges


def _maybe(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def patients(n: int, seed: int, today: dt.date, kb: KnowledgeBase) -> list[dict[str, Any]]:
    """``n`` patients: id, simple JSON (what FHIR carries), therapy, record dates and the messy extras."""
    rng = random.Random(seed)
    out = []
    meds_known = [m for m in MEDICATIONS if kb.medication(m) is not None]
    for i in range(n):
        pid = f"pt{i:07d}"
        sex = rng.choice(["female", "male"])
        age = rng.randint(12, 90)
        simple: dict[str, Any] = {"age": age, "sex": sex, "conditions": [], "labs": {}, "medications": [], "screening": {}}
        if _maybe(rng, 0.7):
            simple["smoking"] = rng.choice(["never", "never", "former", "current"])
        if sex == "female" and age < 50 and _maybe(rng, 0.5):
            simple["pregnant"] = _maybe(rng, 0.03)
        simple["conditions"] = [c for c, p in CONDITIONS.items() if c in kb.conditions and _maybe(rng, p)]
        simple["medications"] = [m for m in meds_known if _maybe(rng, MEDICATIONS[m])]
        if _maybe(rng, 0.03):
            simple["medications"].append("herbal tea blend")  # unmapped: the checker says so
        for lab, (mu, sd) in LABS.items():
            if _maybe(rng, 0.9):
                simple["labs"][lab] = round(max(FLOOR[lab], rng.gauss(mu, sd)), 1)
        on = _maybe(rng, 0.8)
        start = today - dt.timedelta(days=rng.randint(0, 900)) if on and _maybe(rng, 0.95) else None
        for test, p in (("tuberculosis", 0.85), ("hepatitis-b", 0.8), ("hepatitis-c", 0.75)):
            if _maybe(rng, p):
                result = rng.choice(["negative"] * 12 + ["positive", "indeterminate"])
                simple["screening"][test] = {"result": result, "date": _around(rng, start, today).isoformat()}
        if _maybe(rng, 0.4):
            simple["screening"]["zoster-vaccine"] = {"result": "done", "date": _around(rng, start, today).isoformat()}
        therapy = None
        if on:
            drug = rng.choice(ON_JAK)
            d = kb.drugs[drug]
            label = next((lb for lb in d.labels if lb.regulator == "FDA"), None)
            doses = [x for x in (label.doses if label else []) if x.mg]
            dose = rng.choice(doses) if doses else None
            brand = d.products[0].brands[0].name
            therapy = {"drug": drug, "name": brand if _maybe(rng, 0.3) else drug, "start": start,
                       "mg": dose.mg if dose else None, "every_h": dose.every_h if dose else None}
            if dose and _maybe(rng, 0.05):
                therapy["mg"] = dose.mg * 2  # above the label dose
        records = {}
        for lab in simple["labs"]:
            last = today - dt.timedelta(days=rng.randint(0, 400))
            records[lab] = [last - dt.timedelta(days=rng.randint(30, 900)), last]
        out.append({"id": pid, "simple": simple, "therapy": therapy, "records": records,
                    "resolved": rng.choice(list(CONDITIONS)) if _maybe(rng, 0.1) else None,
                    "indication": rng.choice(INDICATIONS) if _maybe(rng, 0.5) else None})
    return out


def _around(rng: random.Random, start: dt.date | None, today: dt.date) -> dt.date:
    anchor = start or today
    return min(today, anchor + dt.timedelta(days=rng.randint(-400, 60)))


def bundle(p: dict[str, Any], kb: KnowledgeBase, today: dt.date) -> dict[str, Any]:
    """The patient as a FHIR R4 collection Bundle with dated records and the messy parts."""
    from jakinib.interop.fhir import bundle_from_simple

    pid = p["id"]
    b = bundle_from_simple(p["simple"], kb, today)
    lab_by_loinc = {code: lab.id for lab in kb.labs.values() for code in lab.loinc}
    resources = [e["resource"] for e in b["entry"]]
    extra = []
    for r in resources:
        r["id"] = pid if r["resourceType"] == "Patient" else f"{pid}-{r['id']}"
        for key in ("subject", "patient"):
            if key in r:
                r[key] = {"reference": f"Patient/{pid}"}
        code = (r.get("code") or r.get("vaccineCode") or {}).get("coding", [{}])[0].get("code")
        if r["resourceType"] == "Observation" and code in lab_by_loinc:
            lab = lab_by_loinc[code]
            first, last = p["records"][lab]
            r["effectiveDateTime"] = last.isoformat()
            stale = json.loads(json.dumps(r))
            stale["id"] = r["id"] + "-stale"
            stale["effectiveDateTime"] = first.isoformat()
            q = stale["valueQuantity"]
            if lab == "hb":  # the same lab, older, in another unit
                stale["valueQuantity"] = {**q, "value": round(q["value"] * 10 + 7, 1), "unit": "g/L", "code": "g/L"}
            extra.append(stale)
        elif r["resourceType"] in ("Observation", "Immunization"):
            mapping = kb.code_index.get(("cvx" if r["resourceType"] == "Immunization" else "loinc", str(code)))
            if mapping is not None and mapping.field.startswith("screening."):
                scr = p["simple"]["screening"].get(mapping.field.split(".", 1)[1])
                if isinstance(scr, dict) and scr.get("date"):
                    r["occurrenceDateTime" if r["resourceType"] == "Immunization" else "effectiveDateTime"] = scr["date"]
    ref = {"reference": f"Patient/{pid}"}
    if p["resolved"]:
        term = kb.conditions[p["resolved"]]
        extra.append({"resourceType": "Condition", "id": f"{pid}-resolved", "subject": ref,
                      "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": term.snomed[0], "display": term.label}]
                               if term.snomed else [], "text": term.id}})
    t = p["therapy"]
    if t:
        med: dict[str, Any] = {"resourceType": "MedicationRequest", "id": f"{pid}-jak", "status": "active", "intent": "order",
                               "subject": ref, "medicationCodeableConcept": {"text": t["name"]}}
        if t["start"]:
            med["authoredOn"] = t["start"].isoformat()
        if t["mg"] and t["every_h"]:
            med["dosageInstruction"] = [{"timing": {"repeat": {"frequency": 1, "period": t["every_h"], "periodUnit": "h"}},
                                         "doseAndRate": [{"doseQuantity": {"value": t["mg"], "unit": "mg"}}]}]
        extra.append(med)
    return {"resourceType": "Bundle", "id": f"b-{pid}", "type": "collection", "entry": [{"resource": r} for r in resources + extra]}


def write_bundles(ps: list[dict[str, Any]], path: Path, kb: KnowledgeBase, today: dt.date) -> Path:
    import orjson

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as fh:
        for p in ps:
            fh.write(orjson.dumps(bundle(p, kb, today)) + b"\n")
    return path


def write_bulk(ps: list[dict[str, Any]], folder: Path, kb: KnowledgeBase, today: dt.date, parts: int = 2) -> Path:
    """A Bulk export: one file per type and part (``Observation.1.ndjson.gz``); Patient files uncompressed."""
    import orjson

    folder.mkdir(parents=True, exist_ok=True)
    handles: dict[tuple[str, int], Any] = {}
    try:
        for i, p in enumerate(ps):
            for e in bundle(p, kb, today)["entry"]:
                r = e["resource"]
                kind, part = r["resourceType"], i % parts + 1
                if (kind, part) not in handles:
                    name = f"{kind}.{part}.ndjson" + ("" if kind == "Patient" else ".gz")
                    handles[(kind, part)] = (open if kind == "Patient" else gzip.open)(folder / name, "wb")
                handles[(kind, part)].write(orjson.dumps(r) + b"\n")
    finally:
        for h in handles.values():
            h.close()
    return folder


def flat_rows(ps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The flat table's rows: the same facts, hb in g/L, lists ';'-joined, dates ISO."""
    rows = []
    for p in ps:
        s, t = p["simple"], p["therapy"] or {}
        row: dict[str, Any] = {"id": p["id"], "age": s["age"], "sex": s["sex"], "smoking": s.get("smoking"),
                               "pregnant": s.get("pregnant"), "conditions": ";".join(s["conditions"]),
                               "history": p["resolved"] if p["resolved"] and p["resolved"] not in s["conditions"] else "",
                               "medications": ";".join(s["medications"])}
        for lab, value in s["labs"].items():
            row["labs.hb [g/L]" if lab == "hb" else f"labs.{lab}"] = round(value * 10, 1) if lab == "hb" else value
        for test, scr in s["screening"].items():
            row[f"screening.{test}"] = scr["result"]
            row[f"screening.{test}.date"] = scr["date"]
        row.update(jak=t.get("drug"), jak_start=t["start"].isoformat() if t.get("start") else None,
                   jak_dose_mg=t.get("mg"), jak_every_h=t.get("every_h") if t.get("mg") else None)
        for lab, (first, last) in p["records"].items():
            row[f"records.{lab}.first"], row[f"records.{lab}.last"] = first.isoformat(), last.isoformat()
        rows.append(row)
    return rows


FLAT_COLUMNS = ("id", "age", "sex", "smoking", "pregnant", "conditions", "history", "medications", "labs.anc", "labs.alc", "labs.hb [g/L]",
                "labs.platelets", "labs.egfr", *[f"screening.{t}{x}" for t in ("tuberculosis", "hepatitis-b", "hepatitis-c", "zoster-vaccine")
                                                 for x in ("", ".date")],
                "jak", "jak_start", "jak_dose_mg", "jak_every_h", *[f"records.{lab}.{w}" for lab in LABS for w in ("first", "last")])


def write_flat(ps: list[dict[str, Any]], path: Path) -> Path:
    import polars as pl

    rows = flat_rows(ps)
    df = pl.DataFrame({c: [r.get(c) for r in rows] for c in FLAT_COLUMNS},
                      schema={c: pl.String for c in FLAT_COLUMNS}, strict=False)
    if path.name.endswith(".parquet"):
        df.write_parquet(path)
    else:
        df.write_csv(path)
    return path
