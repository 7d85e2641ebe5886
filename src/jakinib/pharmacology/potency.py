"""Drug potency per cytokine pathway: measured where a source gives it, never guessed.

Order of preference for a drug x pathway IC50:
1. ``measured``: a whole-blood / PBMC IC50 for that cytokine (``pathways.yaml`` potency; geometric mean of
   whole-blood values if several), or a label cellular IC50 for that cytokine (drug file ``cellular``);
2. ``measured-jak-pair``: a label cellular IC50 for a JAK pair whose set equals the pathway's JAKs
   (e.g. tofacitinib US PI 12.1 JAK1/JAK3 -> IL-2, IL-4, IL-7, IL-15, IL-21);
3. ``estimated``: enzyme IC50s corrected to cellular ATP by Cheng-Prusoff (IC50_cell = IC50_enz x
   (1 + ATP_cell/Km) / (1 + ATP_assay/Km)) and combined over the receptor's JAKs (the pathway is taken to
   be blocked when its most-inhibited JAK is: the minimum) — only when the knowledge base holds a verified
   ATP Km for each kinase and the enzyme IC50 with its assay ATP. It holds none today, so no estimate is made.
Deucravacitinib binds the TYK2 pseudokinase domain (not ATP-competitive): only measured values apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase


@dataclass(frozen=True)
class Potency:
    cytokine: str
    ic50_nM: float | None
    kind: str  # measured | measured-jak-pair | estimated | unavailable
    basis: str
    sources: tuple[str, ...]
    matrix: str | None = None  # whole-blood (compare with total plasma) or cells (compare with unbound)


# Verified ATP Km (µM) per kinase and a cellular ATP concentration would go here, with sources; none are verified.
ATP_KM_UM: dict[str, float] = {}
CELL_ATP_UM: float | None = None


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def estimate_from_enzyme(drug: s.DrugFile, pathway: s.Pathway, km_um: dict[str, float], cell_atp_um: float | None) -> float | None:
    """Cheng-Prusoff-corrected enzyme IC50 for the pathway (min over its JAKs), or None without the inputs."""
    if cell_atp_um is None or any(t.binding != "atp-site" for t in drug.targets):
        return None
    values = []
    for kinase in set(pathway.jaks):
        t = next((t for t in drug.targets if t.kinase == kinase), None)
        if t is None or t.ic50_nM is None or t.atp_uM is None or kinase not in km_um:
            return None
        km = km_um[kinase]
        values.append(t.ic50_nM * (1 + cell_atp_um / km) / (1 + t.atp_uM / km))
    return min(values) if values else None


def potency(kb: KnowledgeBase, drug: s.DrugFile, pathway: s.Pathway) -> Potency:
    """The IC50 of ``drug`` on ``pathway`` with its kind and basis."""
    rows = [m for m in kb.potency if m.drug == drug.name and m.cytokine == pathway.cytokine]
    if rows:
        blood = [m for m in rows if m.matrix == "whole-blood"] or rows
        return Potency(pathway.cytokine, _geomean([m.ic50_nM for m in blood]), "measured",
                       "; ".join(f"{m.readout} ({m.matrix})" for m in blood),
                       tuple(c for m in blood for c in m.sources), blood[0].matrix)
    for c in drug.cellular:
        if c.cytokine == pathway.cytokine:
            return Potency(pathway.cytokine, c.ic50_nM, "measured", c.readout or c.cytokine, tuple(c.sources), c.matrix)
    for c in drug.cellular:
        if set(c.jaks) == set(pathway.jaks):
            return Potency(pathway.cytokine, c.ic50_nM, "measured-jak-pair", f"{'/'.join(c.jaks)} cellular assay ({c.cytokine})",
                           tuple(c.sources), c.matrix)
    est = estimate_from_enzyme(drug, pathway, ATP_KM_UM, CELL_ATP_UM)
    if est is not None:
        cites = tuple(x for t in drug.targets if t.kinase in pathway.jaks for x in t.sources)
        return Potency(pathway.cytokine, est, "estimated", "enzyme IC50, Cheng-Prusoff to cellular ATP, min over JAKs", cites, "cells")
    why = ("allosteric TYK2 inhibitor: needs its own cellular data" if drug.drug_class == "allosteric-tyk2"
           else "no verified cellular IC50, and no verified ATP Km to estimate one from enzyme IC50s")
    return Potency(pathway.cytokine, None, "unavailable", why, ())
