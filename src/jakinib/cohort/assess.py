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
    schema = {"_i": df.schema["_i"], "_key": pl.UInt64, **empty(kb, be).schema}
    frames = []
    for (reg, ind), part in df.group_by(["regulator", "indication"]):
        be.leaves = {}
        plans = []
        for name in drugs:
            stage: list[dict[str, Any]] = [{}, {}, {}]
            plans.append((name, c.plan(kb, kb.drugs[name], reg, ind, be, stage), stage))
        lazy = part.with_columns(**dict(be.leaves.values())).lazy()  # every predicate leaf once, for all the drugs
        be.leaves = None
        for name, p, stage in plans:
            staged = lazy
            for layer in stage:
                if layer:
                    staged = staged.with_columns(**layer)
            conds = p.conditions
            words = [_word(pl, conds[j:j + WORD]).alias(f"_w{j // WORD}") for j in range(0, len(conds), WORD)]
            keys = [f"_w{j // WORD}" for j in range(0, len(conds), WORD)]
            base = staged.select(pl.col("_i"), order_key(pl.col("_i"), reg, name, regs, drugs), pl.col("id"),
                                 (pl.col("jak") == pl.lit(name)).fill_null(False).alias("current"), *words)
            bits = [(pl.col(f"_w{j // WORD}") & pl.lit(1 << (j % WORD), dtype=pl.UInt64)) != 0 for j in range(len(conds))]
            rest = {k: e for k, e in p.build(be, bits).items() if k not in VERDICT}
            verdict = (base.select(keys).unique()
                       .map_batches(lambda d, p=p, keys=keys: _verdict(d, p, keys, schema), schema={
                           **dict.fromkeys(keys, pl.UInt64), **{k: schema[k] for k in VERDICT}})
                       .with_columns(pl.lit(reg).alias("regulator"), pl.lit(name).alias("drug"), **rest)
                       .with_columns(pl.col(k).cast(t) for k, t in schema.items() if k in OUTPUT and k != "id"))
            frames.append(base.join(verdict, on=keys, how="left").select(list(schema)))
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(pl.collect_all(frames), how="vertical_relaxed")


VERDICT = ("status", "findings", "screening_missing")


def _verdict(words: Any, p: c.Plan, keys: Sequence[str], schema: dict[str, Any]) -> Any:
    """Status, finding ids and screening missing for each distinct word tuple, with numpy: finding j of the plan is
    on a row when the bit of its condition is set; the findings keep the plan's (the engine's) order, and the status is
    the worst severity among them (else ok). ``compile.Plan.build`` says the same as column expressions."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    from jakinib.knowledge.schema import STATUS_ORDER

    w = np.stack([words[k].to_numpy() for k in keys], axis=1) if len(words) else np.zeros((0, len(keys)), dtype=np.uint64)

    def holds(indices: Sequence[int]) -> Any:
        idx = np.asarray(indices, dtype=np.int64)
        if not len(idx):
            return np.zeros((len(w), 0), dtype=bool)
        return ((w[:, idx // WORD] >> (idx % WORD).astype(np.uint64)) & np.uint64(1)).astype(bool)

    def lists(matrix: Any, names: Sequence[str], dtype: Any) -> Any:
        _, cols = np.nonzero(matrix)
        offsets = np.concatenate([[0], np.cumsum(matrix.sum(axis=1))]).astype(np.int32)
        values = pa.array(np.asarray(names, dtype=object)[cols] if len(cols) else [], type=pa.string())
        return pl.Series(pa.ListArray.from_arrays(pa.array(offsets), values)).cast(dtype)

    found = holds([x.when for x in p.candidates])
    severity = np.asarray([STATUS_ORDER.index(x.severity) for x in p.candidates] or [0], dtype=np.int64)
    worst = np.where(found, severity[: found.shape[1]], len(STATUS_ORDER) - 1).min(axis=1, initial=len(STATUS_ORDER) - 1)
    return words.with_columns(
        pl.Series("status", np.asarray(STATUS_ORDER, dtype=object)[worst], dtype=pl.String).cast(schema["status"]),
        lists(found, [x.rule for x in p.candidates], schema["findings"]).alias("findings"),
        lists(holds([k for _, k in p.missing]), [t for t, _ in p.missing], schema["screening_missing"]).alias("screening_missing"))


def _word(pl: Any, conds: Sequence[Any]) -> Any:
    """Up to 64 conditions packed into the bits of one UInt64 (bit k set: condition k holds)."""
    return pl.sum_horizontal([pl.when(w).then(pl.lit(1 << k, dtype=pl.UInt64)).otherwise(pl.lit(0, dtype=pl.UInt64))
                              for k, w in enumerate(conds)])


def empty(kb: KnowledgeBase, be: Any) -> Any:
    """The output schema; names from closed vocabularies are Enums (small, fast to sort and group)."""
    import typing

    import polars as pl

    from jakinib.knowledge import schema as s

    products = sorted({p.id for d in kb.drugs.values() for p in d.products})
    routes = sorted({p.route for d in kb.drugs.values() for p in d.products})
    tests = sorted({i.test for d in kb.drugs.values() for lab in d.labels for i in lab.screening})
    schema = {"id": pl.String, "regulator": pl.Enum(sorted(typing.get_args(s.Regulator))), "drug": pl.Enum(sorted(kb.drugs)),
              "product": pl.Enum(products), "route": pl.Enum(routes), "status": pl.Enum(sorted(s.STATUS_ORDER)),
              "approved": pl.Boolean, "findings": pl.List(be.ids), "screening_missing": pl.List(pl.Enum(tests)),
              "dose_mg": pl.Float64, "dose_every_h": pl.Float64, "dose_adjusted": pl.Boolean,
              "dose_rule": pl.Enum(sorted({r.id for r in kb.rules})), "dose_withheld": pl.Boolean, "dose_face_mg": pl.Float64,
              "dose_face_every_h": pl.Float64, "current": pl.Boolean}
    return pl.DataFrame(schema=schema)
