"""Every drug for every row of a cohort table, on Polars: the compiled assessment (``compile.plan``), one plan per
(regulator, indication) partition, evaluated lazily in parallel.

The verdict (status, finding ids, screening missing) depends on a row only through which candidate findings hold,
so each row packs those conditions into bits of a few ``UInt64`` words; the verdict is computed once per distinct
word tuple (a few hundred per plan, however large the cohort) and joined back. The result is exact: the words hold
every condition, nothing is hashed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from jakinib.cohort import compile as c
from jakinib.knowledge.base import KnowledgeBase

OUTPUT = ("id", "regulator", "drug", "product", "route", "status", "approved", "findings", "screening_missing",
          "dose_mg", "dose_every_h", "dose_adjusted", "dose_rule", "dose_withheld", "dose_face_mg", "dose_face_every_h")
ORDER = ("_i", "_key")
"""Helper columns of :func:`unsorted`: the patient's row in the input table, and the output order (patient, then
regulator, then drug, as names sort)."""
WORD = 64


def with_regulators(df: Any, regulators: Sequence[str]) -> Any:
    """Rows with a regulator of their own keep it; the others are screened under each of ``regulators``."""
    import polars as pl

    own = df.filter(pl.col("regulator").is_not_null())
    rest = df.filter(pl.col("regulator").is_null()).drop("regulator")
    regs = pl.DataFrame({"regulator": list(regulators)}, schema={"regulator": pl.String})
    return pl.concat([own, rest.join(regs, how="cross").select(df.columns)])


def indexed(table: Any, regulators: Sequence[str]) -> tuple[Any, list[str]]:
    """The table with ``_i`` (row number), one row per patient x regulator, and every regulator present (sorted)."""
    import polars as pl

    df = with_regulators(table.with_row_index("_i"), regulators)
    regs = sorted({*regulators, *df.filter(pl.col("regulator").is_not_null())["regulator"].unique().to_list()})
    return df, regs


def order_key(i: Any, regulator: str, drug: str, regs: Sequence[str], drugs: Sequence[str]) -> Any:
    """The sort key of an output row: patient row, then regulator, then drug (names in sorted order)."""
    import polars as pl

    names = sorted(drugs)
    return (i.cast(pl.UInt64) * (len(regs) * len(names)) + regs.index(regulator) * len(names) + names.index(drug)).alias("_key")


def assess(kb: KnowledgeBase, df: Any, drugs: Sequence[str], regulators: Sequence[str], today: dt.date | None = None) -> Any:
    """One row per patient x regulator x drug with the checker's status, finding ids, screening missing, dose and
    ``current`` (the patient is on this drug), sorted by patient, regulator and drug."""
    return unsorted(kb, df, drugs, regulators).sort("_key").drop(list(ORDER))


def unsorted(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str]) -> Any:
    """:func:`assess`'s rows in no particular order, with the :data:`ORDER` helper columns."""
    import polars as pl

    be = c.PolarsBackend(c.finding_ids(kb))
    df, regs = indexed(table, regulators)
    frames = []
    for (reg, ind), part in df.group_by(["regulator", "indication"]):
        lazy = part.lazy()
        for name in drugs:
            stage: list[dict[str, Any]] = [{}, {}, {}]
            p = c.plan(kb, kb.drugs[name], reg, ind, be, stage)
            staged = lazy
            for layer in stage:
                if layer:
                    staged = staged.with_columns(**layer)
            conds = p.conditions()
            words = [_word(pl, conds[j:j + WORD]).alias(f"_w{j // WORD}") for j in range(0, len(conds), WORD)]
            keys = [w.meta.output_name() for w in words]
            base = staged.select(pl.col("_i"), order_key(pl.col("_i"), reg, name, regs, drugs), pl.col("id"),
                                 pl.col("regulator"), pl.lit(name).alias("drug"),
                                 (pl.col("jak") == pl.lit(name)).fill_null(False).alias("current"), *words,
                                 *[e.alias(k) for k, e in p.columns.items()])
            bits = [(pl.col(f"_w{j // WORD}") & pl.lit(1 << (j % WORD), dtype=pl.UInt64)) != 0 for j in range(len(conds))]
            verdict = base.select(keys).unique().with_columns(**p.verdict(be, bits))
            frames.append(base.join(verdict, on=keys, how="left"))
    schema = {**dict.fromkeys(ORDER, pl.UInt64), **empty(be).schema}
    schema["_i"] = pl.UInt32
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat([f.select(list(schema)).cast(schema) for f in pl.collect_all(frames)], how="vertical_relaxed")


def _word(pl: Any, conds: Sequence[Any]) -> Any:
    """Up to 64 conditions packed into the bits of one UInt64 (bit k set: condition k holds; unknown is not set)."""
    return pl.sum_horizontal([pl.when(w).then(pl.lit(1 << k, dtype=pl.UInt64)).otherwise(pl.lit(0, dtype=pl.UInt64))
                              for k, w in enumerate(conds)])


def empty(be: Any) -> Any:
    import polars as pl

    schema = {"id": pl.String, "regulator": pl.String, "drug": pl.String, "product": pl.String, "route": pl.String,
              "status": pl.String, "approved": pl.Boolean, "findings": pl.List(be.ids), "screening_missing": pl.List(pl.String),
              "dose_mg": pl.Float64, "dose_every_h": pl.Float64, "dose_adjusted": pl.Boolean, "dose_rule": pl.String,
              "dose_withheld": pl.Boolean, "dose_face_mg": pl.Float64, "dose_face_every_h": pl.Float64,
              "current": pl.Boolean}
    return pl.DataFrame(schema=schema)
