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
