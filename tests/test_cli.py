"""The console script as a user runs it: tables for people, only JSON with --json, exit 2 on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jakinib.knowledge import loader


def test_help_lists_every_command(cli):
    r = cli("--help")
    assert r.code == 0
    for cmd in ("drugs", "drug", "approvals", "compare", "search", "sources", "kb", "check"):
        assert cmd in r.out


def test_drugs_json(cli):
    r = cli("drugs", "--json")
    assert r.code == 0
    rows = r.json()
    names = {row["name"] for row in rows}
    assert {"upadacitinib", "ruxolitinib", "deucravacitinib"} <= names


def test_drug_json_shape_by_brand(cli):
    r = cli("drug", "Rinvoq", "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["name"] == "upadacitinib"
    assert {"name", "synonyms", "class", "targets", "products", "approvals"} <= set(d)
    assert "JAK1" in d["targets"] and {"ic50_nM", "sources"} <= set(d["targets"]["JAK1"])
    prod = d["products"][0]
    assert {"name", "route", "boxed_warning"} <= set(prod)
    assert prod["boxed_warning"] is None or {"regulator", "topics", "sources"} <= set(prod["boxed_warning"])


def test_approvals_json_shape_and_filters(cli):
    r = cli("approvals", "--drug", "upadacitinib", "--regulator", "FDA", "--indication", "AD", "--json")
    assert r.code == 0, r.err
    rows = r.json()
    assert rows
    for row in rows:
        assert set(row) >= {"drug", "product", "route", "regulator", "indication", "decision", "date",
                            "min_age_years", "population", "dose", "sources"}
        assert row["drug"] == "upadacitinib" and row["regulator"] == "FDA" and row["indication"] == "atopic-dermatitis"


def test_approvals_age_filter(cli):
    all_rows = cli("approvals", "--indication", "atopic-dermatitis", "--json").json()
    kids = cli("approvals", "--indication", "atopic-dermatitis", "--age", "12", "--json").json()
    assert len(kids) < len(all_rows)
    assert all(r["min_age_years"] is None or r["min_age_years"] <= 12 for r in kids)


def test_compare_and_search_and_sources(cli):
    r = cli("compare", "tofacitinib", "Olumiant", "--json")
    assert r.code == 0 and [d["name"] for d in r.json()["drugs"]] == ["tofacitinib", "baricitinib"]
    hits = cli("search", "vitiligo", "--json").json()
    assert any(h["kind"] == "indication" and h["id"] == "vitiligo" for h in hits)
    src = cli("sources", "seed", "--json").json()
    assert src["kind"] == "seed"


def test_kb_stats_and_validate(cli):
    stats = cli("kb", "stats", "--json").json()
    assert stats["uncited_facts"] == 0 and stats["drugs"] >= 14 and stats["review_date"]
    v = cli("kb", "validate", "--json")
    assert v.code == 0 and v.json()["valid"] is True


def test_human_output_is_a_table(cli):
    r = cli("approvals", "--drug", "ruxolitinib", "--regulator", "FDA")
    assert r.code == 0 and "ruxolitinib" in r.out and "FDA" in r.out


@pytest.mark.parametrize("args, fragment", [
    (["drug", "notadrug"], "unknown drug 'notadrug'"),
    (["drug", "upadacitinb"], "did you mean upadacitinib"),
    (["approvals", "--regulator", "ZZA"], "unknown regulator"),
    (["approvals", "--indication", "flying"], "unknown indication"),
    (["approvals", "--age", "-3"], "not a plausible age"),
    (["sources", "nope"], "unknown source"),
])
def test_bad_input_one_line_exit_2(cli, args, fragment):
    r = cli(*args)
    assert r.code == 2
    assert fragment in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err


def test_bad_input_with_json_prints_json_error(cli):
    r = cli("drug", "notadrug", "--json")
    assert r.code == 2
    assert r.json()["error"]["type"] == "unknown-name"


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(loader.DATA_DIR, dst)
    return dst


def _break(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: (d / "drugs" / "upadacitinib.yaml").write_text("name: [unclosed\n"), "upadacitinib.yaml:"),
    (lambda d: _break(d / "drugs" / "upadacitinib.yaml", "name: upadacitinib", "name: upadacitinib\nbogus_key: 1"),
     "bogus_key"),
    (lambda d: _break(d / "drugs" / "tofacitinib.yaml", "regulator: FDA", "regulator: XYZ"), "tofacitinib.yaml"),
    (lambda d: (d / "sources" / "seed.yaml").write_text("[]\n"), "unknown source 'seed'"),
    (lambda d: _break(d / "indications.yaml", "id: vitiligo", "id: vitiligo-x"), "unknown indication 'vitiligo'"),
])
def test_corrupt_data_file_is_one_line_error(cli, data_copy, mutate, fragment):
    mutate(data_copy)
    r = cli("kb", "validate", "--data-dir", str(data_copy))
    assert r.code == 2, r.out
    assert fragment in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_json_output_is_only_json(cli):
    for args in (["drugs", "--json"], ["kb", "stats", "--json"], ["search", "zoster", "--json"]):
        json.loads(cli(*args).out)
