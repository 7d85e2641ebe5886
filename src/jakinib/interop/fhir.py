"""FHIR R4 in: a Bundle (or a list of resources) -> the simple patient JSON -> :class:`Patient`.

Parsed leniently at the boundary (real EHR payloads are often slightly off-spec: a Bundle without
``type``, an entry without ``fullUrl``): only the elements jakinib uses are read and checked.
Codes are mapped through the knowledge base (labs.yaml LOINC, conditions.yaml SNOMED CT / ICD-10,
medications.yaml RxNorm, codes.yaml for answers, screening and vaccines); whatever could not be
mapped is reported in ``unmapped``, never silently dropped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jakinib.errors import FhirError, JakinibError
from jakinib.interop import terminology
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety.patient import Patient, parse_patient

SYSTEMS = {
    "http://loinc.org": "loinc",
    "http://snomed.info/sct": "snomed",
    "http://hl7.org/fhir/sid/cvx": "cvx",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://hl7.org/fhir/sid/icd-10": "icd10",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10",
}
INACTIVE_CONDITION = {"inactive", "remission", "resolved"}
EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}
OBS_OK = {"final", "amended", "corrected", "preliminary", "registered"}
MED_ACTIVE = {"active", "on-hold", "draft", "intended", "unknown"}


def _codings(concept: Any) -> list[tuple[str, str, str]]:
    """(system-slug, code, display) for each coding of a CodeableConcept; text as ('text', text, text)."""
    if not isinstance(concept, dict):
        return []
    out = []
    codings = concept.get("coding") or []
    if not isinstance(codings, list):
        raise FhirError(f"CodeableConcept.coding: expected a list of Codings, got {type(codings).__name__}")
    for c in codings:
        if isinstance(c, dict) and c.get("code") is not None:
            out.append((SYSTEMS.get(str(c.get("system", "")).rstrip("/"), "other"), str(c["code"]), str(c.get("display") or c["code"])))
    if isinstance(concept.get("text"), str):
        out.append(("text", concept["text"], concept["text"]))
    return out


def _label(concept: Any) -> str:
    codings = _codings(concept)
    return codings[0][2] if codings else "(no code)"


def resources(payload: Any) -> list[dict[str, Any]]:
    """The resources of a Bundle (lenient: missing ``type`` is fine), or of a list of resources."""
    if isinstance(payload, list):
        items = payload
    elif isinstance(payload, dict) and payload.get("resourceType") == "Bundle":
        entries = payload.get("entry") or []
        if not isinstance(entries, list):
            raise FhirError("Bundle.entry: expected a list")
        items = []
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
                raise FhirError(f"Bundle.entry[{i}]: expected an object with a 'resource'")
            items.append(e["resource"])
    elif isinstance(payload, dict) and isinstance(payload.get("resourceType"), str):
        items = [payload]
    else:
        raise FhirError("expected a FHIR Bundle (resourceType 'Bundle') or a resource")
    for i, r in enumerate(items):
        if not isinstance(r, dict) or not isinstance(r.get("resourceType"), str):
            raise FhirError(f"resource {i}: missing resourceType")
    return items


def _age(birth: Any, today: dt.date) -> float:
    try:
        text = str(birth)
        born = dt.date.fromisoformat(text if len(text) == 10 else (text + "-07-01")[:10] if len(text) == 4 else text + "-15")
    except ValueError:
        raise FhirError(f"Patient.birthDate: {birth!r} is not a FHIR date") from None
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return float(years)


def _when(res: dict[str, Any]) -> str:
    for key in ("effectiveDateTime", "issued", "occurrenceDateTime", "recordedDate", "authoredOn", "date"):
        if isinstance(res.get(key), str):
            return res[key]
    period = res.get("effectivePeriod")
    if not isinstance(period, dict):
        return ""
    return next((v for v in (period.get("end"), period.get("start")) if isinstance(v, str)), "")


class FhirRead:
    """What the reader took from a Bundle: the simple patient JSON, what it could not map, how it read
    what it did (text matches, derivations), and the JAK inhibitors found among the medications."""

    def __init__(self) -> None:
        self.simple: dict[str, Any] = {"conditions": [], "labs": {}, "medications": [], "screening": {}}
        self.unmapped: list[str] = []
        self.notes: list[str] = []
        self.ordered: list[str] = []


def _full_urls(payload: Any) -> dict[str, dict[str, Any]]:
    if not (isinstance(payload, dict) and isinstance(payload.get("entry"), list)):
        return {}
    return {str(e["fullUrl"]): e["resource"] for e in payload["entry"]
            if isinstance(e, dict) and isinstance(e.get("resource"), dict) and isinstance(e.get("fullUrl"), str)}


def read_bundle(payload: Any, kb: KnowledgeBase, today: dt.date | None = None) -> FhirRead:
    """Read a Bundle (or a list of resources) into a :class:`FhirRead`."""
    today = today or dt.date.today()
    items = resources(payload)
    out = FhirRead()
    simple, unmapped = out.simple, out.unmapped
    lab_by_loinc = {code: lab.id for lab in kb.labs.values() for code in lab.loinc}
    latest: dict[str, str] = {}
    meds_by_ref = _full_urls(payload)
    for r in items:
        if r["resourceType"] == "Medication" and r.get("id"):
            meds_by_ref[f"Medication/{r['id']}"] = r
    patients = [r for r in items if r["resourceType"] == "Patient"]
    if len(patients) > 1:
        raise FhirError("Bundle holds more than one Patient")
    if patients:
        p = patients[0]
        if p.get("birthDate"):
            simple["age"] = _age(p["birthDate"], today)
        if p.get("gender") in ("female", "male"):
            simple["sex"] = p["gender"]
    for r in items:
        kind = r["resourceType"]
        if kind == "Condition":
            _condition(r, kb, simple, unmapped)
        elif kind == "Observation":
            _observation(r, kb, lab_by_loinc, simple, unmapped, latest)
        elif kind in ("MedicationRequest", "MedicationStatement"):
            _medication(r, kb, simple, unmapped, meds_by_ref)
        elif kind == "Immunization":
            _immunization(r, kb, simple, unmapped)
        elif kind not in ("Patient", "OperationOutcome", "Encounter", "Practitioner", "Organization", "Medication"):
            unmapped.append(f"{kind} (resource type not read)")
    out.ordered = list(dict.fromkeys(simple.pop("ordered", [])))
    out.notes = list(dict.fromkeys(simple.pop("_text_matches", [])))
    return out


def bundle_to_simple(payload: Any, kb: KnowledgeBase, today: dt.date | None = None) -> tuple[dict[str, Any], list[str]]:
    """The simple patient JSON for a Bundle, and the list of things that could not be mapped."""
    read = read_bundle(payload, kb, today)
    return read.simple, read.unmapped


def _code(r: dict[str, Any], key: str) -> str | None:
    """A ``code`` element (e.g. ``status``): a string or absent; anything else is a FhirError."""
    value = r.get(key)
    if value is not None and not isinstance(value, str):
        raise FhirError(f"{r['resourceType']}.{key}: expected a code (a string), got {type(value).__name__}")
    return value


def _status(r: dict[str, Any], key: str) -> str | None:
    concept = r.get(key)
    if isinstance(concept, str):
        return concept
    codes = _codings(concept)
    return codes[0][1] if codes else None


def _condition(r: dict[str, Any], kb: KnowledgeBase, simple: dict[str, Any], unmapped: list[str]) -> None:
    if _status(r, "clinicalStatus") in INACTIVE_CONDITION or _status(r, "verificationStatus") in EXCLUDED_VERIFICATION:
        return
    for system, code, _ in _codings(r.get("code")):
        if system in ("snomed", "icd10", "text"):
            try:
                simple["conditions"].append(kb.condition(code).id)
                return
            except JakinibError:
                if system == "icd10" and "." in code:
                    try:
                        simple["conditions"].append(kb.condition(code.split(".")[0]).id)
                        return
                    except JakinibError:
                        pass
    unmapped.append(f"Condition {_label(r.get('code'))}")


def _quantity(r: dict[str, Any]) -> dict[str, Any] | None:
    q = r.get("valueQuantity")
    if not isinstance(q, dict) or not isinstance(q.get("value"), (int, float)):
        return None
    unit = q.get("code") or q.get("unit")
    if not unit:
        raise FhirError(f"Observation {_label(r.get('code'))}: valueQuantity without a unit")
    return {"value": q["value"], "unit": unit}


def _answer(r: dict[str, Any], kb: KnowledgeBase, field: str) -> Any:
    for system, code, display in _codings(r.get("valueCodeableConcept")) + _codings({"coding": [], "text": r.get("valueString")}):
        m = kb.code_index.get((system, code))
        if m is not None and m.field == field:
            return m.value
        if system == "text":
            word = display.strip().lower()
            if word in ("positive", "detected", "reactive"):
                return "positive"
            if word in ("negative", "not detected", "non-reactive", "nonreactive"):
                return "negative"
            if word in ("indeterminate", "equivocal"):
                return "indeterminate"
    for interp in r.get("interpretation") or []:
        for _, code, _ in _codings(interp):
            if code in ("POS", "A", "H", "HH"):
                return "positive"
            if code in ("NEG", "N"):
                return "negative"
            if code in ("IND", "E"):
                return "indeterminate"
    return None


def _observation(r: dict[str, Any], kb: KnowledgeBase, lab_by_loinc: dict[str, str], simple: dict[str, Any],
                 unmapped: list[str], latest: dict[str, str]) -> None:
    if _code(r, "status") and r["status"] not in OBS_OK:
        return
    when = _when(r)
    for system, code, _ in _codings(r.get("code")):
        if system == "loinc" and code in lab_by_loinc:
            lab = lab_by_loinc[code]
            value = _quantity(r)
            if value is None:
                unmapped.append(f"Observation {_label(r.get('code'))} (no valueQuantity)")
                return
            if when >= latest.get(f"labs.{lab}", ""):
                latest[f"labs.{lab}"] = when
                simple["labs"][lab] = value
            return
        m = kb.code_index.get((system, code))
        if m is None:
            continue
        value = m.value if m.value is not None else _answer(r, kb, m.field)
        if value is None:
            unmapped.append(f"Observation {m.display} (value not understood)")
            return
        if when < latest.get(m.field, ""):
            return
        latest[m.field] = when
        if m.field.startswith("screening."):
            test = m.field.split(".", 1)[1]
            simple["screening"][test] = {"result": value, "date": when[:10]} if when else value
        else:
            simple[m.field] = value
        return
    unmapped.append(f"Observation {_label(r.get('code'))}")


def _medication(r: dict[str, Any], kb: KnowledgeBase, simple: dict[str, Any], unmapped: list[str],
                meds_by_ref: dict[str, dict[str, Any]] | None = None) -> None:
    if _code(r, "status") and r["status"] not in MED_ACTIVE:
        return
    concept = medication_concept(r, meds_by_ref or {})
    codings = [(c[0], c[1], c[2]) for c in _codings({"coding": concept.get("coding") or []})] if concept else []
    text = concept.get("text") if concept and isinstance(concept.get("text"), str) else None
    match = terminology.resolve_medication(kb, codings, text)
    if match is None:
        label = terminology.medication_label(codings, text) if concept else "(medicationReference not resolved)"
        simple["medications"].append(label)  # the checker reports it as unmapped
        return
    if match.drug is not None:
        simple.setdefault("ordered", []).append(match.drug)  # a JAK inhibitor: assessed, not a co-medication
        return
    for ingredient in match.ingredient.split(" / "):
        simple["medications"].append(ingredient)
    if match.matched_by == "text":
        simple.setdefault("_text_matches", []).append(f"medication {match.matched!r} read as {match.ingredient} by its name")


def medication_concept(r: dict[str, Any], meds_by_ref: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The medication's CodeableConcept: inline, or from ``medicationReference`` to a contained or Bundle Medication."""
    concept = r.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    ref = r.get("medicationReference")
    if not isinstance(ref, dict):
        return None
    target = str(ref.get("reference") or "")
    med = None
    if target.startswith("#"):
        med = next((c for c in r.get("contained") or [] if isinstance(c, dict) and c.get("id") == target[1:]), None)
    else:
        med = meds_by_ref.get(target) or meds_by_ref.get(target.rsplit("/", 2)[-2] + "/" + target.rsplit("/", 1)[-1]
                                                          if target.count("/") >= 1 else target)
    if isinstance(med, dict) and isinstance(med.get("code"), dict):
        return med["code"]
    if isinstance(ref.get("display"), str):
        return {"text": ref["display"]}
    return None


def _immunization(r: dict[str, Any], kb: KnowledgeBase, simple: dict[str, Any], unmapped: list[str]) -> None:
    if _code(r, "status") and r["status"] != "completed":
        return
    for system, code, _ in _codings(r.get("vaccineCode")):
        m = kb.code_index.get((system, code))
        if m is not None and m.field.startswith("screening."):
            when = _when(r)
            simple["screening"][m.field.split(".", 1)[1]] = {"result": "done", "date": when[:10]} if when else "done"
            return
    unmapped.append(f"Immunization {_label(r.get('vaccineCode'))}")


def patient_from_bundle(payload: Any, kb: KnowledgeBase, today: dt.date | None = None) -> Patient:
    """A :class:`Patient` from a FHIR Bundle; unmapped items are kept on the patient."""
    read = read_bundle(payload, kb, today)
    patient = parse_patient(read.simple, kb)
    return patient.model_copy(update={"unmapped": tuple(read.unmapped), "derived": (*patient.derived, *read.notes)})


UCUM = {"10^9/L": "10*9/L", "g/dL": "g/dL", "mL/min/1.73m2": "mL/min/{1.73_m2}", "mL/min": "mL/min", "U/L": "U/L",
        "mg/dL": "mg/dL"}
SYSTEM_URL = {v: k for k, v in SYSTEMS.items() if k != "http://hl7.org/fhir/sid/icd-10-cm"}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": SYSTEM_URL[system], "code": code, "display": display}], "text": display}


def bundle_from_simple(raw: dict[str, Any], kb: KnowledgeBase, today: dt.date | None = None) -> dict[str, Any]:
    """A FHIR R4 collection Bundle for a simple patient JSON (for examples, tests and exports).

    Fields FHIR cannot carry with the codes jakinib maps (weight, breastfeeding, metabolizer, planned vaccines,
    'former-long-time' smoking) are left out.
    """
    from jakinib.knowledge import fields

    today = today or dt.date.today()
    pid = "example"
    ref = {"reference": f"Patient/{pid}"}
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if raw.get("age") is not None:
        born = dt.date(today.year - int(raw["age"]), 1, 1)
        patient["birthDate"] = born.isoformat()
    if raw.get("sex"):
        patient["gender"] = raw["sex"]
    out = [patient]
    answers = {(c.field, c.value): c for c in kb.codes if c.value is not None}
    questions = {c.field: c for c in kb.codes if c.value is None and c.system == "loinc"}

    def obs(code: dict[str, Any], **value: Any) -> None:
        out.append({"resourceType": "Observation", "id": f"obs-{len(out)}", "status": "final", "subject": ref,
                    "effectiveDateTime": today.isoformat(), "code": code, **value})

    for field in ("pregnant", "smoking"):
        if raw.get(field) is not None and (field, raw[field]) in answers and field in questions:
            q, a = questions[field], answers[(field, raw[field])]
            obs(_concept("loinc", q.code, q.display), valueCodeableConcept=_concept(a.system, a.code, a.display))
    for i, name in enumerate(raw.get("conditions") or []):
        term = kb.condition(name)
        code = (("snomed", term.snomed[0]) if term.snomed else ("icd10", term.icd10[0]) if term.icd10 else None)
        concept = _concept(code[0], code[1], term.label) if code else {"text": term.id}
        out.append({"resourceType": "Condition", "id": f"cond-{i}", "subject": ref, "code": concept,
                    "clinicalStatus": _concept_plain("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")})
    for lab, value in (raw.get("labs") or {}).items():
        lab_def = kb.labs[lab]
        number, unit = (value["value"], value["unit"]) if isinstance(value, dict) else (value, UCUM[fields.LAB_UNITS[lab]])
        obs(_concept("loinc", lab_def.loinc[0], lab_def.label),
            valueQuantity={"value": number, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit})
    for i, med in enumerate(raw.get("medications") or []):
        entry = kb.medication(med)
        concept = _concept("rxnorm", entry.rxnorm[0], entry.name) if entry and entry.rxnorm else {"text": med}
        out.append({"resourceType": "MedicationStatement", "id": f"med-{i}", "status": "active", "subject": ref,
                    "medicationCodeableConcept": concept})
    screening_codes = {c.field: c for c in kb.codes if c.field.startswith("screening.") and c.system == "loinc"}
    for test, value in (raw.get("screening") or {}).items():
        result = value["result"] if isinstance(value, dict) else value
        if result == "not-done":
            continue
        if test == "zoster-vaccine":
            cvx = next(c for c in kb.codes if c.system == "cvx" and c.field == "screening.zoster-vaccine")
            out.append({"resourceType": "Immunization", "id": f"imm-{test}", "status": "completed", "patient": ref,
                        "occurrenceDateTime": today.isoformat(), "vaccineCode": _concept("cvx", cvx.code, cvx.display)})
        elif f"screening.{test}" in screening_codes:
            c = screening_codes[f"screening.{test}"]
            obs(_concept("loinc", c.code, c.display), valueString=result)
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in out]}


def _concept_plain(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}
