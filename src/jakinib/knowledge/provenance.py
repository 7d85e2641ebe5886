"""Provenance you can see: each fact's verification grade and what each drug × regulator rests on.

A *fact* is any record that carries ``sources`` (an approval, a rule, a label warning, a target, a code...).
Its grade is derived, never typed in: the best grade among the sources it cites, in the order
``primary`` (read in the issuer's own document) > ``transcription`` (a verbatim copy) > ``secondary``
(a summary or news report). A fact is *confirmed* when one of its sources names an independent source, read separately, that agrees
(the source's ``confirmed_by``); the data says so explicitly, it is never guessed from the number of citations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from jakinib.knowledge import schema as s

if TYPE_CHECKING:
    from jakinib.knowledge.base import KnowledgeBase

RANK = {g: i for i, g in enumerate(s.GRADES)}


def iter_facts(obj: Any, where: str = "") -> Iterator[tuple[str, BaseModel]]:
    """Yield (location, record) for every record with a ``sources`` list inside a model tree."""
    if isinstance(obj, BaseModel):
        if isinstance(getattr(obj, "sources", None), list) and not isinstance(obj, s.DrugFile):
            yield where, obj
        label = getattr(obj, "id", None) or getattr(obj, "name", None)
        for name in type(obj).model_fields:
            if name == "sources":
                continue
            value = getattr(obj, name)
            if isinstance(value, (BaseModel, list, tuple)):
                yield from iter_facts(value, f"{where}.{name}" if where else (label or name))
        if isinstance(obj, s.DrugFile):
            yield where or obj.name, obj
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from iter_facts(item, f"{where}[{i}]")


def source_ids(citations: Iterable[str]) -> list[str]:
    """The distinct source ids of a list of citations (``id#section`` -> ``id``), in order."""
    out: list[str] = []
    for c in citations:
        sid = c.partition("#")[0]
        if sid not in out:
            out.append(sid)
    return out


def grade_of(sources: dict[str, s.Source], citations: Iterable[str]) -> str:
    """The fact's grade: the best grade among the sources it cites."""
    grades = [sources[sid].grade for sid in source_ids(citations) if sid in sources]
    return min(grades, key=RANK.__getitem__) if grades else "secondary"


def confirmed(sources: dict[str, s.Source], citations: Iterable[str]) -> bool:
    """True when a cited source names an independent source that agrees (``confirmed_by``)."""
    return any(sources[sid].confirmed_by for sid in source_ids(citations) if sid in sources)


def grade_counts(kb: KnowledgeBase) -> dict[str, dict[str, int]]:
    """How many sources and facts have each grade (for ``kb stats``)."""
    src = dict.fromkeys(s.GRADES, 0)
    for x in kb.sources.values():
        src[x.grade] += 1
    facts = dict.fromkeys(s.GRADES, 0)
    for _, rec in all_facts(kb):
        facts[grade_of(kb.sources, rec.sources)] += 1  # type: ignore[attr-defined]
    return {"sources": src, "facts": facts}


def all_facts(kb: KnowledgeBase) -> Iterator[tuple[str, BaseModel]]:
    for d in kb.drugs.values():
        yield from iter_facts(d, d.name)
    for group in (kb.indications.values(), kb.conditions.values(), kb.medications.values(), kb.labs.values(),
                  kb.class_facts, kb.evidence, kb.codes, kb.pathways, kb.potency, getattr(kb, "rxnorm", [])):
        for item in group:
            if getattr(item, "sources", None):
                yield from iter_facts(item, getattr(item, "id", "") or getattr(item, "name", ""))


def _scoped_facts(drug: s.DrugFile, regulator: str) -> Iterator[tuple[str, BaseModel]]:
    """The facts of one drug that hold under one regulator: its approvals, labels and rules there."""
    for a in drug.approvals:
        if a.regulator == regulator:
            yield from iter_facts(a, f"approval {a.indication} ({a.product}, {a.date or 'undated'})")
    for lab in drug.labels:
        if lab.regulator == regulator:
            yield from iter_facts(lab, f"label {lab.product}")
    for r in drug.rules:
        if regulator in r.regulators:
            yield f"rule {r.id}", r


def review(kb: KnowledgeBase, drug: str | None = None, regulator: str | None = None) -> list[dict[str, Any]]:
    """What rests on what, per drug × regulator: facts by grade, sources and the sections read in each,
    the oldest source check date, partial labels, facts resting only on secondary sources, and sign-offs."""
    drugs = [kb.drug(drug)] if drug else list(kb.drugs.values())
    regs = [kb.regulator(regulator)] if regulator else list(s.REGULATORS)
    out = []
    for d in drugs:
        for reg in regs:
            facts = list(_scoped_facts(d, reg))
            if not facts:
                continue
            grades = dict.fromkeys(s.GRADES, 0)
            sections: dict[str, set[str]] = {}
            weak: list[str] = []
            n_confirmed = 0
            for where, rec in facts:
                cites = rec.sources  # type: ignore[attr-defined]
                g = grade_of(kb.sources, cites)
                grades[g] += 1
                n_confirmed += confirmed(kb.sources, cites)
                if g == "secondary":
                    weak.append(where)
                for c in cites:
                    sid, _, sec = c.partition("#")
                    sections.setdefault(sid, set())
                    if sec:
                        sections[sid].add(sec)
            used = [kb.sources[sid] for sid in sections if sid in kb.sources]
            oldest = min((x.as_of for x in used), default=None)
            out.append({
                "drug": d.name,
                "regulator": reg,
                "facts": len(facts),
                "grades": grades,
                "confirmed": n_confirmed,
                "as_of": oldest.isoformat() if oldest else None,
                "partial": [{"product": lab.product, "partial": lab.partial} for lab in d.labels
                            if lab.regulator == reg and lab.partial],
                "sources": [{"id": x.id, "kind": x.kind, "grade": x.grade, "as_of": x.as_of.isoformat(),
                             "sections": sorted(sections[x.id]), "confirmed_by": list(x.confirmed_by),
                             "disagrees_with": [dis.model_dump() for dis in x.disagrees_with]}
                            for x in sorted(used, key=lambda x: (RANK[x.grade], x.id))],
                "secondary_only": weak,
                "signoffs": [so.model_dump(mode="json", exclude_none=True) for so in kb.signoffs
                             if so.drug == d.name and so.regulator == reg],
            })
    return out


def annotate(kb: KnowledgeBase, data: Any) -> Any:
    """A JSON tree with ``grade`` (and ``confirmed``) added beside every ``sources`` list."""
    if isinstance(data, dict):
        out = {k: annotate(kb, v) for k, v in data.items()}
        cites = data.get("sources")
        if isinstance(cites, list) and cites and all(isinstance(c, str) for c in cites) and "grade" not in data:
            out["grade"] = grade_of(kb.sources, cites)
            out["confirmed"] = confirmed(kb.sources, cites)
        return out
    if isinstance(data, list):
        return [annotate(kb, v) for v in data]
    return data
