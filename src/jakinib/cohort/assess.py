"""Every drug for every row of a cohort table, on Polars: the compiled assessment, one plan per
(regulator, indication) partition, evaluated lazily in parallel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from jakinib.cohort import compile as c
from jakinib.knowledge.base import KnowledgeBase

OUTPUT = ("id", "regulator", "drug", "product", "route", "status", "approved", "findings", "screening_missing",
          "dose_mg", "dose_every_h", "dose_adjusted", "dose_rule")


def with_regulators(df: Any, regulators: Sequence[str]) -> Any:
    """Rows with a regulator of their own keep it; the others are screened under each of ``regulators``."""
    import polars as pl

    own = df.filter(pl.col("regulator").is_not_null())
    rest = df.filter(pl.col("regulator").is_null()).drop("regulator")
    regs = pl.DataFrame({"regulator": list(regulators)}, schema={"regulator": pl.String})
    return pl.concat([own, rest.join(regs, how="cross").select(df.columns)])


def assess(kb: KnowledgeBase, df: Any, drugs: Sequence[str], regulators: Sequence[str], keep: Sequence[str] = (),
           today: dt.date | None = None) -> Any:
    """One row per patient x regulator x drug with the checker's status, finding ids, screening missing and dose.

    Plans the compiler covers (``compile.covers``) run as column expressions; the others (renal surrogate reading,
    age/weight-banded doses) are assessed by ``safety/engine.py`` itself, row by row.
    """
    import polars as pl

    be = c.PolarsBackend(c.finding_ids(kb))
    df = with_regulators(df, regulators)
    frames = []
    for (reg, ind), part in df.group_by(["regulator", "indication"]):
        lazy = part.lazy()
        for name in drugs:
            if not c.covers(kb, kb.drugs[name], reg, ind):
                frames.append(engine_rows(kb, part, name, reg, ind, keep, today or dt.date.today(), be).lazy())
                continue
            stage: dict[str, Any] = {}
            exprs = c.assessment(kb, kb.drugs[name], reg, ind, be, stage)
            frames.append(lazy.with_columns(**stage).select(pl.col("id"), pl.col("regulator"), pl.lit(name).alias("drug"),
                                      *[e.alias(k) for k, e in exprs.items()], *[pl.col(k) for k in keep]))
    if not frames:
        return empty(be, keep, df)
    schema = empty(be, keep, df).schema
    out = pl.concat([f.select(list(schema)).cast(dict(schema)) for f in pl.collect_all(frames)], how="vertical_relaxed")
    return out.sort(["id", "regulator", "drug"])


def empty(be: Any, keep: Sequence[str], df: Any) -> Any:
    import polars as pl

    schema = {"id": pl.String, "regulator": pl.String, "drug": pl.String, "product": pl.String, "route": pl.String,
              "status": pl.String, "approved": pl.Boolean, "findings": pl.List(be.ids), "screening_missing": pl.List(pl.String),
              "dose_mg": pl.Float64, "dose_every_h": pl.Float64, "dose_adjusted": pl.Boolean, "dose_rule": pl.String}
    schema.update({k: df.schema[k] for k in keep})
    return pl.DataFrame(schema=schema)


def engine_rows(kb: KnowledgeBase, part: Any, drug: str, regulator: str, indication: str | None, keep: Sequence[str],
                today: dt.date, be: Any) -> Any:
    """The engine's own assessment for each row of a partition (plans the compiler does not cover)."""
    import polars as pl

    from jakinib.cohort.flatten import patient_from_row
    from jakinib.safety import engine

    d = kb.drugs[drug]
    messages: dict[str, str] = {}
    out = []
    for row in part.iter_rows(named=True):
        a = engine.assess(kb, patient_from_row(row), d, regulator, indication, today)
        if not messages:
            messages = {r.message: r.id for r in kb.rules_for(a.product, regulator)}
        dose = a.dose
        out.append({"id": row["id"], "regulator": regulator, "drug": drug, "product": a.product, "route": a.route,
                    "status": a.status, "approved": a.approved, "findings": [x.rule for x in a.findings],
                    "screening_missing": list(a.screening_missing),
                    "dose_mg": dose.mg if dose else None, "dose_every_h": dose.every_h if dose else None,
                    "dose_adjusted": dose.adjusted if dose else None,
                    "dose_rule": messages.get(dose.reason or "") if dose and dose.adjusted else None,
                    **{k: row[k] for k in keep}})
    schema = empty(be, keep, part).schema
    return pl.DataFrame(out, schema={**schema, "findings": pl.List(pl.String)}).with_columns(pl.col("findings").cast(schema["findings"]))
