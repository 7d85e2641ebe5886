"""What is being ordered, and for what: the JAK inhibitor orders of a CDS call and their indication.

- Orders are recognised through the one terminology layer (``interop.terminology``): an RxNorm code at
  any level the knowledge base lists (clinical drug, branded drug, components), else the structured
  name or text. ``medicationReference`` to a contained Medication or one in the draftOrders Bundle is
  followed. A match by text is said on the card.
- The indication comes from the order's ``reasonCode`` / ``reasonReference``, else from the patient's
  active Conditions that are indications (``indications.yaml`` SNOMED CT / ICD-10 codes, labels and
  synonyms; exact matches only). When several are possible, the one the regulator approved the drug
  for is assumed (the first in the record on a tie) and the card says which, and what else was listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jakinib.interop import fhir, terminology
from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase

ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}


@dataclass(frozen=True)
class JakOrder:
    """An order recognised as a JAK inhibitor, with how it was recognised."""

    drug: str
    resource: dict[str, Any]
    match: terminology.MedicationMatch

    def note(self) -> str | None:
        """The card line for a match by text rather than by code (None for a code match)."""
        if self.match.matched_by == "code":
            return None
        return f"The order was recognised as {self.drug} by its name '{self.match.matched}' (no RxNorm code jakinib knows)."


@dataclass(frozen=True)
class Indication:
    """The indication used for one drug's check, and the card line that says where it came from."""

    id: str | None
    note: str | None


TOPICAL_WORDS = {"cream", "ointment", "topical", "gel", "lotion", "foam"}
ORAL_WORDS = {"oral", "tablet", "tablets", "capsule", "capsules", "tab", "tabs"}


def ordered_product(kb: KnowledgeBase, order: JakOrder) -> tuple[s.Product | None, str | None]:
    """The product ordered, when the order tells: by its code or brand, else by the route its name states
    (when the drug has exactly one product for that route). ``(None, None)`` leaves the choice to the checker."""
    drug = kb.drugs[order.drug]
    if order.match.product:
        return next((p for p in drug.products if p.id == order.match.product), None), None
    words = set(re.findall(r"[a-z]+", order.match.matched.lower()))
    route = "topical" if words & TOPICAL_WORDS else "oral" if words & ORAL_WORDS else None
    fitting = [p for p in drug.products if p.route == route]
    if route and len(fitting) == 1 and len(drug.products) > 1:
        return fitting[0], f"Assessed as {fitting[0].id}: the order's name says a {route} form."
    return None, None


def references(resources: list[dict[str, Any]], bundles: list[Any] = ()) -> dict[str, dict[str, Any]]:
    """``Type/id`` (and ``fullUrl``) -> resource, for following references between the resources of a call."""
    out: dict[str, dict[str, Any]] = {}
    for b in bundles:
        if isinstance(b, dict) and isinstance(b.get("entry"), list):
            for e in b["entry"]:
                if isinstance(e, dict) and isinstance(e.get("resource"), dict) and isinstance(e.get("fullUrl"), str):
                    out[e["fullUrl"]] = e["resource"]
    for r in resources:
        if isinstance(r.get("id"), str):
            out.setdefault(f"{r['resourceType']}/{r['id']}", r)
    return out


def _concept_codings(concept: Any) -> tuple[list[terminology.Coding], str | None]:
    if not isinstance(concept, dict):
        return [], None
    codings = [(s, c, d) for s, c, d in fhir._codings({"coding": concept.get("coding") or []})]
    text = concept.get("text") if isinstance(concept.get("text"), str) else None
    return codings, text


def jak_orders(kb: KnowledgeBase, orders: list[dict[str, Any]], refs: dict[str, dict[str, Any]]) -> list[JakOrder]:
    """Each order that is a JAK inhibitor, by RxNorm code at any level or by name."""
    found = []
    for order in orders:
        codings, text = _concept_codings(fhir.medication_concept(order, refs))
        match = terminology.resolve_medication(kb, codings, text)
        if match is not None and match.drug is not None:
            found.append(JakOrder(match.drug, order, match))
    return found


# ---- indications ---------------------------------------------------------------------------------

def _icd10(code: str) -> str:
    return re.sub(r"[\s.]", "", code).upper()


_INDEX: dict[int, tuple[KnowledgeBase, Any]] = {}


def _indication_index(kb: KnowledgeBase) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, str]]:
    """SNOMED code -> indication, ICD-10 prefixes (longest first) and normalised names, built once per knowledge base."""
    hit = _INDEX.get(id(kb))
    if hit is not None and hit[0] is kb:
        return hit[1]
    snomed = {c: t.id for t in kb.indications.values() for c in t.snomed}
    icd = sorted(((_icd10(c), t.id) for t in kb.indications.values() for c in t.icd10), key=lambda x: -len(x[0]))
    names = {terminology._norm(k): t.id for t in kb.indications.values() for k in (t.id, t.label, *t.synonyms)}
    _INDEX.clear()  # one knowledge base is served at a time; a reloaded one replaces it
    _INDEX[id(kb)] = (kb, (snomed, icd, names))
    return snomed, icd, names


def resolve_indication(kb: KnowledgeBase, codings: list[terminology.Coding], text: str | None = None) -> str | None:
    """An indication slug for a coded concept: SNOMED CT code, ICD-10 / ICD-10-CM code or a code below it
    (with or without the dot: ``M05.79`` and ``M0579`` are in ``M05``), else a label or synonym equal to the text."""
    snomed, icd, names = _indication_index(kb)
    for system, code, _ in codings:
        slug = terminology.system_slug(system)
        if slug == "snomed" and str(code).strip() in snomed:
            return snomed[str(code).strip()]
        if slug == "icd10":
            key = _icd10(str(code))
            hit = next((ind for prefix, ind in icd if key.startswith(prefix)), None)
            if hit:
                return hit
    for label in [d for _, _, d in codings if d] + ([text] if text else []):
        hit = names.get(terminology._norm(label))
        if hit:
            return hit
    return None


def _condition_label(r: dict[str, Any]) -> str:
    codings, text = _concept_codings(r.get("code"))
    return terminology.medication_label(codings, text)  # text, else the first display, else system|code


def _candidates_from_order(kb: KnowledgeBase, order: dict[str, Any], refs: dict[str, dict[str, Any]]) -> tuple[list[tuple[str, str]], list[str]]:
    """((indication, where from), reasons given that are not indications) from reasonCode and reasonReference."""
    found: list[tuple[str, str]] = []
    unknown: list[str] = []
    reasons = order.get("reasonCode") if isinstance(order.get("reasonCode"), list) else []
    for concept in reasons:
        codings, text = _concept_codings(concept)
        ind = resolve_indication(kb, codings, text)
        label = terminology.medication_label(codings, text) if codings or text else "(empty)"
        if ind:
            found.append((ind, f"the order's reasonCode '{label}'"))
        else:
            unknown.append(label)
    refs_given = order.get("reasonReference") if isinstance(order.get("reasonReference"), list) else []
    contained = {f"#{c['id']}": c for c in order.get("contained") or [] if isinstance(c, dict) and isinstance(c.get("id"), str)}
    for ref in refs_given:
        if not isinstance(ref, dict):
            continue
        target = str(ref.get("reference") or "")
        res = contained.get(target) or refs.get(target) or refs.get("/".join(target.split("/")[-2:]))
        if isinstance(res, dict) and res.get("resourceType") == "Condition":
            codings, text = _concept_codings(res.get("code"))
            ind = resolve_indication(kb, codings, text)
            label = _condition_label(res)
        else:
            display = ref.get("display") if isinstance(ref.get("display"), str) else None
            ind = resolve_indication(kb, [], display) if display else None
            label = display or target or "(empty reference)"
        if ind:
            found.append((ind, f"the order's reasonReference '{label}'"))
        else:
            unknown.append(label)
    return found, unknown


def _candidates_from_conditions(kb: KnowledgeBase, resources: list[dict[str, Any]]) -> list[tuple[str, str]]:
    found = []
    for r in resources:
        if r.get("resourceType") != "Condition":
            continue
        clinical, verification = fhir._status(r, "clinicalStatus"), fhir._status(r, "verificationStatus")
        if (clinical is not None and clinical not in ACTIVE_CLINICAL) or verification in EXCLUDED_VERIFICATION:
            continue
        codings, text = _concept_codings(r.get("code"))
        ind = resolve_indication(kb, codings, text)
        if ind:
            found.append((ind, f"the active Condition '{_condition_label(r)}'"))
    return found


def choose_indication(kb: KnowledgeBase, order: JakOrder, regulator: str, resources: list[dict[str, Any]],
                      refs: dict[str, dict[str, Any]], product: s.Product | None = None) -> Indication:
    """The indication for one JAK order: from the order's reason, else from the active Conditions.

    Among several, the first the regulator approved the drug (``product``, when known) for is assumed."""
    found, unknown = _candidates_from_order(kb, order.resource, refs)
    lead = ""
    if unknown and not found:
        lead = f"The order's reason ({', '.join(repr(u) for u in unknown[:3])}) is not an indication jakinib knows. "
    if not found:
        found = _candidates_from_conditions(kb, resources)
    if not found:
        if lead:
            return Indication(None, lead.strip())
        return Indication(None, None)
    distinct = list(dict.fromkeys(ind for ind, _ in found))
    approved = {r.approval.indication for r in kb.approved_rows(order.drug, regulator) if product is None or r.product == product.id}
    chosen = next((ind for ind in distinct if ind in approved), distinct[0])
    where = next(w for ind, w in found if ind == chosen)
    label = kb.indications[chosen].label.lower() if chosen in kb.indications else chosen
    if len(distinct) == 1:
        verb = "Indication" if "order's" in where else "Indication assumed"
        return Indication(chosen, f"{lead}{verb}: {label} (from {where}).")
    others = ", ".join(kb.indications[i].label.lower() if i in kb.indications else i for i in distinct if i != chosen)
    why = f"the one {regulator} approved {order.drug} for" if chosen in approved else "the first listed"
    return Indication(chosen, f"{lead}Indication assumed: {label} (from {where}; {why}). The record also lists: {others}. "
                              "If the order is for one of those, approval, dose and rules may differ.")
