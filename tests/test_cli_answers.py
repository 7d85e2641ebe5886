"""The CLI answers first: `check` opens with a one-screen summary and names the regulator it used."""

from __future__ import annotations

from pathlib import Path

from jakinib.knowledge.schema import STATUS_ORDER

ROOT = Path(__file__).resolve().parents[1]
PATIENT = str(ROOT / "examples" / "patient.json")


def _summary_rows(out: str) -> list[tuple[str, str]]:
    """(drug, status) per summary row, in printed order."""
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and "(" in cells[1] and cells[2] in STATUS_ORDER:
            rows.append((cells[1].split(" (")[0], cells[2]))
    return rows


def test_check_summary_first_worst_first_and_default_regulator_named(cli):
    r = cli("check", PATIENT, "--today", "2025-01-01")
    assert r.code == 0, r.err
    first = r.out.splitlines()[0]
    assert "FDA" in first and "default" in first and "2025-01-01" in first and "atopic-dermatitis" in first
    rows = _summary_rows(r.out)
    assert len(rows) == len(cli("check", PATIENT, "--json").json()["assessments"]) > 5
    ranks = [STATUS_ORDER.index(s) for _, s in rows]
    assert ranks == sorted(ranks)
    assert len(r.out.splitlines()) < 45  # one screen: details only on request
    assert "screen before starting" not in r.out
    detailed = cli("check", PATIENT, "--today", "2025-01-01", "--details")
    assert "screen before starting" in detailed.out and len(detailed.out) > len(r.out)


def test_check_summary_shows_brand_and_deciding_reason(cli):
    r = cli("check", PATIENT, "--drug", "upadacitinib", "--today", "2025-01-01")
    assert r.code == 0, r.err
    assert "upadacitinib (Rinvoq)" in r.out
    data = cli("check", PATIENT, "--drug", "upadacitinib", "--json").json()["assessments"][0]
    worst = next(f for f in data["findings"] if f["severity"] == data["status"])
    assert " ".join(worst["message"].split())[:30] in " ".join(r.out.split())


def test_regulator_from_environment_and_bad_value_is_one_line(cli):
    r = cli("check", PATIENT, "--drug", "baricitinib", env={"JAKINIB_REGULATOR": "EMA"})
    assert r.code == 0, r.err
    assert "EMA" in r.out.splitlines()[0] and "JAKINIB_REGULATOR" in r.out.splitlines()[0]
    assert cli("check", PATIENT, "--json", env={"JAKINIB_REGULATOR": "EMA"}).json()["regulator"] == "EMA"
    opt = cli("check", PATIENT, "--regulator", "TGA", env={"JAKINIB_REGULATOR": "EMA"})
    assert "TGA" in opt.out.splitlines()[0] and "--regulator" in opt.out.splitlines()[0]
    bad = cli("check", PATIENT, env={"JAKINIB_REGULATOR": "NOPE"})
    assert bad.code == 2 and "JAKINIB_REGULATOR" in bad.err and len(bad.err.strip().splitlines()) == 1
    assert "Traceback" not in bad.err


def test_version(cli):
    from importlib.metadata import version

    r = cli("--version")
    assert r.code == 0 and r.out.strip() == f"jakinib {version('jakinib')}"


def test_sex_one_letter_codes_accepted(cli, tmp_path):
    import json

    for code, sex in (("F", "female"), ("m", "male")):
        p = tmp_path / f"{code}.json"
        p.write_text(json.dumps({"age": 40, "sex": code, "indication": "atopic-dermatitis"}))
        r = cli("check", str(p), "--drug", "upadacitinib", "--json")
        assert r.code == 0, r.err
        same = tmp_path / f"{sex}.json"
        same.write_text(json.dumps({"age": 40, "sex": sex, "indication": "atopic-dermatitis"}))
        assert r.json() == cli("check", str(same), "--drug", "upadacitinib", "--json").json()
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"age": 40, "sex": "X"}))
    r = cli("check", str(bad), "--json")
    assert r.code == 2 and "sex" in r.err


def test_feedback_without_data_is_a_sentence(cli, tmp_path):
    env = {"JAKINIB_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}"}
    r = cli("feedback", env=env)
    assert r.code == 0, r.err
    assert r.out.startswith("No CDS Hooks feedback recorded yet") and "┏" not in r.out
    assert cli("feedback", "--json", env=env).json() == []


def test_creatinine_in_umol_per_litre_gets_a_unit_suggestion(cli, tmp_path):
    import json

    p = tmp_path / "p.json"
    p.write_text(json.dumps({"age": 50, "labs": {"creatinine": 90}}))
    r = cli("check", str(p))
    assert r.code == 2 and "µmol/L" in r.err and "1.02 mg/dL" in r.err and len(r.err.strip().splitlines()) == 1


def _commands() -> list[list[str]]:
    from jakinib.cli import app, kb_app

    return ([[c.name or c.callback.__name__] for c in app.registered_commands]
            + [["kb", c.name] for c in kb_app.registered_commands])


def test_help_shows_readable_metavars_not_python_types():
    import re

    from typer.testing import CliRunner

    from jakinib.cli import app

    runner = CliRunner()
    for args in _commands():
        out = runner.invoke(app, [*args, "--help"], prog_name="jakinib").output
        assert not re.search(r"<(bool|str|int|float|path|list\[[a-z]+\])>", out), (args, out)
        usage = next(line for line in out.splitlines() if "Usage:" in line)
        assert "{" not in usage, (args, usage)  # PATIENT, not {patient}
    check = runner.invoke(app, ["check", "--help"], prog_name="jakinib").output
    assert "Usage: jakinib check [OPTIONS] PATIENT" in check
    assert re.search(r"--drug\s+NAME\b", check) and re.search(r"--today\s+YYYY-MM-DD\b", check)
    assert re.search(r"--json\s+Print only JSON", check)  # a flag: no value shown
    simulate = runner.invoke(app, ["simulate", "--help"], prog_name="jakinib").output
    assert re.search(r"--dose\s+MG\b", simulate) and re.search(r"--every\s+HOURS\b", simulate)


def _table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]


def test_approvals_table_groups_by_drug_shows_brands_and_integer_ages(cli):
    r = cli("approvals", "--indication", "atopic-dermatitis", "--regulator", "FDA")
    assert r.code == 0, r.err
    rows = [row for row in _table_rows(r.out) if row[2] == "FDA"]  # first line of each approval
    data = cli("approvals", "--indication", "atopic-dermatitis", "--regulator", "FDA", "--json").json()
    assert len(rows) == len(data) > 3
    named = [row[0] for row in rows if row[0]]
    assert named == sorted(set(named)) == sorted({a["drug"] for a in data})  # each drug named once, where its rows start
    brands = {row[1] for row in rows}
    assert {"Rinvoq", "Cibinqo"} <= brands and not any(b.endswith(("-oral", "-topical")) for b in brands), brands
    ages = [row[6] for row in rows if row[6]]
    assert "12" in ages and not any(a.endswith(".0") for a in ages), ages


def test_drug_ic50s_print_as_integers_where_integral(cli):
    r = cli("drug", "baricitinib")
    assert r.code == 0, r.err
    ic50 = {row[0]: row[1] for row in _table_rows(r.out) if row and row[0] in ("JAK1", "JAK2", "JAK3", "TYK2")}
    assert ic50["TYK2"] == "53" and ic50["JAK1"] == "5.9", ic50
    assert cli("drug", "baricitinib", "--json").json()["targets"]  # JSON keeps the numbers as numbers
