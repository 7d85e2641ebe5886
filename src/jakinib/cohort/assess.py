"""Every drug for every row of a cohort table, on Polars: the compiled assessment, one plan per
(regulator, indication) partition, evaluated lazily in parallel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from jakinib.cohort import compile as c
from jakinib.knowledge.base import KnowledgeBase

OUTPUT = ("id", "regulator", "drug", "product", "route", "status", "approved", "findings", "screening_missing",
          "dose_mg", "dose_every_h", "dose_adjusted", "dose_rule", "dose_withheld", "dose_face_mg", "dose_face_every_h")


def with_regulators(df: Any, regulators: Sequence[str]) -> Any:
    """Rows with a regulator of their own keep it; the others are screened under each of ``regulators``."""
    import polars as pl

    own = df.filter(pl.col("regulator").is_not_null())
    rest = df.filter(pl.col("regulator").is_null()).drop("regulator")
    regs = pl.DataFrame({"regulator": list(regulators)}, schema={"regulator": pl.String})
    return pl.concat([own, rest.join(regs, how="cross").select(df.columns)])


def assess(kb: KnowledgeBase, df: Any, drugs: Sequence[str], regulators: Sequence[str], keep: Sequence[str] = (),
           today: dt.date | None = None) -> Any:
    """One row per patient x regulator x drug with the checker's status, finding ids, screening missing and dose,
    every plan compiled to column expressions (``compile.assessment``)."""
    import polars as pl

    be = c.PolarsBackend(c.finding_ids(kb))
    df = with_regulators(df, regulators)
    frames = []
    for (reg, ind), part in df.group_by(["regulator", "indication"]):
        lazy = part.lazy()
        for name in drugs:
            stage: list[dict[str, Any]] = [{}, {}, {}]
            exprs = c.assessment(kb, kb.drugs[name], reg, ind, be, stage)
            staged = lazy
            for layer in stage:
                if layer:
                    staged = staged.with_columns(**layer)
            frames.append(staged.select(pl.col("id"), pl.col("regulator"), pl.lit(name).alias("drug"),
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
              "dose_mg": pl.Float64, "dose_every_h": pl.Float64, "dose_adjusted": pl.Boolean, "dose_rule": pl.String,
              "dose_withheld": pl.Boolean, "dose_face_mg": pl.Float64, "dose_face_every_h": pl.Float64}
    schema.update({k: df.schema[k] for k in keep})
    return pl.DataFrame(schema=schema)
