"""FHIR R4 in: a Bundle (or a list of resources) -> the simple patient JSON -> :class:`Patient`.

Parsed leniently at the boundary (real EHR payloads are often slightly off-spec: a Bundle without
``type``, an entry without ``fullUrl``, a number where a string belongs): only the elements jakinib uses
are read, and an element of the wrong shape is treated as absent, never a crash. Codes are mapped through
:mod:`jakinib.interop.terminology` and the knowledge base (labs.yaml LOINC, conditions.yaml SNOMED CT /
ICD-10, codes.yaml RxNorm, answers, screening and vaccines).

What the reader keeps and how:

- **one patient**: resources about another subject, several Patients, or a deceased patient are a clear
  :class:`FhirError` (jakinib refuses to assess rather than merge or guess);
- **sex** from the US Core ``us-core-individual-sex`` / ``us-core-sex`` extension, else ``gender``, else
  ``us-core-birthsex``;
- **conditions**: active ones in ``conditions``, resolved / inactive / in remission in ``history`` (rules
  say whether they need current or current-or-past); pregnancy recorded as an active Condition sets
  ``pregnant``; a match by display text rather than code is reported in ``derived``;
- **observations**: the latest by parsed, time-zone-aware instant; comparators kept (``<0.5``); a result older
  than its lab's ``max_age_days`` is reported as stale and not used; an unreadable unit makes that lab unknown
  with a note (never the whole check); ANC / ALC derived from WBC x differential % of the same specimen time
  when the count is absent; weight and height read (so Cockcroft-Gault CrCl derives from FHIR);
- **allergies**: an active, not refuted AllergyIntolerance to a JAK inhibitor -> ``allergies``;
- **unmapped**: only what could matter to a rule (medications, active conditions and past ones that name a
  rule topic, known codes whose value was not understood, medication allergies); everything else is counted
  in one line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

from jakinib.errors import FhirError, PatientError
from jakinib.interop import terminology
from jakinib.knowledge import fields as f
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety import units
from jakinib.safety.patient import Patient, parse_patient

SYSTEMS = terminology.SYSTEMS
INACTIVE_CONDITION = {"inactive", "remission", "resolved"}
EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}
OBS_OK = {"final", "amended", "corrected", "preliminary", "registered"}
MED_ACTIVE = {"active", "on-hold", "draft", "intended", "unknown"}
SEX_EXTENSIONS = ("us-core-individual-sex", "us-core-sex")
SEX_CODES = {"248152002": "female", "248153007": "male", "female": "female", "male": "male", "f": "female", "m": "male"}
# Weight older than this is not used for Cockcroft-Gault: jakinib's documented choice (body weight changes
# slowly, and adult records often carry one weight a year).
WEIGHT_MAX_AGE_DAYS = 400
# Past conditions that are not mapped are listed (not just counted) when their display names a rule topic.
RULE_TOPIC_WORDS = ("malignan", "carcinoma", "cancer", "neoplasm", "lymphoma", "leuk", "melanoma", "sarcoma",
                    "thromb", "embol", "infarct", "stroke", "zoster", "tubercul", "hepatitis", "hiv", "hypersens")
READ_TYPES = {"Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement", "Immunization",
              "AllergyIntolerance", "Medication", "DiagnosticReport", "Procedure", "OperationOutcome"}
UTC = dt.UTC


def _codings(concept: Any) -> list[tuple[str, str, str]]:
    """(system-slug, code, display) for each coding of a CodeableConcept; text as ('text', text, text)."""
    if not isinstance(concept, dict):
        return []
    out = []
    coding = concept.get("coding")
    if coding is not None and not isinstance(coding, list):  # a clear 4xx / exit 2 naming the element (issue 9)
        raise FhirError(f"CodeableConcept.coding: expected a list of Codings, got {type(coding).__name__}")
    for c in coding or ():
        if not isinstance(c, dict):
            continue
        code = c.get("code")
        if isinstance(code, str) or (isinstance(code, int) and not isinstance(code, bool)):
            code = str(code)
            display = c.get("display")
            system = c.get("system")
            out.append((terminology.system_slug(system if isinstance(system, str) else None), code,
                        display if isinstance(display, str) and display else code))
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        out.append(("text", text, text))
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


YEAR, YEAR_MONTH = re.compile(r"\d{4}"), re.compile(r"\d{4}-\d{2}")


def instant(value: Any) -> dt.datetime | None:
    """A FHIR date / dateTime / instant as an aware datetime (UTC when no offset; partial dates at their start)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) == 4 and YEAR.fullmatch(text):
        text += "-01-01"
    elif len(text) == 7 and YEAR_MONTH.fullmatch(text):
        text += "-01"
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _when(res: dict[str, Any]) -> str:
    """The ISO text of when an event happened ('' when unknown); see :func:`when_instant`."""
    w = when_instant(res)
    return w.isoformat() if w is not None else ""


# When an event happened: the first of these that parses (a period's end, then its start). The cohort's columnar
# reader (cohort/fhir_columns.py) reads the same keys in the same order.
WHEN_FIRST = ("effectiveDateTime", "effectiveInstant", "occurrenceDateTime", "performedDateTime")
WHEN_PERIODS = ("effectivePeriod", "performedPeriod")
WHEN_LAST = ("issued", "recordedDate", "authoredOn", "date", "onsetDateTime")


def when_instant(res: dict[str, Any]) -> dt.datetime | None:
    """When an observation / event happened (effective first, then issued / occurrence / recorded)."""
    for key in WHEN_FIRST:
        if (w := instant(res.get(key))) is not None:
            return w
    for key in WHEN_PERIODS:
        period = res.get(key)
        if isinstance(period, dict):
            w = instant(period.get("end")) or instant(period.get("start"))
            if w is not None:
                return w
    for key in WHEN_LAST:
        if (w := instant(res.get(key))) is not None:
            return w
    return None


def _status(r: dict[str, Any], key: str) -> str | None:
    concept = r.get(key)
    if isinstance(concept, str):
        return concept
    codes = [c for c in _codings(concept) if c[0] != "text"]
    return codes[0][1] if codes else None


class FhirRead:
    """What the reader took from a Bundle: the simple patient JSON, what it could not map (``unmapped``, only
    what could matter to a rule), one line counting the rest, how it read what it did (``notes``: text matches,
    derivations), labs it did not use and why (``lab_notes``), and the JAK inhibitors among the medications."""

    def __init__(self) -> None:
        self.simple: dict[str, Any] = {"conditions": [], "history": [], "allergies": [], "labs": {}, "medications": [],
                                       "screening": {}}
        self.unmapped: list[str] = []
        self.not_read: Counter[str] = Counter()
        self.notes: list[str] = []
        self.lab_notes: dict[str, str] = {}
        self.ordered: list[str] = []
        self.active_unmapped: list[str] = []

    def lines(self) -> list[str]:
        """``unmapped`` deduplicated (with counts), one line naming the active conditions outside jakinib's
        vocabulary, and one line counting what no rule reads."""
        counts = Counter(self.unmapped)
        out = [f"{k} (x{n})" if n > 1 else k for k, n in counts.items()]
        out += [f"labs.{lab} not used: {why}" for lab, why in self.lab_notes.items()]  # the rules then say "needs labs.X"
        if self.active_unmapped:
            out.append("active conditions no rule names (check them against the label): "
                       + "; ".join(dict.fromkeys(self.active_unmapped)))
        if self.not_read:
            parts = ", ".join(f"{n} {k}" for k, n in self.not_read.most_common())
            out.append(f"not read (no rule uses them): {parts}")
        return out


def _ref_id(ref: Any) -> tuple[str | None, str] | None:
    """(resource type or None, id) of a Reference, or None when it is not a literal reference."""
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    text = ref["reference"].strip()
    if text.startswith("urn:uuid:") or text.startswith("urn:oid:"):
        return None, text.split(":")[-1]
    parts = [p for p in text.split("/") if p]
    if len(parts) >= 2 and "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return None, text


def _check_one_patient(items: list[dict[str, Any]], full_urls: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    patients = [r for r in items if r["resourceType"] == "Patient"]
    ids = {str(p.get("id")) for p in patients if p.get("id")}
    for url, r in full_urls.items():
        if r.get("resourceType") == "Patient":
            ids.add(url.split(":")[-1].rstrip("/").split("/")[-1])
    if len(patients) > 1:
        names = ", ".join(f"Patient/{p.get('id', '?')}" for p in patients)
        raise FhirError(f"Bundle holds more than one Patient ({names}): send one patient per Bundle")
    others: Counter[str] = Counter()
    for r in items:
        for key in ("subject", "patient"):
            ref = _ref_id(r.get(key))
            if ref is None:
                continue
            kind, rid = ref
            if (kind not in (None, "Patient")) or (ids and rid not in ids):
                others[f"{kind or 'Patient'}/{rid}"] += 1
            elif not ids:
                others[f"Patient/{rid}"] += 0
    if ids and others:
        listed = ", ".join(f"{k} ({n} resources)" for k, n in others.most_common(5))
        raise FhirError(f"Bundle holds resources about another subject than Patient/{sorted(ids)[0]}: {listed}; "
                        "send one patient per Bundle")
    if not ids and len(others) > 1:
        raise FhirError(f"Bundle holds resources about several subjects ({', '.join(sorted(others))}): "
                        "send one patient per Bundle")
    return patients[0] if patients else None


def _sex(p: dict[str, Any]) -> str | None:
    birth = None
    for ext in p.get("extension") or [] if isinstance(p.get("extension"), list) else []:
        if not isinstance(ext, dict) or not isinstance(ext.get("url"), str):
            continue
        url = ext["url"].rstrip("/").rsplit("/", 1)[-1]
        value = ext.get("valueCode")
        if isinstance(ext.get("valueCoding"), dict):
            value = ext["valueCoding"].get("code")
        if not isinstance(value, str):
            continue
        if url in SEX_EXTENSIONS and value.lower() in SEX_CODES:
            return SEX_CODES[value.lower()]
        if url == "us-core-birthsex" and value.lower() in ("f", "m"):
            birth = SEX_CODES[value.lower()]
    if p.get("gender") in ("female", "male"):
        return str(p["gender"])
    return birth


def _patient(p: dict[str, Any], simple: dict[str, Any], today: dt.date) -> None:
    deceased = p.get("deceasedBoolean") is True or isinstance(p.get("deceasedDateTime"), str)
    if deceased:
        when = f" on {p['deceasedDateTime'][:10]}" if isinstance(p.get("deceasedDateTime"), str) else ""
        raise FhirError(f"Patient/{p.get('id', '?')} is recorded as deceased{when}: jakinib does not assess deceased patients")
    if p.get("birthDate"):
        simple["age"] = _age(p["birthDate"], today)
    sex = _sex(p)
    if sex:
        simple["sex"] = sex


def _full_urls(payload: Any) -> dict[str, dict[str, Any]]:
    if not (isinstance(payload, dict) and isinstance(payload.get("entry"), list)):
        return {}
    return {str(e["fullUrl"]): e["resource"] for e in payload["entry"]
            if isinstance(e, dict) and isinstance(e.get("resource"), dict) and isinstance(e.get("fullUrl"), str)}


class _Labs:
    """Candidate lab results, chosen after the whole Bundle is read."""

    def __init__(self) -> None:
        self.by_lab: dict[str, list[tuple[dt.datetime | None, dict[str, Any], str]]] = {}

    def add(self, lab: str, when: dt.datetime | None, value: dict[str, Any], label: str) -> None:
        self.by_lab.setdefault(lab, []).append((when, value, label))

    def latest(self, lab: str) -> tuple[dt.datetime | None, dict[str, Any], str] | None:
        items = self.by_lab.get(lab)
        if not items:
            return None
        return max(items, key=lambda x: x[0] or dt.datetime.min.replace(tzinfo=UTC))


def read_bundle(payload: Any, kb: KnowledgeBase, today: dt.date | None = None) -> FhirRead:
    """Read a Bundle (or a list of resources) into a :class:`FhirRead`."""
    today = today or dt.date.today()
    items = resources(payload)
    out = FhirRead()
    full_urls = _full_urls(payload)
    patient = _check_one_patient(items, full_urls)
    if patient is not None:
        _patient(patient, out.simple, today)
    meds_by_ref = dict(full_urls)
    for r in items:
        if r["resourceType"] == "Medication" and r.get("id"):
            meds_by_ref[f"Medication/{r['id']}"] = r
    lab_by_loinc = {code: lab.id for lab in kb.labs.values() for code in lab.loinc}
    labs = _Labs()
    latest: dict[str, dt.datetime | None] = {}
    for r in items:
        kind = r["resourceType"]
        if kind == "Condition":
            _condition(r, kb, out)
        elif kind == "Observation":
            _observation(r, kb, lab_by_loinc, out, labs, latest)
        elif kind in ("MedicationRequest", "MedicationStatement"):
            _medication(r, kb, out, meds_by_ref)
        elif kind == "Immunization":
            _immunization(r, kb, out)
        elif kind == "AllergyIntolerance":
            _allergy(r, kb, out)
        elif kind in ("DiagnosticReport", "Procedure"):
            if not _screening_event(r, kb, out, latest):
                out.not_read[kind] += 1
        elif kind not in READ_TYPES:
            out.not_read[kind] += 1
    _choose_labs(kb, labs, out, today)
    for key in ("conditions", "history", "allergies"):
        out.simple[key] = list(dict.fromkeys(out.simple[key]))
    out.simple["history"] = [c for c in out.simple["history"] if c not in out.simple["conditions"]]
    out.ordered = list(dict.fromkeys(out.ordered))
    out.notes = list(dict.fromkeys(out.notes))
    return out


def bundle_to_simple(payload: Any, kb: KnowledgeBase, today: dt.date | None = None) -> tuple[dict[str, Any], list[str]]:
    """The simple patient JSON for a Bundle, and the lines of what could not be mapped."""
    read = read_bundle(payload, kb, today)
    return read.simple, read.lines()


# ---- conditions ----------------------------------------------------------------------------------

def _condition(r: dict[str, Any], kb: KnowledgeBase, out: FhirRead) -> None:
    if _status(r, "verificationStatus") in EXCLUDED_VERIFICATION:
        return
    status = _status(r, "clinicalStatus")
    past = status in INACTIVE_CONDITION or (status is None and any(k.startswith("abatement") for k in r))
    codings = _codings(r.get("code"))
    for system, code, _ in codings:
        m = kb.code_index.get((system, code))
        if m is not None and m.field == "pregnant" and not past:
            out.simple["pregnant"] = bool(m.value)
            return
    match = terminology.resolve_condition(kb, codings)
    if match is not None:
        slug, how = match
        out.simple["history" if past else "conditions"].append(slug)
        if how == "text":
            out.notes.append(f"condition {_label(r.get('code'))!r} read as {slug} by its name")
        return
    label = _label(r.get("code"))
    if not past:
        out.active_unmapped.append(label)
    elif any(w in label.lower() for w in RULE_TOPIC_WORDS):
        out.unmapped.append(f"Condition {label} (past, not mapped)")
    else:
        out.not_read["past Condition"] += 1


# ---- observations --------------------------------------------------------------------------------

def _quantity(r: dict[str, Any], label: str) -> dict[str, Any] | None:
    q = r.get("valueQuantity")
    if not isinstance(q, dict) or isinstance(q.get("value"), bool) or not isinstance(q.get("value"), (int, float)):
        return None
    unit = q.get("code") if isinstance(q.get("code"), str) and q.get("code") else q.get("unit")
    if not isinstance(unit, str) or not unit.strip():
        raise FhirError(f"Observation {label}: valueQuantity without a unit")
    value: dict[str, Any] = {"value": q["value"], "unit": unit}
    if q.get("comparator") in ("<", "<=", ">", ">="):
        value["comparator"] = q["comparator"]
    return value


def _answer(r: dict[str, Any], kb: KnowledgeBase, field: str) -> Any:
    for system, code, display in _codings(r.get("valueCodeableConcept")) + _codings({"text": r.get("valueString")}):
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
    interps = r.get("interpretation")
    for interp in interps if isinstance(interps, list) else []:
        for _, code, _ in _codings(interp):
            if code in ("POS", "A", "H", "HH"):
                return "positive"
            if code in ("NEG", "N"):
                return "negative"
            if code in ("IND", "E"):
                return "indeterminate"
    return None


def _newer(latest: dict[str, dt.datetime | None], key: str, when: dt.datetime | None) -> bool:
    """True (and remembered) if ``when`` is at least as recent as what ``key`` holds."""
    floor = dt.datetime.min.replace(tzinfo=UTC)
    if key in latest and (when or floor) < (latest[key] or floor):
        return False
    latest[key] = when
    return True


def _known_code(concept: Any, lab_by_loinc: dict[str, str], kb: KnowledgeBase) -> bool:
    coding = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(coding, list):
        return False
    index = kb.code_index
    for c in coding:
        if isinstance(c, dict):
            code = c.get("code")
            system = terminology.system_slug(c.get("system")) if isinstance(c.get("system"), str) else None
            if isinstance(code, str) and ((system == "loinc" and code in lab_by_loinc) or (system, code) in index):
                return True
    return False


def _observation(r: dict[str, Any], kb: KnowledgeBase, lab_by_loinc: dict[str, str], out: FhirRead,
                 labs: _Labs, latest: dict[str, dt.datetime | None]) -> None:
    status = r.get("status")
    if status is not None and not isinstance(status, str):
        out.unmapped.append(f"Observation {_label(r.get('code'))} (status not understood: not used)")
        return
    if status is not None and status not in OBS_OK:
        return
    if not _known_code(r.get("code"), lab_by_loinc, kb):  # fast path: most observations are vitals no rule reads
        out.not_read["Observation"] += 1
        return
    when = when_instant(r)
    label = _label(r.get("code"))
    for system, code, _ in _codings(r.get("code")):
        if system == "loinc" and code in lab_by_loinc:
            value = _quantity(r, label)
            if value is None:
                out.unmapped.append(f"Observation {label} (no valueQuantity)")
                return
            labs.add(lab_by_loinc[code], when, value, label)
            return
        m = kb.code_index.get((system, code))
        if m is None:
            continue
        if m.field in f.NUMERIC:
            value = _quantity(r, label)
            if value is not None:
                labs.add(m.field, when, value, label)
            return
        value = m.value if m.value is not None else _answer(r, kb, m.field)
        if value is None:
            out.unmapped.append(f"Observation {m.display} (value not understood)")
            return
        _set_answer(out, m.field, value, when, latest)
        return
    out.not_read["Observation"] += 1


def _set_answer(out: FhirRead, field: str, value: Any, when: dt.datetime | None, latest: dict[str, dt.datetime | None]) -> None:
    if not _newer(latest, field, when):
        return
    if field.startswith("screening."):
        test = field.split(".", 1)[1]
        out.simple["screening"][test] = {"result": value, "date": when.date().isoformat()} if when else value
    else:
        out.simple[field] = value


def _screening_event(r: dict[str, Any], kb: KnowledgeBase, out: FhirRead, latest: dict[str, dt.datetime | None]) -> bool:
    """A DiagnosticReport / Procedure whose code completes a screening item (CBC panel, ECG, ...)."""
    if r.get("status") in ("entered-in-error", "cancelled", "not-done", "preparation", "registered"):
        return False
    for system, code, _ in _codings(r.get("code")):
        m = kb.code_index.get((system, code))
        if m is not None and m.field.startswith("screening.") and m.value == "done":
            _set_answer(out, m.field, "done", when_instant(r), latest)
            return True
    return False


def _age_days(when: dt.datetime | None, today: dt.date) -> int | None:
    return None if when is None else (today - when.astimezone(UTC).date()).days


def _use(kb: KnowledgeBase, labs: _Labs, lab: str, out: FhirRead, today: dt.date, max_age: int | None,
         canonical: str) -> tuple[dt.datetime | None, dict[str, Any]] | None:
    """The latest usable result of ``lab`` converted to ``canonical``, or None with the reason in lab_notes."""
    chosen = labs.latest(lab)
    if chosen is None:
        return None
    when, value, label = chosen
    age = _age_days(when, today)
    if max_age is not None and (age is None or age > max_age):
        date = when.date().isoformat() if when else "undated"
        out.lab_notes[lab] = (f"latest result ({label}, {date}) is {'undated' if age is None else f'{age} days old'}: "
                              f"stale (older than {max_age} days), not used for initiation")
        return None
    try:
        number = units.convert(float(value["value"]), value["unit"], canonical, f.MOLAR_MASS_G_MOL.get(lab))
    except PatientError as exc:
        out.lab_notes[lab] = f"{label}: {exc} (value {value['value']} {value['unit']}), so the result is not used"
        return None
    return when, {**value, "value": number, "unit": canonical}


def _choose_labs(kb: KnowledgeBase, labs: _Labs, out: FhirRead, today: dt.date) -> None:
    simple = out.simple
    for lab in f.LAB_UNITS:
        lab_def = kb.labs.get(lab)
        got = _use(kb, labs, lab, out, today, lab_def.max_age_days if lab_def else None, f.LAB_UNITS[lab])
        if got is not None:
            value = dict(got[1])
            simple["labs"][lab] = value
    for field, unit in f.NUMERIC.items():
        if field in labs.by_lab:
            got = _use(kb, labs, field, out, today, WEIGHT_MAX_AGE_DAYS, unit)
            if got is not None:
                simple[field] = round(got[1]["value"], 2)
    for count, pct, name in (("anc", "neutrophils-pct", "neutrophils"), ("alc", "lymphocytes-pct", "lymphocytes")):
        if count in simple["labs"] or (count in out.lab_notes and "stale" not in out.lab_notes[count]):
            continue
        wbc = _use(kb, labs, "wbc", FhirRead(), today, kb.labs["wbc"].max_age_days if "wbc" in kb.labs else None, "10^9/L")
        share = _use(kb, labs, pct, FhirRead(), today, kb.labs[pct].max_age_days if pct in kb.labs else None, "%")
        if wbc is None or share is None or wbc[0] != share[0] or "comparator" in wbc[1] or "comparator" in share[1]:
            continue
        derived = wbc[1]["value"] * share[1]["value"] / 100
        simple["labs"][count] = {"value": round(derived, 3), "unit": "10^9/L"}
        out.lab_notes.pop(count, None)
        out.notes.append(f"labs.{count} = {derived:.2f} x10^9/L derived from WBC {wbc[1]['value']:g} x10^9/L x {name} "
                         f"{share[1]['value']:g} % of the same specimen ({wbc[0].date().isoformat() if wbc[0] else 'undated'})")
    for key, value in list(simple["labs"].items()):
        simple["labs"][key] = value if "comparator" in value else {"value": value["value"], "unit": value["unit"]}


# ---- medications, immunizations, allergies -----------------------------------------------------

def _medication(r: dict[str, Any], kb: KnowledgeBase, out: FhirRead, meds_by_ref: dict[str, dict[str, Any]]) -> None:
    status = r.get("status")
    if status is not None and (not isinstance(status, str) or status not in MED_ACTIVE):
        return
    concept = medication_concept(r, meds_by_ref)
    codings = [c for c in _codings({"coding": concept.get("coding")}) if c[0] != "text"] if concept else []
    text = concept.get("text") if concept and isinstance(concept.get("text"), str) else None
    match = terminology.resolve_medication(kb, codings, text)
    if match is None:
        label = terminology.medication_label(codings, text) if concept else "(medicationReference not resolved)"
        names = terminology.ingredient_names(label) if any(c[0] == "rxnorm" for c in codings) else []
        # the checker reports it as unmapped; an RxNorm name is reported by its ingredient(s)
        out.simple["medications"].append(" / ".join(names) if names else label)
        return
    if match.drug is not None:
        out.ordered.append(match.drug)  # a JAK inhibitor: assessed, not a co-medication
        return
    for ingredient in match.ingredient.split(" / "):
        out.simple["medications"].append(ingredient)
    if match.matched_by == "text":
        out.notes.append(f"medication {match.matched!r} read as {match.ingredient} by its name")


def medication_concept(r: dict[str, Any], meds_by_ref: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The medication's CodeableConcept: inline, or from ``medicationReference`` to a contained or Bundle Medication."""
    concept = r.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    ref = r.get("medicationReference")
    if not isinstance(ref, dict):
        return None
    target = ref.get("reference") if isinstance(ref.get("reference"), str) else ""
    med = None
    if target.startswith("#"):
        contained = r.get("contained") if isinstance(r.get("contained"), list) else []
        med = next((c for c in contained if isinstance(c, dict) and c.get("id") == target[1:]), None)
    elif target:
        med = meds_by_ref.get(target)
        if med is None:
            parsed = _ref_id(ref)
            med = meds_by_ref.get(f"Medication/{parsed[1]}") if parsed else None
    if isinstance(med, dict) and isinstance(med.get("code"), dict):
        return med["code"]
    if isinstance(ref.get("display"), str):
        return {"text": ref["display"]}
    return None


def _immunization(r: dict[str, Any], kb: KnowledgeBase, out: FhirRead) -> None:
    if r.get("status") is not None and r.get("status") != "completed":
        return
    for system, code, _ in _codings(r.get("vaccineCode")):
        m = kb.code_index.get((system, code))
        if m is not None and m.field.startswith("screening."):
            when = when_instant(r)
            out.simple["screening"][m.field.split(".", 1)[1]] = {"result": "done", "date": when.date().isoformat()} if when else "done"
            return
    out.not_read["Immunization (not a vaccine any rule asks about)"] += 1


def _allergy(r: dict[str, Any], kb: KnowledgeBase, out: FhirRead) -> None:
    verification = _status(r, "verificationStatus")
    status = _status(r, "clinicalStatus")
    if not isinstance(verification, (str, type(None))) or not isinstance(status, (str, type(None))):
        return
    if verification in EXCLUDED_VERIFICATION or status in ("inactive", "resolved"):
        return
    codings = _codings(r.get("code"))
    reactions = r.get("reaction") if isinstance(r.get("reaction"), list) else []
    for reaction in reactions:
        if isinstance(reaction, dict):
            codings += _codings(reaction.get("substance"))
    plain = [c for c in codings if c[0] != "text"]
    texts = [c[1] for c in codings if c[0] == "text"]
    match = terminology.resolve_medication(kb, plain, texts[0] if texts else None)
    label = _label(r.get("code"))
    if match is not None and match.drug is not None:
        if verification in (None, "confirmed"):
            out.simple["allergies"].append(match.drug)
            if match.matched_by == "text":
                out.notes.append(f"allergy {label!r} read as {match.drug} by its name")
        else:
            out.unmapped.append(f"AllergyIntolerance {label} ({verification}: not counted as a hypersensitivity)")
        return
    categories = r.get("category") if isinstance(r.get("category"), list) else []
    if categories and all(c in ("food", "environment", "biologic") for c in categories):
        out.not_read["AllergyIntolerance (food / environment)"] += 1
    else:
        out.unmapped.append(f"AllergyIntolerance {label} (not a JAK inhibitor; excipient allergies are not mapped)")


def patient_from_read(read: FhirRead, kb: KnowledgeBase) -> Patient:
    """A :class:`Patient` from a :class:`FhirRead` (unmapped lines, notes and lab notes kept on it)."""
    patient = parse_patient(read.simple, kb)
    return patient.model_copy(update={"unmapped": tuple(read.lines()), "derived": (*patient.derived, *read.notes),
                                      "lab_notes": dict(read.lab_notes)})


def patient_from_bundle(payload: Any, kb: KnowledgeBase, today: dt.date | None = None) -> Patient:
    """A :class:`Patient` from a FHIR Bundle; unmapped items are kept on the patient."""
    return patient_from_read(read_bundle(payload, kb, today), kb)


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
