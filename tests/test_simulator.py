"""Simulator honesty and reach: which drugs can be simulated (and why not), and `--params` for the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import jakinib

# ILLUSTRATIVE VALUES, NOT DATA: a made-up parameter set shaped like a published one, used only to test that
# `--params` works for a drug the knowledge base cannot simulate. None of these numbers is a fact about upadacitinib.
ILLUSTRATIVE = {
    "drug": "upadacitinib",
    "pk": {"dose_mg": 15, "every_h": 24, "mw_g_mol": 400.0, "half_life_h": 10.0, "tmax_h": 2.0, "cl_f_l_h": 40.0,
           "sources": ["illustrative values written for this test; not a published source"]},
    "potency": [
        {"cytokine": "IL-6", "ic50_nM": 50.0, "matrix": "whole-blood", "readout": "pSTAT3 (illustrative)", "sources": ["illustrative"]},
        {"cytokine": "IL-15", "ic50_nM": 500.0, "matrix": "whole-blood", "sources": ["illustrative"]},
    ],
}


def _write(tmp_path: Path, data: dict, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_simulate_without_a_drug_lists_reach_and_what_is_missing(cli):
    rows = {r["drug"]: r for r in cli("simulate", "--json").json()}
    assert set(rows) == set(jakinib.load().drugs)
    assert rows["tofacitinib"]["simulable"] == "yes" and rows["tofacitinib"]["missing"] == []
    assert rows["upadacitinib"]["simulable"] == "no"
    assert any("Tmax" in m for m in rows["upadacitinib"]["missing"])
    for r in rows.values():
        assert (r["simulable"] == "yes") == (not r["missing"]), r
    table = cli("simulate")
    assert table.code == 0 and "what is missing" in table.out and "--params" in table.out


def test_missing_parameters_are_each_named_once(kb):
    from jakinib.pharmacology.simulate import reach

    for r in reach(kb):
        for message in r["missing"]:
            named = [p for p in ("CL/F", "V/F", "Tmax", "molecular weight") if p in message]
            assert len(named) == len(set(named))
            assert message.count("V/F") <= 1, message


def test_params_file_simulates_a_drug_the_knowledge_base_cannot(cli, tmp_path):
    kb_only = cli("simulate", "upadacitinib")
    assert kb_only.code == 2
    result = cli("simulate", "--params", str(_write(tmp_path, ILLUSTRATIVE)), "--json")
    assert result.code == 0, result.err
    sim = result.json()
    assert sim["user_supplied"] is True and sim["drug"] == "upadacitinib"
    assert sim["sources"] == ["illustrative values written for this test; not a published source", "illustrative"]
    by = {p["cytokine"]: p for p in sim["pathways"]}
    assert by["IL-6"]["ic50_kind"] == "user-supplied" and by["IL-6"]["avg_inhibition_pct"] > by["IL-15"]["avg_inhibition_pct"] > 0
    assert by["IFN-alpha"]["avg_inhibition_pct"] is None
    assert any("user-supplied" in a for a in sim["assumptions"])
    plain = cli("simulate", "--params", str(_write(tmp_path, ILLUSTRATIVE)))
    assert "not reviewed by jakinib" in plain.out


def test_params_dose_scales_exposure(tmp_path):
    path = _write(tmp_path, ILLUSTRATIVE)
    low = jakinib.simulate(None, dose_mg=15, params=path)
    high = jakinib.simulate(None, dose_mg=30, params=path)
    assert high.pk["cavg_nM"] == pytest.approx(2 * low.pk["cavg_nM"], rel=1e-6)


def test_params_for_a_drug_not_in_the_knowledge_base(tmp_path):
    data = json.loads(json.dumps(ILLUSTRATIVE))
    data["drug"] = "examplinib"
    sim = jakinib.simulate(None, params=_write(tmp_path, data))
    assert sim.drug == "examplinib" and sim.user_supplied


@pytest.mark.parametrize(("change", "expect"), [
    (lambda d: d["pk"].pop("sources"), "pk.sources"),
    (lambda d: d["potency"][0].update(sources=[]), "potency.0.sources"),
    (lambda d: d["potency"][0].update(ic50_nM=-1), "potency.0.ic50_nM"),
    (lambda d: d["pk"].update(half_life_h=0), "pk.half_life_h"),
    (lambda d: d["pk"].update(cl_f_l=3), "pk.cl_f_l"),
    (lambda d: d["potency"].append(dict(d["potency"][0])), "more than one IC50 for IL-6"),
    (lambda d: d["potency"][0].update(cytokine="IL-99"), "unknown pathway IL-99"),
    (lambda d: d["pk"].pop("tmax_h"), "Tmax"),
])
def test_bad_params_file_is_one_line_exit_2(cli, tmp_path, change, expect):
    data = json.loads(json.dumps(ILLUSTRATIVE))
    change(data)
    result = cli("simulate", "--params", str(_write(tmp_path, data)))
    assert result.code == 2, result.out + result.err
    assert expect in result.err and len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_params_file_that_is_not_yaml(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("drug: [unclosed\n", encoding="utf-8")
    result = cli("simulate", "--params", str(path))
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1


def test_simulate_page_opens_on_a_result_and_lists_reach(server):
    import httpx

    page = httpx.get(server.url + "/simulate").text
    assert 'id="simulation"' in page and "tofacitinib" in page.split('id="simulation"')[1][:200]
    reach = page.split('id="reach"')[1]
    for name in jakinib.load().drugs:
        assert f'href="/drugs/{name}"' in reach
    assert "Tmax" in reach
