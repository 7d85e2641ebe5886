"""What a dosing day does to each JAK-STAT pathway: steady-state concentrations and % inhibition.

Inhibition of a pathway at concentration C is C / (C + IC50) (Hill coefficient 1, an assumption).
Whole-blood IC50s are compared with total plasma concentrations; cellular IC50s with unbound ones
(total x fraction unbound). Populations: log-normal between-subject variability on CL/F, V/F and ka.
Everything is vectorised over subjects x a 1-minute grid; subjects are processed in chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from jakinib.errors import InputError, JakinibError
from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase
from jakinib.pharmacology import pk as pkm
from jakinib.pharmacology.params import UserParams
from jakinib.pharmacology.potency import Potency, potency

GRID_MIN = 1.0
DEFAULT_CV = 0.3  # between-subject CV used when no source gives one: a labelled assumption
CHUNK = 5000
DEFAULT_DRUG = "tofacitinib"  # what the simulator page opens on: simulable, and used in rheumatology and dermatology


class PathwayResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    cytokine: str
    jaks: list[str]
    stats: list[str]
    ic50_nM: float | None
    ic50_kind: str
    ic50_basis: str
    avg_inhibition_pct: float | None
    time_above_50_h: float | None
    peak_inhibition_pct: float | None
    trough_inhibition_pct: float | None
    sources: list[str]


class Simulation(BaseModel):
    model_config = ConfigDict(frozen=True)
    drug: str
    product: str
    route: str
    dose_mg: float
    every_h: float
    pk: dict[str, float | None]
    pathways: list[PathwayResult]
    population: dict[str, Any] | None
    assumptions: list[str]
    sources: list[str]
    curve: dict[str, list[float]] | None = None
    user_supplied: bool = False

    def to_json(self, curve: bool = False) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if not curve:
            data.pop("curve", None)
        return data


def _dose_allowed(product: s.Product, dose_mg: float) -> bool:
    strengths = []
    for text in product.strengths:
        try:
            strengths.append(float(text.lower().replace("mg", "").split()[0]))
        except (ValueError, IndexError):
            continue
    return any(abs(dose_mg - k * st) < 1e-9 for st in strengths for k in range(1, 5))


def choose(kb: KnowledgeBase, drug: s.DrugFile, route: str | None) -> tuple[s.Product, s.PK]:
    products = [p for p in drug.products if route is None or p.route == route]
    if not products:
        raise InputError(f"{drug.name} has no {route} product (routes: {', '.join(sorted({p.route for p in drug.products}))})")
    for p in products:
        for rec in drug.pk:
            if rec.product == p.id:
                return p, rec
    raise InputError(f"{drug.name}: no PK record for {', '.join(p.id for p in products)} in the knowledge base: cannot simulate")


def simulable(kb: KnowledgeBase) -> list[tuple[str, s.PK]]:
    """(drug, PK record) pairs complete enough to simulate, in knowledge-base order."""
    out = []
    for d in kb.drugs.values():
        for rec in d.pk:
            try:
                pkm.build(rec)
            except InputError:
                continue
            out.append((d.name, rec))
    return out


def _inhibition(conc_nM: np.ndarray, ic50: float) -> np.ndarray:
    return conc_nM / (conc_nM + ic50)


def _metrics(inh: np.ndarray, minutes: float) -> tuple[np.ndarray, ...]:
    """Per-subject average %, hours above 50 %, peak %, trough % over the day (last axis = time)."""
    return (inh.mean(axis=-1) * 100, (inh >= 0.5).sum(axis=-1) * minutes / 60, inh.max(axis=-1) * 100, inh.min(axis=-1) * 100)


def reach(kb: KnowledgeBase) -> list[dict[str, Any]]:
    """Per drug: whether it can be simulated (``yes``; ``concentrations only`` when no pathway IC50 is verified; ``no``)
    and what the knowledge base is missing for the rest."""
    out = []
    for d in kb.drugs.values():
        missing: list[str] = []
        product = None
        if not d.pk:
            missing.append("no published PK record")
        else:
            errors = []
            for rec in d.pk:
                try:
                    pkm.build(rec)
                    product = rec.product
                    break
                except InputError as exc:
                    errors.append(str(exc).removesuffix(": cannot simulate"))
            if product is None:
                missing.extend(dict.fromkeys(errors))
        pathways = sum(1 for pw in kb.pathways if potency(kb, d, pw).ic50_nM is not None)
        if not pathways:
            missing.append("no verified cellular or whole-blood IC50 for any pathway")
        status = "no" if product is None else ("yes" if pathways else "concentrations only")
        out.append({"drug": d.name, "simulable": status, "product": product, "pathways_with_potency": pathways,
                    "of_pathways": len(kb.pathways), "missing": missing})
    return out


def simulate(kb: KnowledgeBase, name: str | None, dose_mg: float | None = None, every_h: float | None = None,
             route: str | None = None, population: int = 0, seed: int = 0, cv: float | None = None,
             progress: Callable[[int, int], None] | None = None, with_curve: bool = False,
             params: UserParams | None = None) -> Simulation:
    """Simulate one product of ``name`` at steady state over 24 h (and over a virtual population).

    With ``params`` (``simulate --params``) the PK and potencies come from the user's file instead of
    the knowledge base, and the result is marked ``user_supplied``.
    """
    if params is not None:
        drug_name, product_id, product_route, rec, pots = _from_params(kb, params)
        product = None
    else:
        if name is None:
            raise InputError("name a drug to simulate (run `jakinib simulate` alone to list which can be simulated)")
        drug = kb.drug(name)
        product, rec = choose(kb, drug, route)
        drug_name, product_id, product_route = drug.name, product.id, product.route
        pots = [(pw, potency(kb, drug, pw)) for pw in kb.pathways]
    dose = rec.dose_mg if dose_mg is None else float(dose_mg)
    tau = rec.every_h if every_h is None else float(every_h)
    if not (0 < tau <= 168) or math.isnan(tau):
        raise InputError(f"--every {tau:g} h: the dosing interval must be > 0 and <= 168 hours")
    if dose <= 0 or math.isnan(dose):
        raise InputError(f"--dose {dose:g} mg: the dose must be positive")
    if product is not None and product.route == "oral" and not _dose_allowed(product, dose):
        raise InputError(f"{dose:g} mg is not a dose of {product.brands[0].name} (strengths: {', '.join(product.strengths)})")
    if population < 0 or population > 1_000_000:
        raise InputError(f"--population {population}: between 0 and 1,000,000 virtual patients")
    return _run(kb, drug_name, product_id, product_route, rec, pots, dose, tau, population, seed, cv, progress, with_curve,
                params)


def _from_params(kb: KnowledgeBase, params: UserParams) -> tuple[str, str, str, s.PK, list[tuple[s.Pathway, Potency]]]:
    known = {pw.cytokine for pw in kb.pathways}
    unknown = [p.cytokine for p in params.potency if p.cytokine not in known]
    if unknown:
        raise InputError(f"potency: unknown pathway {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    given = {p.cytokine: p for p in params.potency}
    pots = []
    for pw in kb.pathways:
        p = given.get(pw.cytokine)
        pots.append((pw, Potency(pw.cytokine, p.ic50_nM, "user-supplied", p.readout or "user-supplied IC50", tuple(p.sources), p.matrix)
                     if p else Potency(pw.cytokine, None, "unavailable", "not in the parameter file", ())))
    try:
        name = kb.drug(params.drug).name
    except JakinibError:
        name = params.drug
    return name, params.pk.product, params.route, params.pk_record(), pots


def _run(kb: KnowledgeBase, drug_name: str, product_id: str, product_route: str, rec: s.PK, pots: list[tuple[s.Pathway, Potency]],
         dose: float, tau: float, population: int, seed: int, cv: float | None, progress: Callable[[int, int], None] | None,
         with_curve: bool, params: UserParams | None) -> Simulation:
    model = pkm.build(rec)
    assumptions = [f"first-order absorption; {', '.join(model.derived)}",
                   "inhibition = C/(C+IC50), Hill coefficient 1",
                   "whole-blood IC50 vs total plasma concentration; cellular IC50 vs unbound concentration"]
    if dose != rec.dose_mg or tau != rec.every_h:
        assumptions.append(f"linear PK: scaled from the {rec.dose_mg:g} mg every {rec.every_h:g} h reference")
    t = np.arange(0, 24 * 60, GRID_MIN) / 60.0
    conc = pkm.concentration_ng_ml(t, dose, tau, model.ka_h, model.cl_l_h, model.v_l, model.tlag_h, model.q_l_h, model.vp_l)
    conc_nM = pkm.ng_ml_to_nM(conc, model.mw_g_mol)
    pk = {"cavg_nM": float(conc_nM.mean()), "cmax_nM": float(conc_nM.max()), "cmin_nM": float(conc_nM.min()),
          "cavg_ng_ml": float(conc.mean()), "cmax_ng_ml": float(conc.max()), "half_life_h": model.half_life_h,
          "cavg_unbound_nM": float(conc_nM.mean() * model.fu) if model.fu else None,
          "ka_h": model.ka_h, "cl_f_l_h": model.cl_l_h, "v_f_l": model.v_l}
    if params is not None:
        assumptions.insert(0, f"user-supplied parameters for {drug_name}: not reviewed by jakinib (sources as given in the file)")
    results = []
    for pw, pot in pots:
        level = _exposure(conc_nM, pot, model.fu)
        if level is None or pot.ic50_nM is None:
            kind = pot.kind if pot.ic50_nM is None else "unavailable"
            basis = pot.basis if pot.ic50_nM is None else "cellular IC50 but no fraction unbound"
            results.append(PathwayResult(cytokine=pw.cytokine, jaks=list(pw.jaks), stats=list(pw.stats), ic50_nM=pot.ic50_nM,
                                         ic50_kind=kind, ic50_basis=basis, avg_inhibition_pct=None, time_above_50_h=None,
                                         peak_inhibition_pct=None, trough_inhibition_pct=None, sources=list(pot.sources)))
            continue
        avg, above, peak, trough = _metrics(_inhibition(level, pot.ic50_nM), GRID_MIN)
        results.append(PathwayResult(cytokine=pw.cytokine, jaks=list(pw.jaks), stats=list(pw.stats), ic50_nM=pot.ic50_nM,
                                     ic50_kind=pot.kind, ic50_basis=pot.basis, avg_inhibition_pct=round(float(avg), 2),
                                     time_above_50_h=round(float(above), 3), peak_inhibition_pct=round(float(peak), 2),
                                     trough_inhibition_pct=round(float(trough), 2), sources=list(pot.sources)))
    pop = None
    if population:
        cvs = {"cl": DEFAULT_CV, "vc": DEFAULT_CV, "ka": DEFAULT_CV}
        sourced = dict(model.bsv_cv)
        cvs.update(sourced if cv is None else {k: cv for k in cvs})
        pop = _population(model, dose, tau, t, pots, population, seed, cvs, progress)
        assumed = [k for k in cvs if k not in sourced] if cv is None else []
        assumptions.append("between-subject variability: log-normal, CV " + ", ".join(f"{k} {v * 100:g}%" for k, v in cvs.items())
                           + (f" ({', '.join(assumed)} assumed {DEFAULT_CV * 100:g}%: no source gives it)" if assumed else ""))
    sources = params.sources() if params is not None else sorted({*rec.sources, *(c for _, p in pots for c in p.sources)})
    curve = {"t_h": [round(x, 4) for x in t[::10].tolist()], "total_nM": conc_nM[::10].round(4).tolist()} if with_curve else None
    return Simulation(drug=drug_name, product=product_id, route=product_route, dose_mg=dose, every_h=tau, pk=pk,
                      pathways=results, population=pop, assumptions=assumptions, sources=sources, curve=curve,
                      user_supplied=params is not None)


def _exposure(conc_nM: np.ndarray, pot: Potency, fu: float | None) -> np.ndarray | None:
    if pot.ic50_nM is None:
        return None
    if pot.matrix == "whole-blood":
        return conc_nM
    return conc_nM * fu if fu else None


def _population(model: pkm.PKModel, dose: float, tau: float, t: np.ndarray, pots: list[tuple[s.Pathway, Potency]], n: int,
                seed: int, cvs: dict[str, float], progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    omegas = np.array([math.sqrt(math.log(1 + cvs[k] ** 2)) for k in ("cl", "vc", "ka")])
    eta = rng.normal(0.0, 1.0, size=(n, 3)) * omegas
    cl = model.cl_l_h * np.exp(eta[:, 0:1])
    v = model.v_l * np.exp(eta[:, 1:2])
    ka = model.ka_h * np.exp(eta[:, 2:3])
    ka = np.where(np.abs(ka - cl / v) < 1e-6, ka * 1.001, ka)  # avoid ka == ke singularity
    cl, v, ka = cl.astype(np.float32), v.astype(np.float32), ka.astype(np.float32)
    usable = [(pw, p) for pw, p in pots if p.ic50_nM is not None and (p.matrix == "whole-blood" or model.fu)]
    cavg = np.empty(n)
    per = {pw.cytokine: (np.empty(n), np.empty(n)) for pw, _ in usable}
    t32 = t.astype(np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        c = pkm.ng_ml_to_nM(pkm.concentration_ng_ml(t32, dose, tau, ka[start:stop], cl[start:stop], v[start:stop],
                                                    model.tlag_h, model.q_l_h, model.vp_l), model.mw_g_mol).astype(np.float32)
        cavg[start:stop] = c.mean(axis=1)
        done: dict[tuple[float, str | None], tuple[np.ndarray, np.ndarray]] = {}
        for pw, p in usable:  # pathways sharing an IC50 and matrix share one computation
            key = (float(p.ic50_nM), p.matrix)
            if key not in done:
                level = c if p.matrix == "whole-blood" else c * np.float32(model.fu)
                inh = level / (level + np.float32(p.ic50_nM))
                done[key] = (inh.mean(axis=1) * 100, (inh >= 0.5).sum(axis=1) * GRID_MIN / 60)
            per[pw.cytokine][0][start:stop], per[pw.cytokine][1][start:stop] = done[key]
        if progress:
            progress(stop, n)

    def q(x: np.ndarray) -> dict[str, float]:
        p5, p50, p95 = np.percentile(x, [5, 50, 95])
        return {"p5": round(float(p5), 3), "p50": round(float(p50), 3), "p95": round(float(p95), 3)}

    return {"n": n, "seed": seed, "cv": cvs, "cavg_nM": q(cavg),
            "pathways": [{"cytokine": k, "avg_inhibition_pct": q(a), "time_above_50_h": q(b)} for k, (a, b) in per.items()]}
