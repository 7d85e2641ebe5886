"""Renal function: the estimates labels band by, and how a label's renal rules are read for a patient.

Labels band renal adjustments either by creatinine clearance (Cockcroft-Gault, mL/min) or by eGFR
(mL/min/1.73 m², sometimes de-indexed to mL/min); each renal rule names its label's measure
(``Rule.renal``). This module is the one place that

- derives the estimates from serum creatinine (and cystatin C): Cockcroft-Gault CrCl, CKD-EPI 2021
  eGFR (race-free; creatinine or creatinine-cystatin C), Du Bois body-surface area, de-indexed eGFR;
- decides which value a rule is read with: the label's own measure when it is known, else the other
  measure as a *flagged surrogate*. A surrogate is applied as it stands when it is clearly inside a
  band; when a cut-off of the label's bands lies within ``SURROGATE_MARGIN`` (±30 %) of it, the rules
  are read at the low end of that range (the more conservative band, since every renal band in the
  labels restricts more as function falls) and the dose at face value is shown beside it.

The ±30 % margin is jakinib's policy, not a label fact: CrCl and eGFR are different quantities and
disagree most in the old, the very light and the obese, so "near" is deliberately wide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jakinib.knowledge import schema as s
from jakinib.safety.predicates import Censored, evaluate

SURROGATE_MARGIN = 0.30
ADULT_AGE = 18.0  # Cockcroft-Gault and CKD-EPI were developed in adults; jakinib does not derive them below
STANDARD_BSA_M2 = 1.73
RENAL_FIELDS = ("labs.crcl", "labs.egfr")
UNITS = {"crcl": "mL/min", "egfr": "mL/min/1.73 m²", "egfr-abs": "mL/min"}
NAMES = {"crcl": "CrCl", "egfr": "eGFR"}


# ---- equations -------------------------------------------------------------------------------

def cockcroft_gault(age: float | None, weight_kg: float | None, sex: str | None, creatinine_mg_dl: float | None) -> float | None:
    """Creatinine clearance (mL/min), Cockcroft & Gault 1976 (doi:10.1159/000180580); None if an input is missing.

    CrCl = (140 - age) x weight / (72 x serum creatinine [mg/dL]), x 0.85 for women (actual body weight).
    """
    if None in (age, weight_kg, sex, creatinine_mg_dl) or not creatinine_mg_dl:
        return None
    assert age is not None and weight_kg is not None and creatinine_mg_dl is not None
    return cockcroft_gault_terms(age, weight_kg, sex == "female", creatinine_mg_dl, FLOATS)


class FloatOps:
    """The three non-arithmetic operations the equations need, on numbers (a cohort passes column versions, so the
    equations are written once for one patient and for a column)."""

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        return a if cond else b

    minimum = staticmethod(min)
    maximum = staticmethod(max)


FLOATS = FloatOps()


def cockcroft_gault_terms(age: Any, weight_kg: Any, female: Any, creatinine_mg_dl: Any, ops: Any) -> Any:
    """The Cockcroft-Gault formula on known inputs (numbers, or column expressions with column ``ops``)."""
    return ops.maximum((140 - age) * weight_kg / (72 * creatinine_mg_dl) * ops.where(female, 0.85, 1.0), 0.0)


def ckd_epi_2021(age: float | None, sex: str | None, creatinine_mg_dl: float | None,
                 cystatin_c_mg_l: float | None = None) -> float | None:
    """eGFR (mL/min/1.73 m²) by the race-free CKD-EPI 2021 equations (Inker et al., NEJM 2021, doi:10.1056/NEJMoa2102953).

    Creatinine: 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age [x 1.012 female], k 0.7 (F) / 0.9 (M),
    a -0.241 (F) / -0.302 (M). With cystatin C: 135 x min(Scr/k, 1)^a x max(Scr/k, 1)^-0.544 x min(Scys/0.8, 1)^-0.323
    x max(Scys/0.8, 1)^-0.778 x 0.9961^age [x 0.963 female], a -0.219 (F) / -0.144 (M).
    """
    if None in (age, sex, creatinine_mg_dl) or not creatinine_mg_dl:
        return None
    assert age is not None and creatinine_mg_dl is not None
    if cystatin_c_mg_l:
        return ckd_epi_2021_cystatin_terms(age, sex == "female", creatinine_mg_dl, cystatin_c_mg_l, FLOATS)
    return ckd_epi_2021_terms(age, sex == "female", creatinine_mg_dl, FLOATS)


def ckd_epi_2021_terms(age: Any, female: Any, creatinine_mg_dl: Any, ops: Any) -> Any:
    """The CKD-EPI 2021 creatinine equation on known inputs (numbers, or column expressions with column ``ops``)."""
    ratio = creatinine_mg_dl / ops.where(female, 0.7, 0.9)
    a = ops.where(female, -0.241, -0.302)
    return (142 * ops.minimum(ratio, 1) ** a * ops.maximum(ratio, 1) ** -1.200 * 0.9938 ** age
            * ops.where(female, 1.012, 1.0))


def ckd_epi_2021_cystatin_terms(age: Any, female: Any, creatinine_mg_dl: Any, cystatin_c_mg_l: Any, ops: Any) -> Any:
    """The CKD-EPI 2021 creatinine-cystatin C equation on known inputs (numbers, or column expressions)."""
    ratio = creatinine_mg_dl / ops.where(female, 0.7, 0.9)
    a = ops.where(female, -0.219, -0.144)
    cys = cystatin_c_mg_l / 0.8
    return (135 * ops.minimum(ratio, 1) ** a * ops.maximum(ratio, 1) ** -0.544 * ops.minimum(cys, 1) ** -0.323
            * ops.maximum(cys, 1) ** -0.778 * 0.9961 ** age * ops.where(female, 0.963, 1.0))


def bsa_du_bois(weight_kg: float | None, height_cm: float | None) -> float | None:
    """Body-surface area (m²), Du Bois & Du Bois 1916 (doi:10.1001/archinte.1916.00080130010002): 0.007184 x W^0.425 x H^0.725."""
    if not weight_kg or not height_cm:
        return None
    return bsa_terms(weight_kg, height_cm)


def bsa_terms(weight_kg: Any, height_cm: Any) -> Any:
    """The Du Bois formula on known inputs (numbers or column expressions)."""
    return 0.007184 * weight_kg ** 0.425 * height_cm ** 0.725


def deindexed(egfr: Any, bsa_m2: Any) -> Any:
    """eGFR per 1.73 m² de-indexed to mL/min for a body-surface area (numbers or column expressions)."""
    return egfr * bsa_m2 / STANDARD_BSA_M2


def margin(value: Any) -> tuple[Any, Any]:
    """The range ±SURROGATE_MARGIN around a surrogate value (numbers or column expressions)."""
    return value * (1 - SURROGATE_MARGIN), value * (1 + SURROGATE_MARGIN)


def derive_labs(age: float | None, sex: str | None, weight_kg: float | None, height_cm: float | None,
                labs: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """The labs with CrCl and eGFR derived from creatinine where they are missing, and how each was derived.

    A measured value is never overwritten. Nothing is derived below 18 years (the equations are adult ones).
    """
    out, notes = dict(labs), []
    scr = out.get("creatinine")
    if scr is None:
        return out, notes
    if age is not None and age < ADULT_AGE:
        notes.append(f"creatinine {scr:.2f} mg/dL given but CrCl/eGFR not derived: age {age:g} < 18 "
                     "(Cockcroft-Gault and CKD-EPI are adult equations); give the measured value")
        return out, notes
    if "crcl" not in out:
        crcl = cockcroft_gault(age, weight_kg, sex, scr)
        if crcl is not None:
            assert age is not None and weight_kg is not None
            out["crcl"] = crcl
            notes.append(f"labs.crcl = {crcl:.0f} mL/min by Cockcroft-Gault from creatinine {scr:.2f} mg/dL, "
                         f"age {age:g}, weight {weight_kg:g} kg, {sex}")
    if "egfr" not in out:
        cys = out.get("cystatin-c")
        egfr = ckd_epi_2021(age, sex, scr, cys)
        if egfr is not None:
            assert age is not None
            out["egfr"] = egfr
            how = f"creatinine {scr:.2f} mg/dL and cystatin C {cys:.2f} mg/L" if cys else f"creatinine {scr:.2f} mg/dL"
            notes.append(f"labs.egfr = {egfr:.0f} mL/min/1.73 m² by CKD-EPI 2021 ({'creatinine-cystatin C' if cys else 'creatinine'}, "
                         f"race-free) from {how}, age {age:g}, {sex}")
    return out, notes


# ---- reading a label's renal rules ------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """The value a label's renal rules are read with (``value`` None = unknown)."""

    basis: s.RenalBasis
    value: float | None
    text: str                        # e.g. "CrCl 54 mL/min"
    surrogate: str | None = None     # why this is not the label's own measure (None = it is)
    thresholds: tuple[float, ...] = ()
    lab: str | None = None           # the lab the value comes from ("crcl" or "egfr")

    @property
    def near(self) -> tuple[float, ...]:
        """The label's cut-offs within ±SURROGATE_MARGIN of a surrogate value (empty: clearly inside a band)."""
        if self.surrogate is None or self.value is None:
            return ()
        lo, hi = margin(self.value)
        return tuple(t for t in self.thresholds if lo <= t <= hi)

    @property
    def applied(self) -> float | None:
        """The value the rules are evaluated with: the low end of the range when a cut-off is near."""
        if self.value is None:
            return None
        return margin(self.value)[0] if self.near else self.value


def thresholds(rules: Iterable[s.Rule], field_name: str) -> tuple[float, ...]:
    """Every cut-off the rules compare ``field_name`` with."""
    found: set[float] = set()

    def walk(p: s.Predicate) -> None:
        if p.field == field_name and p.op is not None and isinstance(p.value, (int, float)):
            found.add(float(p.value))
        for child in [*(p.all or []), *(p.any or []), *([p.not_] if p.not_ else [])]:
            walk(child)

    for rule in rules:
        walk(rule.when)
    return tuple(sorted(found))


def read(basis: s.RenalBasis, labs: Mapping[str, float], bsa_m2: float | None, cuts: tuple[float, ...],
         comparators: Mapping[str, str] | None = None) -> Reading:
    """How the patient's renal function is read for rules on ``basis`` (``comparators`` only label the text)."""
    crcl, egfr = labs.get("crcl"), labs.get("egfr")
    cmp = comparators or {}
    c, e = (f"{cmp.get('crcl', '')}{crcl:.0f}" if crcl is not None else ""), (f"{cmp.get('egfr', '')}{egfr:.0f}" if egfr is not None else "")
    label = f"the label bands by {describe(basis)}"
    if basis.measure == "crcl":
        if crcl is not None:
            return Reading(basis, crcl, f"CrCl {c} mL/min", lab="crcl")
        if egfr is not None:
            return Reading(basis, egfr, f"eGFR {e} mL/min/1.73 m² read as CrCl",
                           f"{label}; CrCl is not known and cannot be derived (that needs creatinine, age, sex and weight), "
                           f"so eGFR {e} mL/min/1.73 m² is used as a surrogate", cuts, "egfr")
        return Reading(basis, None, "CrCl unknown")
    if egfr is None:
        if crcl is not None:
            return Reading(basis, crcl, f"CrCl {c} mL/min read as eGFR",
                           f"{label}; eGFR is not known, so CrCl {c} mL/min is used as a surrogate", cuts, "crcl")
        return Reading(basis, None, "eGFR unknown")
    if bsa_m2 is not None and basis.indexed is not True:
        absolute = deindexed(egfr, bsa_m2)
        if basis.indexed is False or absolute < egfr:
            why = ("the label's eGFR is in mL/min (de-indexed)" if basis.indexed is False else
                   "the label does not say whether its eGFR is indexed; the lower of the indexed and de-indexed values is used")
            return Reading(basis, absolute, f"eGFR {cmp.get('egfr', '')}{absolute:.0f} mL/min (de-indexed: {e} x BSA {bsa_m2:.2f} m² / 1.73; {why})",
                           lab="egfr")
    if basis.indexed is False:
        return Reading(basis, egfr, f"eGFR {e} mL/min/1.73 m² read as de-indexed eGFR",
                       f"{label}; height or weight is unknown, so the indexed eGFR {e} mL/min/1.73 m² is used as a surrogate", cuts, "egfr")
    return Reading(basis, egfr, f"eGFR {e} mL/min/1.73 m²", lab="egfr")


def describe(basis: s.RenalBasis) -> str:
    """The measure in words, e.g. 'CrCl (Cockcroft-Gault)' or 'eGFR (any equation, per 1.73 m²)'."""
    if basis.measure == "crcl":
        return "CrCl" + (" (Cockcroft-Gault)" if basis.equation == "cockcroft-gault" else "")
    eq = {"any": "equation not named", "ckd-epi-2021": "CKD-EPI 2021", "ckd-epi": "CKD-EPI", "mdrd": "MDRD",
          "cockcroft-gault": "Cockcroft-Gault"}[basis.equation]
    index = {True: "per 1.73 m²", False: "mL/min, de-indexed", None: "indexing not stated"}[basis.indexed]
    return f"eGFR ({eq}; {index})"


@dataclass
class Outcome:
    """The renal rules of one label decided for one patient."""

    fired: list[s.Rule] = field(default_factory=list)
    unknown: list[tuple[s.Rule, frozenset[str]]] = field(default_factory=list)
    readings: dict[str, Reading] = field(default_factory=dict)   # rule id -> reading
    face_fired: list[s.Rule] | None = None                        # set when a near cut-off changed the answer
    unresolved: bool = False                                      # a renal input is missing: withhold the dose


def decide(rules: Iterable[s.Rule], facts: Mapping[str, Any], labs: Mapping[str, float], bsa_m2: float | None,
           comparators: Mapping[str, str] | None = None) -> Outcome:
    """Evaluate a label's renal rules (those with ``renal``) with the reading each rule's basis calls for.

    A value reported with a comparator (``comparators``: lab -> '<', '<=', '>', '>='; eGFR "<15") is read as
    :class:`~jakinib.safety.predicates.Censored`, never as its bound: "<15" fires a "< 15" rule, not the
    "15 to < 30" band, and ">60" leaves a "< 90" band unknown (so the dose is withheld, not guessed)."""
    rules = list(rules)
    out = Outcome()
    face: list[s.Rule] = []
    changed = False
    groups: dict[tuple[str, bool | None], list[s.Rule]] = {}
    for rule in rules:
        assert rule.renal is not None
        groups.setdefault((rule.renal.measure, rule.renal.indexed), []).append(rule)
    for (measure, _), group in groups.items():
        name = f"labs.{measure}"
        reading = read(group[0].renal, labs, bsa_m2, thresholds(group, name), comparators)  # type: ignore[arg-type]
        base = {k: v for k, v in facts.items() if k not in RENAL_FIELDS}
        for rule in group:
            out.readings[rule.id] = reading
            if reading.value is None:
                value, missing = evaluate(rule.when, base)
            else:
                cmp = (comparators or {}).get(reading.lab or "")
                applied, at = (Censored(cmp, reading.applied), Censored(cmp, reading.value)) if cmp else (reading.applied, reading.value)
                value, missing = evaluate(rule.when, {**base, name: applied})
                if reading.near:
                    at_face, _ = evaluate(rule.when, {**base, name: at})
                    changed = changed or bool(at_face) != bool(value)
                    if at_face:
                        face.append(rule)
            if value:
                out.fired.append(rule)
            elif value is None:
                out.unknown.append((rule, missing))
                out.unresolved = out.unresolved or bool(missing & {*RENAL_FIELDS, name})
            if value and not reading.near:
                face.append(rule)
    if changed:
        out.face_fired = face
    return out
