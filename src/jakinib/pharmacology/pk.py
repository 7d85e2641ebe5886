"""Pharmacokinetic models built from the knowledge base's PK records, evaluated with numpy.

One compartment, first-order absorption, optional lag, repeated dosing at steady state (closed-form
superposition, no per-time-point loop). Parameters come from a PK record: CL/F from the record or
from dose / AUC(tau); ke from the half-life or CL/V; V/F from the record or CL/ke; ka solved from the
steady-state (or single-dose) Tmax. Other doses scale linearly (a stated assumption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from jakinib.errors import InputError
from jakinib.knowledge import schema as s


@dataclass(frozen=True)
class PKModel:
    """Typical-subject parameters (apparent, i.e. divided by F)."""

    product: str
    ka_h: float
    cl_l_h: float
    v_l: float
    mw_g_mol: float
    fu: float | None
    tlag_h: float
    reference: s.PK
    derived: tuple[str, ...]  # which parameters were derived rather than read

    @property
    def ke_h(self) -> float:
        return self.cl_l_h / self.v_l

    @property
    def half_life_h(self) -> float:
        return math.log(2) / self.ke_h


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
    """A PK model from one record, or InputError naming what is missing."""
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
    missing = [name for name, val in (("CL/F or AUC", cl), ("half-life or V/F", ke), ("V/F", v),
                                      ("molecular weight", record.mw_g_mol), ("Tmax", record.tmax_h)) if not val]
    if missing:
        raise InputError(f"{record.product}: PK record lacks {', '.join(missing)}: cannot simulate")
    assert cl and v and ke and record.mw_g_mol and record.tmax_h
    ka = _solve_ka(record.tmax_h, ke, record.every_h, record.state == "steady-state")
    derived.append("ka from Tmax")
    return PKModel(record.product, ka, cl, v, record.mw_g_mol, record.fraction_unbound, 0.0, record, tuple(derived))


def concentration_ng_ml(t_h: np.ndarray, dose_mg: float, every_h: float, ka: np.ndarray | float,
                        cl: np.ndarray | float, v: np.ndarray | float, tlag: float = 0.0) -> np.ndarray:
    """Steady-state plasma concentration (ng/mL) at times ``t_h`` after a dose; broadcasts over subjects.

    ``ka``, ``cl`` and ``v`` may be arrays of shape (n, 1) for a population; ``t_h`` of shape (T,).
    """
    ka = np.asarray(ka, dtype=float)
    ke = np.asarray(cl, dtype=float) / np.asarray(v, dtype=float)
    tp = np.mod(np.asarray(t_h, dtype=float) - tlag, every_h)
    dose_ug = dose_mg * 1000.0
    coef = dose_ug * ka / (np.asarray(v, dtype=float) * (ka - ke))
    return coef * (np.exp(-ke * tp) / (1 - np.exp(-ke * every_h)) - np.exp(-ka * tp) / (1 - np.exp(-ka * every_h)))


def ng_ml_to_nM(conc: np.ndarray | float, mw_g_mol: float) -> np.ndarray | float:
    return np.asarray(conc) / mw_g_mol * 1000.0
