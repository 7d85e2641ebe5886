"""Cohort screening (Polars): the three input forms agree, `screen` agrees with `check`, every rule agrees across
evaluators, care gaps over time, bad input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jakinib.cohort import compile as c
from jakinib.cohort import generate as gen
from jakinib.cohort import screen
from jakinib.interop import fhir
from jakinib.knowledge import fields as f
from jakinib.safety import engine
from jakinib.safety.patient import parse_patient
from jakinib.safety.predicates import Censored, evaluate

TODAY = dt.date(2026, 12, 1)
REGS = ["FDA", "EMA"]


def expected(kb, patient, regulator, indication=None):
    """The checker's answers per drug: status, finding ids, dose, screening missing, product, approved."""
    rep = engine.check(kb, patient, None, regulator, indication, TODAY)
    return {a.drug: (a.status, [x.rule for x in a.findings], a.dose and (a.dose.mg, a.dose.every_h, a.dose.adjusted, a.dose.withheld,
                                                                        _face(a.dose)),
                     a.screening_missing, a.product) for a in rep.assessments}


def _face(dose):
    """The face-value dose beside the conservative one (a surrogate near a renal cut-off), None when there is none."""
    face = dose.candidates[1] if dose.candidates and len(dose.candidates) > 1 else None
    return (face.mg, face.every_h) if face is not None and (face.mg, face.every_h) != (None, None) else None


def got(rows, pid, regulator):
    out = {}
    for r in rows.filter((pl.col("id") == pid) & (pl.col("regulator") == regulator)).iter_rows(named=True):
        face = None if (r["dose_face_mg"], r["dose_face_every_h"]) == (None, None) else (r["dose_face_mg"], r["dose_face_every_h"])
        dose = None if r["dose_adjusted"] is None else (r["dose_mg"], r["dose_every_h"], r["dose_adjusted"], r["dose_withheld"], face)
        out[r["drug"]] = (r["status"], list(r["findings"]), dose, list(r["screening_missing"]), r["product"])
    return out


@pytest.fixture(scope="module")
def cohort(kb, tmp_path_factory):
    d = tmp_path_factory.mktemp("cohort")
    ps = gen.patients(150, 3, TODAY, kb)
    gen.write_bundles(ps, d / "bundles.ndjson.gz", kb, TODAY)
    gen.write_bulk(ps, d / "bulk", kb, TODAY)
    gen.write_flat(ps, d / "flat.csv")
    gen.write_flat(ps, d / "flat.parquet")
    return d, ps


def test_three_input_forms_give_identical_results(kb, cohort):
    d, ps = cohort
    results = {name: screen.screen(d / name, kb, regulators=REGS, today=TODAY).rows
               for name in ("bundles.ndjson.gz", "bulk", "flat.csv", "flat.parquet")}
    base = results.pop("bundles.ndjson.gz")
    assert base.height == len(ps) * len(kb.drugs) * len(REGS)
    assert base["current"].sum() > 50 and base.filter(pl.col("gaps").list.len() > 0).height > 50
    for name, rows in results.items():
        assert rows.equals(base), name


def test_bundle_cohort_agrees_with_check(kb, cohort):
    d, ps = cohort
    rows = screen.screen(d / "bundles.ndjson.gz", kb, regulators=REGS, today=TODAY).rows
    for p in ps[:60]:
        patient = fhir.patient_from_bundle(gen.bundle(p, kb, TODAY), kb, TODAY)
        for reg in REGS:
            assert got(rows, p["id"], reg) == expected(kb, patient, reg), p["id"]


# ---- screen vs check for random simple patients (the flat table path) --------------------------------

LAB_VALUES = {"anc": [0.4, 0.5, 0.9, 1.0, 1.2, 2.5], "alc": [0.2, 0.5, 0.8, 1.5], "hb": [7.5, 8.0, 9.0, 11.0, 14.0],
              "platelets": [40, 50, 75, 100, 150, 250], "egfr": [10, 15, 29, 30, 45, 60, 90], "crcl": [10, 30, 50, 60, 90],
              "creatinine": [0.6, 1.0, 2.5], "alt": [20, 200], "ast": [20, 200]}


@st.composite
def simple_patients(draw, kb):
    p: dict = {}
    if draw(st.booleans()):
        p["age"] = draw(st.sampled_from([2, 11, 12, 17, 18, 40, 64, 65, 66, 80]))
    if draw(st.booleans()):
        p["sex"] = draw(st.sampled_from(["female", "male"]))
    if draw(st.booleans()):
        p["weight_kg"] = draw(st.sampled_from([30.0, 40.0, 70.0, 110.0]))
    if draw(st.booleans()):
        p["height_cm"] = draw(st.sampled_from([120.0, 160.0, 190.0]))  # body size de-indexes eGFR
    for key in f.BOOLEAN:
        if draw(st.booleans()):
            p[key] = draw(st.booleans())
    if draw(st.booleans()):
        p["smoking"] = draw(st.sampled_from(f.CHOICE["smoking"]))
    if draw(st.booleans()):
        p["indication"] = draw(st.sampled_from(sorted(kb.indications)))
    p["conditions"] = draw(st.lists(st.sampled_from(sorted(kb.conditions)), max_size=4, unique=True))
    p["history"] = draw(st.lists(st.sampled_from(sorted(kb.conditions)), max_size=2, unique=True))  # past conditions
    p["allergies"] = draw(st.lists(st.sampled_from(sorted(kb.drugs)), max_size=1))  # JAK inhibitors, by name
    meds = sorted(kb.medications)
    p["medications"] = draw(st.lists(st.sampled_from([*meds, "herbal tea blend", "moon dust"]), max_size=4, unique=True))
    labs = draw(st.lists(st.sampled_from(sorted(LAB_VALUES)), max_size=6, unique=True))
    p["labs"] = {lab: draw(st.sampled_from(LAB_VALUES[lab])) for lab in labs}
    p["metabolizer"] = {e: draw(st.sampled_from(f.METABOLIZER)) for e in f.ENZYMES if draw(st.booleans())}
    p["vaccines_planned"] = draw(st.lists(st.just("live"), max_size=1))
    p["screening"] = {t: draw(st.sampled_from(f.SCREENING_RESULTS)) for t in f.SCREENING_TESTS if draw(st.booleans())}
    return p


def flat_row(p: dict) -> dict:
    row = {"id": p["id"], "age": p.get("age"), "sex": p.get("sex"), "weight_kg": p.get("weight_kg"), "height_cm": p.get("height_cm"),
           "smoking": p.get("smoking"), "indication": p.get("indication"),
           "conditions": ";".join(p["conditions"]), "medications": ";".join(p["medications"]),
           "history": ";".join(p.get("history", [])), "allergies": ";".join(p.get("allergies", [])),
           "vaccines_planned": ";".join(p["vaccines_planned"])}
    for key in f.BOOLEAN:
        row[key] = None if p.get(key) is None else str(p[key]).lower()
    for lab, v in p["labs"].items():
        row[f"labs.{lab}"] = v
    for e, v in p["metabolizer"].items():
        row[f"metabolizer.{e}"] = v
    for t, v in p["screening"].items():
        row[f"screening.{t}"] = v
    return row


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_screen_agrees_with_check_for_random_patients(kb, tmp_path, data):
    patients = data.draw(st.lists(simple_patients(kb), min_size=1, max_size=12))
    for i, p in enumerate(patients):
        p["id"] = f"r{i:03d}"
    rows = [flat_row(p) for p in patients]
    columns = sorted({k for r in rows for k in r})
    path = tmp_path / "random.csv"
    pl.DataFrame({k: [None if r.get(k) is None else str(r[k]) for r in rows] for k in columns}, schema=dict.fromkeys(columns, pl.String)) \
        .with_columns(pl.col(k).fill_null("") for k in ("conditions", "medications")).write_csv(path)
    regulator = data.draw(st.sampled_from(["FDA", "EMA", "TGA", "MHRA", "PMDA"]))
    result = screen.screen(path, kb, regulators=[regulator], today=TODAY).rows
    for p in patients:
        simple = {k: v for k, v in p.items() if k != "id"}
        assert got(result, p["id"], regulator) == expected(kb, parse_patient(simple, kb), regulator), p


def renal_grid(kb, n: int, seed: int) -> list[dict]:
    """Patients around the renal cut-offs and the dose bands: CrCl / eGFR / creatinine alone or together, with and
    without body size, children and adults, the indications with banded or renal-adjusted doses."""
    rng = random.Random(seed)
    inds = ["atopic-dermatitis", "rheumatoid-arthritis", "juvenile-idiopathic-arthritis", "psoriatic-arthritis", "covid-19",
            "alopecia-areata", "myelofibrosis", "polycythaemia-vera", "graft-versus-host-disease", None]
    out = []
    for i in range(n):
        p = {"id": f"g{i:04d}", "conditions": rng.sample(["end-stage-renal-disease", "moderate-hepatic-impairment"], rng.randint(0, 1)),
             "medications": rng.sample(["ketoconazole", "fluconazole", "probenecid"], rng.randint(0, 1)), "vaccines_planned": [],
             "labs": {}, "metabolizer": {}, "screening": {}}
        for key, values, chance in (("age", [2, 10, 12, 17, 18, 30, 65, 80], .9), ("sex", ["female", "male"], .9),
                                    ("weight_kg", [10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 60.0, 90.0, 130.0], .8),
                                    ("height_cm", [120.0, 150.0, 170.0, 195.0], .5), ("indication", inds, 1)):
            if rng.random() < chance and (v := rng.choice(values)) is not None:
                p[key] = v
        for lab, values in {"egfr": [10, 15, 20, 29, 30, 40, 45, 59, 60, 85], "crcl": [10, 15, 29, 30, 40, 50, 51, 60, 75],
                            "creatinine": [0.5, 1.0, 1.8, 4.0], "platelets": [40, 60, 100, 150, 200]}.items():
            if rng.random() < .4:
                p["labs"][lab] = rng.choice(values)
        out.append(p)
    return out


def test_renal_readings_and_dose_bands_agree_with_check(kb, tmp_path):
    """The compiled renal reading (surrogates, de-indexed eGFR, the conservative band near a cut-off, withheld doses)
    and the age/weight dose bands give the checker's answers, on a grid that exercises each of them."""
    patients = renal_grid(kb, 160, 7)
    rows = [flat_row(p) for p in patients]
    columns = sorted({k for r in rows for k in r})
    path = tmp_path / "renal.csv"
    pl.DataFrame({k: [None if r.get(k) is None else str(r[k]) for r in rows] for k in columns}, schema=dict.fromkeys(columns, pl.String)) \
        .with_columns(pl.col(k).fill_null("") for k in ("conditions", "medications")).write_csv(path)
    seen = {"withheld": 0, "face": 0, "surrogate": 0, "band": 0}
    for regulator in ("FDA", "EMA", "PMDA", "MHRA"):
        result = screen.screen(path, kb, regulators=[regulator], today=TODAY).rows
        seen["withheld"] += result["dose_withheld"].sum()
        seen["face"] += result["dose_face_mg"].is_not_null().sum()
        seen["surrogate"] += result.filter(pl.col("findings").cast(pl.List(pl.String)).list.eval(
            pl.element().str.starts_with("renal.surrogate")).list.any()).height
        seen["band"] += result.filter((pl.col("drug") == "baricitinib") & pl.col("dose_mg").is_in([2.0, 4.0])
                                      & (pl.col("regulator") == "EMA")).height
        for p in patients:
            simple = {k: v for k, v in p.items() if k != "id"}
            assert got(result, p["id"], regulator) == expected(kb, parse_patient(simple, kb), regulator), (regulator, p)
    assert all(v > 0 for v in seen.values()), seen


# ---- the agreement battery: every rule, every evaluator ----------------------------------------------

def leaves(p):
    if p.field is not None:
        yield p
    for child in (p.all or []) + (p.any or []) + ([p.not_] if p.not_ else []):
        yield from leaves(child)


def fact_samples(rule, rng: random.Random, n: int = 24) -> list[dict]:
    """Fact maps around each leaf's threshold or value, with absent fields (unknown) among them."""
    options: dict[str, list] = {}
    for leaf in leaves(rule.when):
        kind = f.kind_of(leaf.field)
        vals = options.setdefault(leaf.field, [None])
        if kind == "list":
            vals += [(), (leaf.has,), ("other", leaf.has), ("other",)]
        elif leaf.op is not None and isinstance(leaf.value, (int, float)):
            vals += [leaf.value - 1, leaf.value - 0.01, leaf.value, leaf.value + 0.01, leaf.value + 1]
            if leaf.field.startswith("labs."):  # a lab reported as "<0.5": a bound, on either side of the threshold
                vals += [Censored(cmp, leaf.value + d) for cmp in ("<", "<=", ">", ">=") for d in (-1, 0, 1)]
        elif leaf.op is not None:
            vals += [leaf.value, "something-else"]
        elif leaf.in_ is not None:
            vals += [*leaf.in_, "something-else"]
        elif leaf.is_ is not None:
            vals += [True, False]
    out = []
    for _ in range(n):
        facts = {}
        for field, vals in options.items():
            v = rng.choice(vals)
            if v is not None:
                facts[field] = v
        out.append(facts)
    return out


def facts_frame(samples: list[dict]) -> pl.DataFrame:
    cols = {}
    for field in f.known_fields():
        kind = f.kind_of(field)
        if kind == "list":
            cols[field] = pl.Series(field, [list(s.get(field, ())) for s in samples], dtype=pl.List(pl.String))
        elif kind == "number":
            values = [s.get(field) for s in samples]
            cols[field] = pl.Series(field, [v.bound if isinstance(v, Censored) else v for v in values], dtype=pl.Float64)
            if field.startswith("labs."):
                cols[f"{field}.comparator"] = pl.Series([v.comparator if isinstance(v, Censored) else None for v in values], dtype=pl.String)
        elif kind == "bool":
            cols[field] = pl.Series(field, [s.get(field) for s in samples], dtype=pl.Boolean)
        else:
            cols[field] = pl.Series(field, [s.get(field) for s in samples], dtype=pl.String)
    return pl.DataFrame(cols)


def rule_ids(kb):
    return [r.id for r in kb.rules]


@pytest.fixture(scope="module")
def battery(kb):
    """Every rule's samples and the one-patient answers, shared by the Polars and Spark evaluators."""
    rng = random.Random(12)
    out = []
    for rule in kb.rules:
        samples = fact_samples(rule, rng)
        out.append((rule, samples, [evaluate(rule.when, s)[0] for s in samples]))
    return out


def test_every_rule_agrees_on_polars(battery):
    be = c.PolarsBackend()
    exprs, frames = [], []
    for i, (rule, samples, _) in enumerate(battery):
        frames.append(facts_frame(samples).with_columns(pl.lit(i).alias("_rule")))
        exprs.append(rule)
    assert len(battery) > 200
    for (rule, samples, want) in battery:
        answers = facts_frame(samples).select(c.predicate(rule.when, be).alias("v"))["v"].to_list()
        assert answers == want, rule.id
    assert any(None in want for _, _, want in battery) and any(True in want for _, _, want in battery)


# ---- care gaps over time ----------------------------------------------------------------------------

def test_care_gaps_name_rule_source_and_overdue_days(kb, tmp_path):
    start = TODAY - dt.timedelta(days=200)
    row = {"id": "g1", "age": "50", "sex": "female", "conditions": "", "medications": "", "indication": "rheumatoid-arthritis",
           "jak": "Rinvoq", "jak_start": start.isoformat(), "jak_dose_mg": "30", "jak_every_h": "24",
           "screening.tuberculosis": "negative", "screening.tuberculosis.date": (start + dt.timedelta(days=10)).isoformat(),
           "screening.hepatitis-b": "negative",
           "labs.anc": "3", "labs.alc": "1.5", "labs.hb": "13", "labs.platelets": "200", "labs.egfr": "90",
           "records.anc.first": (start - dt.timedelta(days=5)).isoformat(), "records.anc.last": (start - dt.timedelta(days=5)).isoformat()}
    path = tmp_path / "one.csv"
    pl.DataFrame({k: [v] for k, v in row.items()}).write_csv(path)
    result = screen.screen(path, kb, drugs=["upadacitinib", "baricitinib"], regulators=["EMA"], today=TODAY)
    upa = result.rows.filter(pl.col("drug") == "upadacitinib").row(0, named=True)
    bari = result.rows.filter(pl.col("drug") == "baricitinib").row(0, named=True)
    assert upa["current"] and not bari["current"] and bari["gaps"] == []
    gaps = {g["gap"]: g for g in upa["gap_details"]}
    assert gaps["screening.tuberculosis.after-start"]["overdue_days"] == 10
    assert "screening.hepatitis-b.undated" in gaps
    assert gaps["screening.hepatitis-c.missing"]["overdue_days"] == 200
    label = {m.test: m for m in kb.label("upadacitinib-oral", "EMA").monitoring}
    assert label["neutrophils"].at_weeks == [0, 12]
    # neutrophils: baseline record before the start, nothing since: the week-12 check is overdue from its due date
    assert gaps["monitoring.neutrophils.overdue"]["due"] == start + dt.timedelta(days=84)
    assert gaps["monitoring.neutrophils.overdue"]["overdue_days"] == 200 - 84
    assert gaps["monitoring.neutrophils.overdue"]["sources"] == ";".join(label["neutrophils"].sources)
    # lymphocytes: no record at all: overdue since the baseline
    assert gaps["monitoring.lymphocytes.overdue"]["due"] == start and gaps["monitoring.lymphocytes.overdue"]["overdue_days"] == 200
    assert "monitoring.lipids.unreadable" in gaps  # jakinib has no lipid codes: listed, never assumed done
    assert upa["current_dose_mg"] == 30 and upa["dose_mg"] == 15 and "dose.above-label" in gaps
    assert result.summary["gaps"]["dose.above-label"] == 1
    assert result.summary["most_at_risk"][0]["id"] == "g1"


# ---- the command line and bad input -------------------------------------------------------------------

def test_cli_json_prints_the_summary_only_and_writes_outputs(cli, cohort, tmp_path):
    d, ps = cohort
    r = cli("screen", str(d / "flat.parquet"), "--regulator", "EMA", "--today", TODAY.isoformat(), "--json",
            "--out", str(tmp_path / "rows.csv"), "--report", str(tmp_path / "r.html"))
    assert r.code == 0, r.err
    s = r.json()
    assert s["patients"] == len(ps) and s["regulators"] == ["EMA"] and s["rows"] == len(ps) * len(s["drugs"])
    assert s["most_at_risk"] and s["gaps"]
    out = pl.read_csv(tmp_path / "rows.csv")
    assert out.height == s["rows"] and {"status", "findings", "gaps", "dose_mg", "current_dose_mg", "regulator"} <= set(out.columns)
    assert "<svg" in (tmp_path / "r.html").read_text()
    assert "rows/s" in r.err


def _bad(cli, path, *extra):
    r = cli("screen", str(path), "--today", TODAY.isoformat(), "--drug", "abrocitinib", *extra)
    return r


def test_truncated_ndjson_line_names_file_and_line(kb, cli, tmp_path):
    ps = gen.patients(5, 1, TODAY, kb)
    path = gen.write_bundles(ps, tmp_path / "c.ndjson", kb, TODAY)
    lines = path.read_bytes().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    path.write_bytes(b"\n".join(lines) + b"\n")
    r = _bad(cli, path)
    assert r.code == 2 and r.err.strip().splitlines()[-1].startswith(f"error: {path}:3: malformed JSON (truncated line")
    r = _bad(cli, path, "--on-error", "skip", "--json")
    assert r.code == 0 and r.json()["patients"] == 4
    assert r.json()["input_problems"]["skipped"] == 1 and f"{path}:3" in r.json()["input_problems"]["first"][0]
    assert "skipped 1 bad record" in r.err


def test_bulk_unknown_type_and_absent_patient(kb, cli, tmp_path):
    ps = gen.patients(6, 2, TODAY, kb)
    bulk = gen.write_bulk(ps, tmp_path / "bulk", kb, TODAY)
    with gzip.open(bulk / "Observation.1.ndjson.gz", "ab") as fh:
        fh.write(json.dumps({"resourceType": "Banana", "id": "x"}).encode() + b"\n")
    r = _bad(cli, bulk)
    assert r.code == 2 and "Observation.1.ndjson.gz:" in r.err and "unknown resource type 'Banana'" in r.err
    assert len(r.err.strip().splitlines()) == 1
    (bulk / "Observation.1.ndjson.gz").unlink()
    with open(bulk / "Condition.9.ndjson", "w") as fh:
        fh.write(json.dumps({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/ghost"},
                             "code": {"text": "asthma"}}) + "\n")
    r = _bad(cli, bulk)
    assert r.code == 2 and f"{bulk / 'Condition.9.ndjson'}:1: references Patient/ghost, which is not in the export" in r.err
    r = _bad(cli, bulk, "--on-error", "skip", "--json")
    assert r.code == 0 and r.json()["patients"] == 6 and r.json()["input_problems"]["skipped"] == 1


def test_csv_missing_column_and_bad_value(cli, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,age,sex,medications\np1,40,female,\n")
    r = _bad(cli, path)
    assert r.code == 2 and f"{path}:1: missing column 'conditions'" in r.err
    path.write_text("id,age,sex,conditions,medications,labs.hb\np1,40,female,,,13\np2,40,female,,,130\np3,x,male,,,\n")
    r = _bad(cli, path)
    assert r.code == 2 and f"{path}:3: labs.hb: implausible" in r.err and "[g/dL]" in r.err
    r = _bad(cli, path, "--on-error", "skip", "--json")
    assert r.code == 0 and r.json()["patients"] == 1 and r.json()["input_problems"]["skipped"] == 2
    path.write_text("id,age,sex,conditions,medications,labs.hb [g/L]\np1,40,female,MI,,130\n")
    r = cli("screen", str(path), "--drug", "abrocitinib", "--json")
    assert r.code == 0 and r.json()["patients"] == 1
