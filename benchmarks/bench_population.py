"""Virtual population: 100,000 patients, all pathways, 1-minute grid over a steady-state day.

Run: python benchmarks/bench_population.py [--drug tofacitinib] [--n 100000] [--baseline 40]
Prints the vectorised run time and a per-patient scipy.integrate.solve_ivp baseline measured in the
same run on --baseline patients (extrapolated to n), and their ratio. Target: n = 100,000 in < 10 s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.integrate import solve_ivp

import jakinib
from jakinib.pharmacology import pk as pkm
from jakinib.pharmacology.potency import potency
from jakinib.pharmacology.simulate import simulate


def ode_patient(model: pkm.PKModel, ka: float, cl: float, v: float, dose: float, tau: float, t_day: np.ndarray,
                ic50s: list[float], n_doses: int) -> list[float]:
    """One patient the slow way: integrate dose after dose to steady state, then the last day on the grid."""
    q, vp = model.q_l_h or 0.0, model.vp_l or 1.0

    def rhs(_t, y):
        gut, c, p = y
        return [-ka * gut, ka * gut - cl / v * c - q / v * c + q / vp * p, q / v * c - q / vp * p]

    y = [0.0, 0.0, 0.0]
    per_day = round(24 / tau)
    for i in range(n_doses):
        y = [y[0] + dose * 1000, y[1], y[2]]
        last_day = i >= n_doses - per_day
        k = i - (n_doses - per_day)
        grid = t_day[(t_day >= k * tau) & (t_day < (k + 1) * tau)] - k * tau if last_day else None
        sol = solve_ivp(rhs, (0, tau), y, t_eval=grid, rtol=1e-6, atol=1e-9)
        y = sol.y[:, -1] if not last_day else solve_ivp(rhs, (0, tau), y, rtol=1e-6, atol=1e-9).y[:, -1]
    conc = sol.y[1] / v / model.mw_g_mol * 1000
    return [float(np.mean(conc / (conc + ic))) for ic in ic50s]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--drug", default="tofacitinib")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--baseline", type=int, default=40)
    a = ap.parse_args()
    kb = jakinib.load()
    simulate(kb, a.drug, population=1000, seed=1)  # warm up imports and caches
    t0 = time.perf_counter()
    sim = simulate(kb, a.drug, population=a.n, seed=1)
    fast = time.perf_counter() - t0
    usable = [p for p in sim.pathways if p.ic50_nM is not None]
    print(f"vectorised: {a.n:,} patients x {len(usable)} pathways x 1440 min in {fast:.2f} s "
          f"({'PASS' if fast < 10 else 'FAIL'} < 10 s)")

    drug = kb.drug(a.drug)
    rec = next(r for r in drug.pk if r.model or r.tmax_h)
    model = pkm.build(rec)
    ic50s = [potency(kb, drug, pw).ic50_nM for pw in kb.pathways if potency(kb, drug, pw).ic50_nM]
    t_day = np.arange(0, 24 * 60) / 60
    rng = np.random.default_rng(1)
    n_doses = max(int(np.ceil(5 * model.half_life_h / sim.every_h)), int(24 / sim.every_h)) + int(24 / sim.every_h)
    t0 = time.perf_counter()
    for _ in range(a.baseline):
        eta = rng.normal(0, 0.3, 3)
        ode_patient(model, model.ka_h * np.exp(eta[2]), model.cl_l_h * np.exp(eta[0]), model.v_l * np.exp(eta[1]),
                    sim.dose_mg, sim.every_h, t_day, ic50s, n_doses)
    slow_each = (time.perf_counter() - t0) / a.baseline
    slow = slow_each * a.n
    print(f"solve_ivp baseline: {slow_each * 1000:.1f} ms per patient ({a.baseline} measured) -> {slow:.0f} s for {a.n:,}")
    print(f"speed-up: {slow / fast:.0f}x")


if __name__ == "__main__":
    main()
