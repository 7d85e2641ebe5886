"""Pharmacology: the pathway map, potency resolution, PK maths against an ODE solver, simulations, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import jakinib
from jakinib.errors import InputError
from jakinib.knowledge import schema as s
from jakinib.pharmacology import pk as pkm
from jakinib.pharmacology.potency import potency
from jakinib.pharmacology.simulate import simulable, simulate

KB = jakinib.load()
REQUIRED = ["IL-2", "IL-4", "IL-6", "IL-7", "IL-10", "IL-12", "IL-13", "IL-15", "IL-21", "IL-23", "IL-31", "IFN-alpha",
            "IFN-gamma", "GM-CSF", "G-CSF", "EPO", "TPO"]
RECORD = s.PK(product="example-oral", dose_mg=15, every_h=24, mw_g_mol=380.4, half_life_h=9.0, tmax_h=2.5, cl_f_l_h=40.0,
              sources=["seed"])


def test_pathway_map_has_every_required_cytokine_with_sources():
    names = [p.cytokine for p in KB.pathways]
    assert set(REQUIRED) <= set(names)
    for p in KB.pathways:
        assert p.jaks and p.stats and p.clinical and p.sources


def test_jak2_homodimer_pathways_explain_cytopenias():
    homo = {p.cytokine for p in KB.pathways if set(p.jaks) == {"JAK2"}}
    assert {"EPO", "TPO", "GM-CSF"} <= homo
    common_gamma = {p.cytokine for p in KB.pathways if set(p.jaks) == {"JAK1", "JAK3"}}
    assert {"IL-2", "IL-4", "IL-7", "IL-15", "IL-21"} <= common_gamma


def test_tofacitinib_label_jak_pair_potency_maps_to_pathways():
    tofa = KB.drug("tofacitinib")
    by = {p.cytokine: potency(KB, tofa, p) for p in KB.pathways}
    assert by["IL-15"].kind == "measured-jak-pair" and by["IL-15"].ic50_nM == 56
    assert by["EPO"].ic50_nM == 1377 and by["IFN-gamma"].ic50_nM == 406
    assert by["IL-15"].sources


def test_no_potency_is_invented():
    for d in KB.drugs.values():
        for p in KB.pathways:
            pot = potency(KB, d, p)
            assert (pot.ic50_nM is None) == (pot.kind == "unavailable")
            if pot.ic50_nM is not None:
                assert pot.sources


def test_steady_state_matches_an_ode_solver():
    model = pkm.build(RECORD)
    tau, n_doses = 24.0, 12

    def rhs(_t, y):
        gut, central = y
        return [-model.ka_h * gut, model.ka_h * gut - model.ke_h * central]

    y = [0.0, 0.0]
    for _ in range(n_doses):
        y = [y[0] + RECORD.dose_mg * 1000, y[1]]
        sol = solve_ivp(rhs, (0, tau), y, rtol=1e-10, atol=1e-10, dense_output=True)
        y = sol.y[:, -1]
    t = np.linspace(0, tau, 97)[:-1]
    ode = sol.sol(t)[1] / model.v_l  # µg/L = ng/mL
    closed = pkm.concentration_ng_ml(t, RECORD.dose_mg, tau, model.ka_h, model.cl_l_h, model.v_l)
    assert np.allclose(closed, ode, rtol=1e-6)


def test_cavg_is_dose_over_clearance_and_tmax_is_reproduced():
    model = pkm.build(RECORD)
    t = np.arange(0, 24 * 60) / 60
    c = pkm.concentration_ng_ml(t, 15, 24, model.ka_h, model.cl_l_h, model.v_l)
    assert c.mean() == pytest.approx(15_000 / (40 * 24), rel=1e-3)
    assert t[c.argmax()] == pytest.approx(2.5, abs=1 / 60)
    assert model.half_life_h == pytest.approx(9.0)


def test_missing_pk_inputs_are_named():
    with pytest.raises(InputError, match="Tmax"):
        pkm.build(RECORD.model_copy(update={"tmax_h": None}))


COMPLETE = [(d, r) for d, r in simulable(KB) if KB.product(r.product)[1].route == "oral"]


@pytest.mark.parametrize("drug, rec", COMPLETE, ids=[f"{d}:{r.product}" for d, r in COMPLETE])
def test_simulated_exposure_agrees_with_its_source_within_20_percent(drug, rec):
    sim = simulate(KB, drug, rec.dose_mg, rec.every_h)
    if rec.auc_ng_h_ml:
        assert sim.pk["cavg_ng_ml"] == pytest.approx(rec.auc_ng_h_ml / rec.every_h, rel=0.2)
    if rec.cmax_ng_ml and rec.state == "steady-state":
        assert sim.pk["cmax_ng_ml"] == pytest.approx(rec.cmax_ng_ml, rel=0.2)
    if rec.half_life_h:
        assert sim.pk["half_life_h"] == pytest.approx(rec.half_life_h, rel=0.2)


def test_at_least_one_oral_product_can_be_simulated():
    assert COMPLETE, "no oral product has a complete, sourced PK record"


def test_population_is_reproducible_and_ordered():
    drug, _rec = COMPLETE[0]
    a = simulate(KB, drug, population=2000, seed=7)
    b = simulate(KB, drug, population=2000, seed=7)
    assert a.population == b.population
    q = a.population["cavg_nM"]
    assert q["p5"] < q["p50"] < q["p95"]
    typical = simulate(KB, drug, population=500, seed=1, cv=1e-9)
    assert typical.population["cavg_nM"]["p50"] == pytest.approx(typical.pk["cavg_nM"], rel=1e-3)


@pytest.mark.parametrize("args, fragment", [
    (["simulate", "notadrug"], "unknown drug"),
    (["simulate", "upadacitinib", "--dose", "7"], "not a dose"),
    (["simulate", "upadacitinib", "--dose", "15", "--every", "-12"], "dosing interval"),
    (["simulate", "upadacitinib", "--route", "nasal"], "oral or topical"),
    (["simulate", "upadacitinib", "--plot", "out.gif"], ".svg or .png"),
    (["compare-pathways", "tofacitinib:5"], "DRUG:MG:HOURS"),
])
def test_bad_simulation_input(cli, args, fragment):
    r = cli(*args)
    assert r.code == 2 and fragment in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1


def test_simulate_cli_json_shape_and_plot(cli, tmp_path):
    drug, _rec = COMPLETE[0]
    out = tmp_path / "c.svg"
    r = cli("simulate", drug, "--json", "--plot", str(out))
    assert r.code == 0, r.err
    data = r.json()
    assert {"drug", "product", "route", "dose_mg", "every_h", "pk", "pathways", "population"} <= set(data)
    assert {"cavg_nM", "cmax_nM", "cmin_nM", "cavg_ng_ml"} <= set(data["pk"])
    for p in data["pathways"]:
        assert {"cytokine", "jaks", "stats", "ic50_nM", "ic50_kind", "avg_inhibition_pct", "time_above_50_h",
                "peak_inhibition_pct", "trough_inhibition_pct"} <= set(p)
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_pathways_cli(cli):
    rows = cli("pathways", "--json").json()
    assert {r["cytokine"] for r in rows} >= set(REQUIRED)


@pytest.mark.xfail(strict=True, reason="blocked: Traves et al. 2021 whole-blood IC50s are not in stored material, so "
                                       "filgotinib/baricitinib/upadacitinib potencies cannot be verified")
def test_traves_2021_jak1_pathways_most_inhibited_for_the_four_ra_drugs():
    regimens = [("tofacitinib", 5, 12), ("baricitinib", 4, 24), ("upadacitinib", 15, 24), ("filgotinib", 200, 24)]
    avgs = {}
    for drug, dose, every in regimens:
        sim = simulate(KB, drug, dose, every)
        by = {p.cytokine: p.avg_inhibition_pct for p in sim.pathways}
        assert by["IL-6"] is not None and by["IFN-alpha"] is not None
        ranked = sorted((v for v in by.values() if v is not None), reverse=True)
        assert by["IL-6"] >= ranked[len(ranked) // 2] and by["IFN-alpha"] >= ranked[len(ranked) // 2]
        avgs[drug] = by
    for cytokine in ("IL-2", "IL-4", "IL-15", "IFN-gamma", "IL-12", "IL-23", "G-CSF", "GM-CSF"):
        assert avgs["filgotinib"][cytokine] == min(a[cytokine] for a in avgs.values())
    assert math.isfinite(sum(avgs["filgotinib"].values()))
