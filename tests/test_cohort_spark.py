"""The Spark engine (local mode, small cohorts): every rule agrees with predicates.py, and Spark's screen agrees with
Polars' screen and with `check`. Skipped with a message when pyspark or Java is missing."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jakinib.cohort import compile as c
from jakinib.cohort import generate as gen
from jakinib.cohort import read, screen
from jakinib.cohort import spark as spark_engine
from jakinib.safety.patient import parse_patient
from test_cohort import REGS, TODAY, battery, expected, facts_frame, flat_row, got, simple_patients  # noqa: F401

pytestmark = pytest.mark.skipif(spark_engine.available() is not None, reason=f"Spark tests skipped: {spark_engine.available()}")


@pytest.fixture(scope="module")
def spark():
    session = spark_engine.session()
    session.sparkContext.setLogLevel("ERROR")
    return session


def test_every_rule_agrees_on_spark(spark, battery):  # noqa: F811
    be = c.SparkBackend()
    frames = [facts_frame(samples).with_columns(pl.lit(i).alias("_rule")) for i, (_, samples, _) in enumerate(battery)]
    sdf = spark.createDataFrame(pl.concat(frames).to_arrow())
    exprs = [c.predicate(rule.when, be).alias(f"v{i}") for i, (rule, _, _) in enumerate(battery)]
    rows = pl.from_arrow(sdf.select(be.col("_rule").alias("_rule"), *exprs).toArrow())
    offset = 0
    for i, (rule, samples, want) in enumerate(battery):
        answers = rows[offset: offset + len(samples)]
        assert answers["_rule"].unique().to_list() == [i]
        assert answers[f"v{i}"].to_list() == want, rule.id
        offset += len(samples)


def test_spark_screen_equals_polars_screen(kb, spark, tmp_path):
    ps = gen.patients(60, 5, TODAY, kb)
    path = gen.write_flat(ps, tmp_path / "c.parquet")
    table = read.read(path, kb, TODAY, read.Problems())
    polars_rows = screen.run(kb, table, list(kb.drugs), REGS, TODAY)
    spark_rows = screen.run(kb, table, list(kb.drugs), REGS, TODAY, engine="spark")
    assert polars_rows.height == 60 * len(kb.drugs) * len(REGS)
    assert spark_rows.equals(polars_rows)


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_spark_screen_agrees_with_check_for_random_patients(kb, spark, tmp_path, data):
    patients = data.draw(st.lists(simple_patients(kb), min_size=5, max_size=15))
    for i, p in enumerate(patients):
        p["id"] = f"s{i:03d}"
        p["indication"] = data.draw(st.sampled_from([None, "atopic-dermatitis", "rheumatoid-arthritis"]))  # few Spark plans
        if p["indication"] is None:
            del p["indication"]
    rows = [flat_row(p) for p in patients]
    columns = sorted({k for r in rows for k in r})
    path = tmp_path / "random.csv"
    pl.DataFrame({k: [None if r.get(k) is None else str(r[k]) for r in rows] for k in columns}, schema=dict.fromkeys(columns, pl.String)) \
        .with_columns(pl.col(k).fill_null("") for k in ("conditions", "medications")).write_csv(path)
    regulator = data.draw(st.sampled_from(["FDA", "EMA"]))
    result = screen.screen(path, kb, regulators=[regulator], today=TODAY, engine="spark").rows
    for p in patients:
        simple = {k: v for k, v in p.items() if k != "id"}
        assert got(result, p["id"], regulator) == expected(kb, parse_patient(simple, kb), regulator), p


def test_spark_engine_from_the_cli(cli, kb, tmp_path):
    path = gen.write_flat(gen.patients(10, 9, TODAY, kb), tmp_path / "c.csv")
    r = cli("screen", str(path), "--engine", "spark", "--drug", "upadacitinib", "--today", dt.date(2026, 12, 1).isoformat(), "--json")
    assert r.code == 0, r.err
    assert r.json()["patients"] == 10 and r.json()["rows"] == 10
