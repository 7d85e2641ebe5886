"""Pharmacokinetic models built from the knowledge base's PK records, evaluated with numpy.

One compartment, first-order absorption, optional lag, repeated dosing at steady state (closed-form
superposition, no per-time-point loop). Parameters come from a PK record: CL/F from the record or
from dose / AUC(tau); ke from the half-life or CL/V; V/F from the record or CL/ke; ka solved from the
steady-state (or single-dose) Tmax. Other doses scale linearly (a stated assumption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq

from jakinib.errors import InputError
from jakinib.knowledge import schema as s


@dataclass(frozen=True)
class PKModel:
    """Typical-subject apparent parameters (divided by F); q/vp only for two compartments."""

    product: str
    ka_h: float
    cl_l_h: float
    v_l: float
    mw_g_mol: float
    fu: float | None
    tlag_h: float
    reference: s.PK
    derived: tuple[str, ...]  # which parameters were derived rather than read
    q_l_h: float | None = None
    vp_l: float | None = None
    bsv_cv: tuple[tuple[str, float], ...] = ()

    @property
    def ke_h(self) -> float:
        return self.cl_l_h / self.v_l

    @property
    def half_life_h(self) -> float:
        """Terminal half-life (beta phase for two compartments)."""
        if self.q_l_h and self.vp_l:
            _, beta = _hybrid(self.cl_l_h / self.v_l, self.q_l_h / self.v_l, self.q_l_h / self.vp_l)
            return math.log(2) / float(beta)
        return math.log(2) / self.ke_h


def _hybrid(k10: Any, k12: Any, k21: Any) -> tuple[Any, Any]:
    total = k10 + k12 + k21
    root = np.sqrt(total * total - 4 * k10 * k21)
    return (total + root) / 2, (total - root) / 2


def _tmax_ss(ka: float, ke: float, tau: float) -> float:
    return math.log((ka * (1 - math.exp(-ke * tau))) / (ke * (1 - math.exp(-ka * tau)))) / (ka - ke)


def _tmax_sd(ka: float, ke: float) -> float:
    return math.log(ka / ke) / (ka - ke)


def _solve_ka(tmax: float, ke: float, tau: float, steady: bool) -> float:
    f = (lambda ka: _tmax_ss(ka, ke, tau) - tmax) if steady else (lambda ka: _tmax_sd(ka, ke) - tmax)
    lo, hi = ke * 1.0001, 200.0
    if f(lo) * f(hi) > 0:
        raise InputError(f"Tmax {tmax:g} h is not reachable with ke {ke:.3g}/h (absorption cannot be fitted)")
    return brentq(f, lo, hi, xtol=1e-10)


def build(record: s.PK) -> PKModel:
    """A PK model from one record (its published pop-PK model if it has one), or InputError naming what is missing."""
    if record.model is not None:
        if not record.mw_g_mol:
            raise InputError(f"{record.product}: PK record lacks molecular weight: cannot simulate")
        m = record.model
        return PKModel(record.product, m.ka_h, m.cl_l_h, m.vc_l, record.mw_g_mol, record.fraction_unbound, m.tlag_h, record,
                       (f"{m.compartments}-compartment pop-PK model ({m.population})",), m.q_l_h, m.vp_l,
                       tuple(sorted(m.bsv_cv.items())))
    derived: list[str] = []
    cl = record.cl_f_l_h
    if cl is None and record.auc_ng_h_ml:
        cl = record.dose_mg * 1000 / record.auc_ng_h_ml  # mg -> µg; µg / (ng·h/mL) = L/h
        derived.append("CL/F = dose / AUCtau")
    ke = math.log(2) / record.half_life_h if record.half_life_h else None
    v = record.v_f_l
    if ke is None and cl and v:
        ke = cl / v
        derived.append("ke = CL/V")
    if v is None and cl and ke:
        v = cl / ke
        derived.append("V/F = CL/ke")
    if cl is None and v and ke:
        cl = v * ke
        derived.append("CL/F = V*ke")
    missing = [name for name, lacking in (("CL/F or AUCtau", cl is None), ("V/F or half-life", v is None and ke is None),
                                          ("molecular weight", not record.mw_g_mol), ("Tmax", not record.tmax_h)) if lacking]
    if missing:
        raise InputError(f"{record.product}: PK record lacks {', '.join(missing)}: cannot simulate")
    assert cl and v and ke and record.mw_g_mol and record.tmax_h
    ka = _solve_ka(record.tmax_h, ke, record.every_h, record.state == "steady-state")
    derived.append("ka from Tmax")
    return PKModel(record.product, ka, cl, v, record.mw_g_mol, record.fraction_unbound, 0.0, record, tuple(derived))


def concentration_ng_ml(t_h: np.ndarray, dose_mg: float, every_h: float, ka: Any, cl: Any, v: Any, tlag: float = 0.0,
                        q: float | None = None, vp: float | None = None) -> np.ndarray:
    """Steady-state plasma concentration (ng/mL) at times ``t_h`` after a dose; broadcasts over subjects.

    ``ka``, ``cl`` and ``v`` (central volume) may be arrays of shape (n, 1) for a population; ``t_h`` of shape (T,).
    With ``q`` and ``vp`` the model has two compartments (sum of three exponentials).
    """
    ka = np.asarray(ka)  # dtype preserved: the population path passes float32 arrays
    v = np.asarray(v)
    k10 = np.asarray(cl) / v
    tp = np.mod(np.asarray(t_h) - np.asarray(tlag, dtype=np.asarray(t_h).dtype), np.asarray(every_h, dtype=np.asarray(t_h).dtype))
    scale = dose_mg * 1000.0 * ka / v  # µg/L = ng/mL

    def term(rate: Any, weight: Any) -> Any:
        return weight * np.exp(-rate * tp) / (1 - np.exp(-rate * every_h))

    if not q or not vp:
        return scale / (ka - k10) * (term(k10, 1.0) - term(ka, 1.0))
    k21 = q / vp
    alpha, beta = _hybrid(k10, q / v, k21)
    return scale * (term(alpha, (k21 - alpha) / ((ka - alpha) * (beta - alpha)))
                    + term(beta, (k21 - beta) / ((ka - beta) * (alpha - beta)))
                    + term(ka, (k21 - ka) / ((alpha - ka) * (beta - ka))))


def ng_ml_to_nM(conc: np.ndarray | float, mw_g_mol: float) -> np.ndarray | float:
    return np.asarray(conc) / mw_g_mol * 1000.0
