"""The patient: a frozen model built from the simple JSON form, with labs in canonical units,
conditions and medicines resolved through the knowledge base, and every problem a one-line
``PatientError`` that names the field."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jakinib.errors import JakinibError, PatientError
from jakinib.knowledge import fields as f
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety import renal, units
from jakinib.safety.predicates import Censored
from jakinib.safety.renal import cockcroft_gault  # noqa: F401  (kept importable from here; defined in renal.py)

Result = Literal["negative", "positive", "indeterminate", "not-done", "done"]

MAX_LIST_ITEMS = 1000
"""Most items accepted in one patient list (conditions, medications, vaccines_planned): a clear error past it,
so a request cannot multiply into a huge response. The HTTP API reuses this limit."""

MAX_ITEM_CHARS = 500
"""Longest text accepted for one list item (a medication or condition name)."""


class Screening(BaseModel):
    model_config = ConfigDict(frozen=True)
    result: Result
    date: dt.date | None = None


class Patient(BaseModel):
    """A patient as the checker sees it. Build it with :func:`parse_patient`."""

    model_config = ConfigDict(frozen=True)

    age: float | None = None
    sex: Literal["female", "male"] | None = None
    weight_kg: float | None = None
    height_cm: float | None = None
    pregnant: bool | None = None
    breastfeeding: bool | None = None
    smoking: Literal["never", "former", "former-long-time", "current"] | None = None
    indication: str | None = None
    conditions: tuple[str, ...] = Field((), description="current (active) conditions")
    history: tuple[str, ...] = Field((), description="past (resolved, inactive, in remission) conditions")
    allergies: tuple[str, ...] = Field((), description="JAK inhibitors with an active, confirmed allergy or intolerance")
    labs: dict[str, float] = Field(default_factory=dict, description="canonical units (fields.LAB_UNITS)")
    lab_comparators: dict[str, str] = Field(default_factory=dict, description="lab -> '<', '<=', '>', '>=' when reported as e.g. '<0.5'")
    lab_notes: dict[str, str] = Field(default_factory=dict, description="lab -> why a reported value was not used (stale, unreadable unit)")
    medications: tuple[str, ...] = ()
    medication_classes: tuple[str, ...] = ()
    unmapped_medications: tuple[str, ...] = ()
    metabolizer: dict[str, str] = Field(default_factory=dict)
    vaccines_planned: tuple[str, ...] = ()
    screening: dict[str, Screening] = Field(default_factory=dict)
    unmapped: tuple[str, ...] = Field((), description="FHIR items that could not be mapped")
    derived: tuple[str, ...] = Field((), description="values jakinib computed from others, with how")

    def facts(self) -> dict[str, Any]:
        """Flat field -> value map for predicates (absent = unknown; lists absent = empty)."""
        out: dict[str, Any] = {
            "age": self.age, "sex": self.sex, "weight_kg": self.weight_kg, "pregnant": self.pregnant,
            "breastfeeding": self.breastfeeding, "smoking": self.smoking, "indication": self.indication,
            "conditions": self.conditions, "history": self.history, "allergies": self.allergies,
            "medication_classes": self.medication_classes, "vaccines_planned": self.vaccines_planned,
            "height_cm": self.height_cm,
        }
        for lab, value in self.labs.items():
            cmp = self.lab_comparators.get(lab)
            out[f"labs.{lab}"] = Censored(cmp, value) if cmp else value
        for enzyme, status in self.metabolizer.items():
            out[f"metabolizer.{enzyme}"] = status
        for test, scr in self.screening.items():
            out[f"screening.{test}"] = None if scr.result == "not-done" else scr.result
        return {k: v for k, v in out.items() if v is not None}


def _err(path: str, message: str) -> PatientError:
    return PatientError(f"patient.{path}: {message}")


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(path, f"expected a number, got {value!r}")
    return float(value)


def _choice(value: Any, allowed: tuple[str, ...], path: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise _err(path, f"{value!r} is not one of {', '.join(allowed)}")
    return value.strip().lower()


def _lab(kb: KnowledgeBase, name: str, raw: Any) -> float:
    path = f"labs.{name}"
    key = name.lower()
    if key not in f.LAB_UNITS:
        raise _err(path, f"unknown lab (known: {', '.join(f.LAB_UNITS)})")
    canonical = f.LAB_UNITS[key]
    if isinstance(raw, dict):
        if "value" not in raw:
            raise _err(path, "needs a 'value'")
        value = _number(raw["value"], f"{path}.value")
        unit = raw.get("unit")
        if not isinstance(unit, str) or not unit.strip():
            raise _err(path, f"needs a 'unit' (e.g. {canonical!r})")
        try:
            value = units.convert(value, unit, canonical, f.MOLAR_MASS_G_MOL.get(key))
        except PatientError as exc:
            raise _err(path, str(exc)) from None
        written = f"{raw['value']} {unit}"
    else:
        value = _number(raw, path)
        written = f"{raw:g} {canonical} (default unit)"
    lab_def = kb.labs.get(key)
    if lab_def is not None:
        lo, hi = lab_def.plausible
        if not lo <= value <= hi:
            hint = _unit_hint(value, canonical, lo, hi, f.MOLAR_MASS_G_MOL.get(key))
            raise _err(path, f"{written} is implausible (plausible {lo:g}-{hi:g} {canonical}){hint}")
    elif value < 0:
        raise _err(path, f"{written} is negative")
    return value


def _comparator(name: str, raw: dict[str, Any]) -> str:
    cmp = raw.get("comparator")
    if cmp not in COMPARATORS:
        raise _err(f"labs.{name}.comparator", f"{cmp!r} is not one of {', '.join(COMPARATORS)}")
    return str(cmp)


def _unit_hint(value: float, canonical: str, lo: float, hi: float, molar_mass_g_mol: float | None = None) -> str:
    for written in units.candidates(canonical, molar_mass_g_mol):
        converted = units.convert(value, written, canonical, molar_mass_g_mol)
        if lo <= converted <= hi and written != canonical:
            return f"; did you mean {value:g} {written} (= {converted:.3g} {canonical})? Give the unit: {{\"value\": {value:g}, \"unit\": \"{written}\"}}"
    return "; check the value and give its unit"


def _screening(name: str, raw: Any) -> Screening:
    path = f"screening.{name}"
    if name not in f.SCREENING_TESTS:
        raise _err(path, f"unknown screening test (known: {', '.join(f.SCREENING_TESTS)})")
    if isinstance(raw, dict):
        result = _choice(raw.get("result"), f.SCREENING_RESULTS, f"{path}.result")
        when = raw.get("date")
        try:
            date = dt.date.fromisoformat(str(when)) if when else None
        except ValueError:
            raise _err(f"{path}.date", f"{when!r} is not an ISO date (YYYY-MM-DD)") from None
        return Screening(result=result, date=date)
    return Screening(result=_choice(raw, f.SCREENING_RESULTS, path))


KNOWN_KEYS = {"age", "sex", "weight_kg", "height_cm", "pregnant", "breastfeeding", "smoking", "indication", "conditions",
              "history", "allergies", "labs", "medications", "metabolizer", "vaccines_planned", "screening", "id", "name"}
COMPARATORS = ("<", "<=", ">", ">=")
# Pregnancy and breastfeeding are asked of females aged 10-55 (the labels' "females of reproductive potential"
# given as an age window: jakinib's documented conservative choice, wide at both ends). Outside it (or for males)
# they default to false and the report says so.
REPRODUCTIVE_AGE = (10, 55)


def parse_patient(raw: Any, kb: KnowledgeBase) -> Patient:
    """Validate the simple patient JSON (DESIGN.md) into a :class:`Patient`."""
    if not isinstance(raw, dict):
        raise PatientError("patient: expected a JSON object")
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise PatientError(f"patient: unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(KNOWN_KEYS))})")
    out: dict[str, Any] = {}
    if raw.get("age") is not None:
        out["age"] = _number(raw["age"], "age")
        if not 0 <= out["age"] <= 130:
            raise _err("age", f"{out['age']:g} years is implausible")
    if raw.get("weight_kg") is not None:
        out["weight_kg"] = _number(raw["weight_kg"], "weight_kg")
        if not 0.3 <= out["weight_kg"] <= 500:
            raise _err("weight_kg", f"{out['weight_kg']:g} kg is implausible")
    if raw.get("height_cm") is not None:
        out["height_cm"] = _number(raw["height_cm"], "height_cm")
        if not 20 <= out["height_cm"] <= 280:
            raise _err("height_cm", f"{out['height_cm']:g} cm is implausible")
    if raw.get("sex") is not None:
        sex = raw["sex"]
        if isinstance(sex, str) and sex.strip().upper() in ("F", "M"):  # the common one-letter codes
            sex = {"F": "female", "M": "male"}[sex.strip().upper()]
        out["sex"] = _choice(sex, f.CHOICE["sex"], "sex")
    if raw.get("smoking") is not None:
        out["smoking"] = _choice(raw["smoking"], f.CHOICE["smoking"], "smoking")
    for key in f.BOOLEAN:
        if raw.get(key) is not None:
            if not isinstance(raw[key], bool):
                raise _err(key, f"expected true or false, got {raw[key]!r}")
            out[key] = raw[key]
    derived: list[str] = []
    assumed: list[str] = []
    lo, hi = REPRODUCTIVE_AGE
    outside = out.get("sex") == "female" and out.get("age") is not None and not lo <= out["age"] <= hi
    if out.get("sex") == "male" or outside:
        assumed = [key for key in f.BOOLEAN if key not in out]
        out.update({key: False for key in assumed})
    try:
        if raw.get("indication"):
            out["indication"] = kb.indication(str(raw["indication"])).id
        out["conditions"] = tuple(dict.fromkeys(kb.condition(str(c)).id for c in _list(raw, "conditions")))
        out["history"] = tuple(dict.fromkeys(kb.condition(str(c)).id for c in _list(raw, "history")))
        out["allergies"] = tuple(dict.fromkeys(kb.drug(str(d)).name for d in _list(raw, "allergies")))
    except JakinibError as exc:
        raise PatientError(f"patient: {exc}") from None
    labs = raw.get("labs") or {}
    if not isinstance(labs, dict):
        raise _err("labs", "expected an object of lab: value")
    out["labs"] = {k.lower(): _lab(kb, k, v) for k, v in labs.items() if v is not None}
    out["lab_comparators"] = {k.lower(): _comparator(k, v) for k, v in labs.items()
                              if isinstance(v, dict) and v.get("comparator") not in (None, "=")}
    given = set(out["labs"])
    out["labs"], derived_labs = renal.derive_labs(out.get("age"), out.get("sex"), out.get("weight_kg"), out.get("height_cm"), out["labs"])
    derived.extend(derived_labs)
    if "creatinine" in out["lab_comparators"]:  # a censored creatinine censors what is derived from it, the other way
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[out["lab_comparators"]["creatinine"]]
        out["lab_comparators"].update({k: flipped for k in ("crcl", "egfr") if k in out["labs"] and k not in given})
    if outside and assumed:
        derived.append(f"{' and '.join(assumed)} = false assumed: female aged {out['age']:g}, outside the {lo}-{hi} years in "
                       "which jakinib asks about pregnancy and breastfeeding")
    out["derived"] = tuple(derived)
    meds, classes, unmapped = [], [], []
    for m in _list(raw, "medications"):
        entry = kb.medication(str(m))
        if entry is None:
            unmapped.append(str(m))
            meds.append(str(m))
        else:
            meds.append(entry.name)
            classes.extend(entry.classes)
    out["medications"] = tuple(dict.fromkeys(meds))
    out["medication_classes"] = tuple(dict.fromkeys(classes))
    out["unmapped_medications"] = tuple(dict.fromkeys(unmapped))
    metab = raw.get("metabolizer") or {}
    if not isinstance(metab, dict):
        raise _err("metabolizer", 'expected an object like {"CYP2C19": "poor"}')
    out["metabolizer"] = {}
    for enzyme, status in metab.items():
        if enzyme.upper() not in f.ENZYMES:
            raise _err(f"metabolizer.{enzyme}", f"unknown enzyme (known: {', '.join(f.ENZYMES)})")
        out["metabolizer"][enzyme.upper()] = _choice(status, f.METABOLIZER, f"metabolizer.{enzyme}")
    out["vaccines_planned"] = tuple(str(v).lower() for v in _list(raw, "vaccines_planned"))
    scr = raw.get("screening") or {}
    if not isinstance(scr, dict):
        raise _err("screening", "expected an object of test: result")
    out["screening"] = {k: _screening(k, v) for k, v in scr.items() if v is not None}
    return Patient(**out)


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise _err(key, "expected a list")
    if len(value) > MAX_LIST_ITEMS:
        raise _err(key, f"{len(value)} items; at most {MAX_LIST_ITEMS} are accepted (jakinib.safety.patient.MAX_LIST_ITEMS)")
    for i, item in enumerate(value):
        if len(str(item)) > MAX_ITEM_CHARS:
            raise _err(f"{key}[{i}]", f"longer than {MAX_ITEM_CHARS} characters")
    return value
