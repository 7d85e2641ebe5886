"""One mapping layer from clinical codings and text to jakinib's vocabularies.

Used by the FHIR Bundle reader, the CDS Hooks prefetch and (later) Bulk Data export, so a code learned
once is read everywhere. Everything here is a dictionary lookup over knowledge-base data: no fuzzy
matching ("did you mean" belongs to user-facing errors, never to mapping).

Medications resolve to an ingredient at any RxNorm level:

- by **code**: RxNorm ingredient codes (``medications.yaml`` ``rxnorm``) and clinical-drug / branded-drug
  codes (``codes.yaml`` ``rxnorm``, each with its source), including every JAK inhibitor product;
- by **text**: structured RxNorm names are parsed (``ingredient strength unit dose-form [brand]``,
  multi-ingredient names split on ``/``), e.g. ``"Clopidogrel 75 MG Oral Tablet"``,
  ``"Carbamazepine[Tegretol]"``, ``"abrocitinib 100 MG Oral Tablet"``, ``"Warfarin Sodium 5 MG"``
  (salt words fall away because the longest known prefix wins).

>>> import jakinib
>>> kb = jakinib.load()
>>> m = resolve_medication(kb, [("http://www.nlm.nih.gov/research/umls/rxnorm", "309362", "Clopidogrel 75 MG Oral Tablet")], None)
>>> (m.ingredient, m.classes, m.matched_by, m.strength_mg)
('clopidogrel', ('antiplatelet',), 'code', 75.0)
>>> resolve_medication(kb, [], "abrocitinib 100 MG Oral Tablet").drug
'abrocitinib'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from jakinib.knowledge.base import KnowledgeBase

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SYSTEMS = {
    "http://loinc.org": "loinc",
    "http://snomed.info/sct": "snomed",
    "http://hl7.org/fhir/sid/cvx": "cvx",
    RXNORM: "rxnorm",
    "http://hl7.org/fhir/sid/icd-10": "icd10",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10",
    "http://unitsofmeasure.org": "ucum",
}
Coding = tuple[str, str, str | None]  # (system URL or slug, code, display)


@dataclass(frozen=True)
class MedicationMatch:
    """A medication resolved to a known ingredient.

    ``ingredient`` is a JAK inhibitor slug (then ``drug`` is set too) or a ``medications.yaml`` name;
    ``classes`` are its interaction classes; ``matched_by`` says whether a code or the text matched;
    ``matched`` names what matched (``"rxnorm 309362"`` or the text).
    """

    ingredient: str
    drug: str | None
    product: str | None
    classes: tuple[str, ...]
    matched_by: Literal["code", "text"]
    matched: str
    strength_mg: float | None = None


@cache
def system_slug(system: str | None) -> str:
    """'rxnorm', 'loinc', ... for a FHIR system URL (slugs pass through); 'other' when unknown (cached: a cohort
    reads the same few systems millions of times)."""
    text = str(system or "").rstrip("/")
    if text in SYSTEMS:
        return SYSTEMS[text]
    return text if text in SYSTEMS.values() or text == "text" else "other"


# ---- the index (built once per knowledge base) -------------------------------------------

@dataclass(frozen=True)
class _Entry:
    ingredient: str
    drug: str | None
    product: str | None
    classes: tuple[str, ...]
    strength_mg: float | None = None


_INDEXES: dict[int, tuple[KnowledgeBase, dict[str, _Entry], dict[str, _Entry], int]] = {}


def _norm(text: str) -> str:
    return re.sub(r"[\s_®™-]+", " ", text.strip().lower()).strip()


def _index(kb: KnowledgeBase) -> tuple[dict[str, _Entry], dict[str, _Entry], int]:
    """(name -> entry, rxnorm code -> entry, longest name in words)."""
    cached = _INDEXES.get(id(kb))
    if cached is not None and cached[0] is kb:
        return cached[1], cached[2], cached[3]
    names: dict[str, _Entry] = {}
    codes: dict[str, _Entry] = {}
    for d in kb.drugs.values():
        entry = _Entry(d.name, d.name, None, ())
        for k in [d.name, *d.synonyms]:
            names.setdefault(_norm(k), entry)
        for p in d.products:
            for b in p.brands:
                names.setdefault(_norm(b.name), _Entry(d.name, d.name, p.id, ()))
    for m in kb.medications.values():
        entry = _Entry(m.name, None, None, tuple(m.classes))
        for k in [m.name, *m.synonyms]:
            names.setdefault(_norm(k), entry)
        for code in m.rxnorm:
            codes.setdefault(code, entry)
    for c in kb.rxnorm:
        if c.ingredient in kb.drugs:
            codes[c.code] = _Entry(c.ingredient, c.ingredient, c.product, (), c.strength_mg)
        else:
            med = kb.medications[c.ingredient]
            codes[c.code] = _Entry(med.name, None, None, tuple(med.classes), c.strength_mg)
    longest = max((len(k.split()) for k in names), default=1)
    _INDEXES[id(kb)] = (kb, names, codes, longest)
    return names, codes, longest


# ---- RxNorm-style names ----------------------------------------------------------------------

_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|mcg|µg|ug|g)\b(?!\s*/)", re.IGNORECASE)
_LEADING_QTY = re.compile(r"^(\d+(\.\d+)?\s+(ml|hr|actuat|day|unt)\s+)+", re.IGNORECASE)
_MG = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "µg": 0.001, "ug": 0.001}


def parse_name(text: str) -> tuple[list[str], list[str], float | None]:
    """(component names, brands, strength in mg) of an RxNorm-style medication name.

    ``"Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet"`` -> two components;
    each component keeps only its words before the first number ("hydrocodone bitartrate").
    The strength is the first ``N MG`` that is not a concentration (``MG/ML``), for one-component names.
    """
    brands = [b.strip().lower() for b in re.findall(r"\[([^\]]+)\]", text)]
    body = re.sub(r"\[[^\]]*\]", " ", text)
    body = re.sub(r"[{}()]", " ", body)
    parts = []
    for part in re.split(r"\s+/\s+", body):
        words = []
        for w in _LEADING_QTY.sub("", part.strip()).split():
            if _NUMBER.match(w) or re.match(r"^\d", w):
                break
            words.append(w.lower())
        if words:
            parts.append(" ".join(words))
    strength = None
    if len(parts) <= 1:
        m = _STRENGTH.search(body)
        if m:
            strength = float(m.group(1)) * _MG[m.group(2).lower()]
    return parts, brands, strength


def _lookup_words(words: list[str], names: dict[str, _Entry], longest: int) -> _Entry | None:
    """The longest known name starting at the first word (so salt words after it fall away)."""
    for n in range(min(len(words), longest), 0, -1):
        hit = names.get(" ".join(words[:n]))
        if hit is not None:
            return hit
    return None


def _scan(text: str, names: dict[str, _Entry], longest: int) -> _Entry | None:
    """Any known name anywhere in free text, word-aligned (e.g. "clopidogrel tablets, take one daily")."""
    words = re.findall(r"[a-z0-9'.]+", _norm(text))
    for i in range(len(words)):
        hit = _lookup_words(words[i:], names, longest)
        if hit is not None:
            return hit
    return None


def resolve_text(kb: KnowledgeBase, text: str) -> MedicationMatch | None:
    """A medication name or free text -> the known ingredient it names (JAK inhibitors first)."""
    names, _, longest = _index(kb)
    parts, brands, strength = parse_name(text)
    hits = [h for h in (_lookup_words(_norm(p).split(), names, longest) for p in parts) if h]
    hits += [h for h in (names.get(_norm(b)) for b in brands) if h]
    if not hits:
        hit = _scan(text, names, longest)
        hits = [hit] if hit else []
    if not hits:
        return None
    jak = next((h for h in hits if h.drug), None)
    if jak is not None:
        return MedicationMatch(jak.ingredient, jak.drug, jak.product, (), "text", text.strip(), strength)
    classes = tuple(dict.fromkeys(c for h in hits for c in h.classes))
    ingredient = " / ".join(dict.fromkeys(h.ingredient for h in hits))
    return MedicationMatch(ingredient, None, None, classes, "text", text.strip(), strength if len(hits) == 1 else None)


def resolve_medication(kb: KnowledgeBase, codings: list[Coding], text: str | None) -> MedicationMatch | None:
    """Codings ``(system, code, display)`` and text of a medication -> its known ingredient, or None.

    A code wins over text; the strength comes from the code's record or, failing that, the name.
    None means the medication is not a JAK inhibitor and not in the interaction table.
    """
    _, codes, _ = _index(kb)
    for system, code, display in codings:
        if system_slug(system) == "rxnorm" and str(code) in codes:
            e = codes[str(code)]
            strength = e.strength_mg
            if strength is None and display:
                strength = parse_name(display)[2]
            return MedicationMatch(e.ingredient, e.drug, e.product, e.classes, "code", f"rxnorm {code}", strength)
    for label in [d for _, _, d in codings if d] + ([text] if text else []):
        hit = resolve_text(kb, label)
        if hit is not None:
            return hit
    return None


def medication_label(codings: list[Coding], text: str | None) -> str:
    """A short human label for an unresolved medication (text, else the first display, else the code)."""
    if text:
        return text.strip()
    for _, _, display in codings:
        if display:
            return display
    return f"{codings[0][0]}|{codings[0][1]}" if codings else "(no code or text)"


def ingredient_names(text: str) -> list[str]:
    """Lower-case ingredient names parsed from an RxNorm-style name (for reports on unknown medicines)."""
    return parse_name(text)[0]


# ---- conditions ----------------------------------------------------------------------------------

_COND_INDEXES: dict[int, tuple[KnowledgeBase, dict[tuple[str, str], str], dict[str, str]]] = {}


def _icd10_key(code: str) -> str:
    """ICD-10 / ICD-10-CM with or without the dot: 'I639' -> 'I63.9', 'i63.9' -> 'I63.9'."""
    text = code.strip().upper().replace(" ", "")
    if "." not in text and len(text) > 3:
        text = text[:3] + "." + text[3:]
    return text


def _condition_index(kb: KnowledgeBase) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    cached = _COND_INDEXES.get(id(kb))
    if cached is not None and cached[0] is kb:
        return cached[1], cached[2]
    codes: dict[tuple[str, str], str] = {}
    names: dict[str, str] = {}
    for t in kb.conditions.values():
        for c in t.snomed:
            codes.setdefault(("snomed", c), t.id)
        for c in t.icd10:
            codes.setdefault(("icd10", _icd10_key(c)), t.id)
        for k in [t.id, t.label, *t.synonyms]:
            names.setdefault(_norm(k), t.id)
    _COND_INDEXES[id(kb)] = (kb, codes, names)
    return codes, names


def resolve_condition(kb: KnowledgeBase, codings: list[Coding]) -> tuple[str, Literal["code", "text"]] | None:
    """Codings of a Condition (``(system, code, display)``; ``("text", text, text)`` for its text) -> (slug, how).

    SNOMED CT concepts match the slug's value set (the concept and the descendants listed); ICD-10 / ICD-10-CM
    match with or without the dot, then by their 3-character category (I63.9 -> I63). Failing a code, the
    display or text must equal a slug's label or synonym (no partial or fuzzy match).
    """
    codes, names = _condition_index(kb)
    for system, code, _ in codings:
        slug_system = system_slug(system) if system != "text" else "text"
        if slug_system == "snomed" and (hit := codes.get(("snomed", str(code).strip()))):
            return hit, "code"
        if slug_system == "icd10":
            key = _icd10_key(str(code))
            for candidate in (key, key.split(".")[0]):
                if hit := codes.get(("icd10", candidate)):
                    return hit, "code"
    for system, code, display in codings:
        for text in (display, code if system == "text" else None):
            if text and (hit := names.get(_norm(text))):
                return hit, "text"
    return None
