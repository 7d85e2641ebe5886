"""The public JSON shapes of knowledge-base objects (shared by the CLI and the HTTP API)."""

from __future__ import annotations

from typing import Any

from jakinib.knowledge import provenance
from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase


def _dump(model: Any) -> Any:
    """``model_dump(mode="json", by_alias=True, exclude_none=True)``, by :func:`jakinib.knowledge.construct.to_json`
    (pydantic's serializer costs more to build at start-up than ``jakinib drug NAME`` does with it)."""
    from jakinib.knowledge.construct import to_json

    return to_json(model)


def boxed_warning_json(lab: s.Label) -> dict[str, Any] | None:
    if lab.boxed_warning is None:
        return None
    return {"regulator": lab.regulator, "topics": list(lab.boxed_warning.topics),
            "text": lab.boxed_warning.text, "sources": list(lab.boxed_warning.sources)}


def product_json(drug: s.DrugFile, product: s.Product) -> dict[str, Any]:
    labels = [lab for lab in drug.labels if lab.product == product.id]
    boxed = [b for b in (boxed_warning_json(lab) for lab in labels) if b]
    fda = next((b for b in boxed if b["regulator"] == "FDA"), None)
    return {
        "id": product.id,
        "name": product.brands[0].name if product.brands else product.formulation,
        "brands": [_dump(b) for b in product.brands],
        "route": product.route,
        "formulation": product.formulation,
        "strengths": list(product.strengths),
        "boxed_warning": fda,
        "boxed_warnings": boxed,
        "labels": sorted(lab.regulator for lab in labels),
        "sources": list(product.sources),
    }


def drug_json(kb: KnowledgeBase, drug: s.DrugFile) -> dict[str, Any]:
    """``jakinib drug NAME --json``; every fact carries its derived ``grade`` (and ``confirmed``) beside ``sources``."""
    return provenance.annotate(kb, {
        "name": drug.name,
        "synonyms": list(drug.synonyms),
        "brands": sorted({b.name for p in drug.products for b in p.brands}),
        "class": drug.drug_class,
        "generation": drug.generation,
        "mechanism": drug.mechanism,
        "selectivity": drug.selectivity,
        "targets": {t.kinase: {"ic50_nM": t.ic50_nM, **{k: v for k, v in _dump(t).items() if k != "kinase"}}
                    for t in drug.targets},
        "products": [product_json(drug, p) for p in drug.products],
        "approvals": [row.to_json() for row in kb.approvals(drug=drug.name, decision=None)],
        "labels": [_dump(lab) for lab in drug.labels],
        "rules": [_dump(r) for r in drug.rules],
        "cellular": [_dump(c) for c in drug.cellular],
        "pk": [_dump(p) for p in drug.pk],
        "notes": [_dump(n) for n in drug.notes],
        "sources": list(drug.sources),
    })


def drug_summary(kb: KnowledgeBase, drug: s.DrugFile) -> dict[str, Any]:
    """One row of ``jakinib drugs --json``."""
    approved = kb.approvals(drug=drug.name)
    return {
        "name": drug.name,
        "class": drug.drug_class,
        "targets": [t.kinase for t in drug.targets],
        "routes": sorted({p.route for p in drug.products}),
        "brands": sorted({b.name for p in drug.products for b in p.brands}),
        "regulators": sorted({r.approval.regulator for r in approved}),
        "indications": sorted({r.approval.indication for r in approved}),
    }


def source_json(src: s.Source) -> dict[str, Any]:
    return _dump(src)


def compare_json(kb: KnowledgeBase, drugs: list[s.DrugFile]) -> dict[str, Any]:
    """Drugs side by side: class, enzyme IC50s, routes, approvals by regulator, boxed warnings."""
    rows = []
    for d in drugs:
        approved = kb.approvals(drug=d.name)
        by_reg: dict[str, list[str]] = {}
        for r in approved:
            by_reg.setdefault(r.approval.regulator, [])
            if r.approval.indication not in by_reg[r.approval.regulator]:
                by_reg[r.approval.regulator].append(r.approval.indication)
        rows.append({
            "name": d.name,
            "class": d.drug_class,
            "ic50_nM": {t.kinase: t.ic50_nM for t in d.targets},
            "routes": sorted({p.route for p in d.products}),
            "approved": by_reg,
            "boxed_warning_regulators": sorted({lab.regulator for lab in d.labels if lab.boxed_warning}),
        })
    return {"drugs": rows}
