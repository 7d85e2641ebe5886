"""Every drug for every row of a cohort table: the compiled assessment (``compile.plan``), one plan per
(regulator, indication) partition and drug.

The whole output (status, finding ids, screening missing, approval, dose, whether the patient is on the drug) depends
on a row only through which of the plan's conditions hold, so each row packs those conditions into bits of a few
``UInt64`` words (``compile.PolarsBackend.words``). The output is built once per distinct word tuple (a few hundred per plan, however
large the cohort; :func:`finish`), and each output row keeps only the number of its tuple's row (``Evaluated.gid``):
the long table of patient x regulator x drug rows is made once, in its final order, by one gather. The result is
exact: the words hold every condition, nothing is hashed.

The words are engine-neutral: Polars computes them here (:func:`evaluate`), Spark in ``spark.py``; :func:`finish`
turns either into the same :class:`Evaluated`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jakinib.cohort import compile as c
from jakinib.knowledge.base import KnowledgeBase

OUTPUT = ("id", "regulator", "drug", "product", "route", "status", "approved", "findings", "screening_missing",
          "dose_mg", "dose_every_h", "dose_adjusted", "dose_rule", "dose_withheld", "dose_face_mg", "dose_face_every_h",
          "current")
VERDICT = ("status", "findings", "screening_missing")
WORD = c.WORD


@dataclass
class Job:
    """One plan to evaluate: the drug under a regulator for the rows of one indication (``conditions`` plus the
    patient-is-on-this-drug bit last)."""

    regulator: str
    drug: str
    plan: c.Plan

    @property
    def bits(self) -> int:
        return len(self.plan.conditions) + 1

    @property
    def keys(self) -> list[str]:
        return [f"_w{j}" for j in range((self.bits + WORD - 1) // WORD)]


@dataclass
class Evaluated:
    """The assessment before care gaps: one row per distinct (plan, condition tuple) in ``verdicts`` (every output
    column but ``id``), and per output row (patient, then regulator, then drug, as names sort) the number of its
    verdict row (``gid``) and of its patient's row in the input table (``row``)."""

    verdicts: Any  # polars.DataFrame
    gid: Any  # numpy uint32 array
    row: Any  # numpy int64 array

    def rows(self, table: Any) -> Any:
        """The output rows (:data:`OUTPUT`), gathered once in their final order."""
        import polars as pl

        ids = table["id"].gather(self.row)
        return self.verdicts.select(OUTPUT[1:])[pl.Series(self.gid)].insert_column(0, ids)


def layout(table: Any, regulators: Sequence[str], drugs: Sequence[str]) -> tuple[Any, Any]:
    """The table with ``_i`` (row number) and ``_p0`` (its first output row under a regulator), one row per patient x
    regulator (rows with a regulator of their own keep it, the others are screened under each of ``regulators``), and
    per output row the input row it belongs to. Output row ``_p0 + k`` holds the k-th drug (names sorted)."""
    import numpy as np
    import polars as pl

    regs = sorted(regulators)
    n = len(drugs)
    own = table["regulator"].is_not_null().to_numpy()
    if not own.any() and len(regs) == 1:  # the common case: one regulator for all, no copy of the table
        df = table.with_columns(pl.lit(regs[0], dtype=pl.String).alias("regulator")).with_row_index("_i").with_columns(
            (pl.col("_i").cast(pl.Int64) * n).alias("_p0"))
        return df, np.repeat(np.arange(table.height, dtype=np.int64), n)
    df = table.with_row_index("_i")
    per = np.where(own, 1, len(regs)).astype(np.int64)
    start = (np.cumsum(per) - per) * n
    df = df.with_columns(pl.Series("_p0", start))
    rest = df.filter(pl.col("regulator").is_null()).drop("regulator").join(
        pl.DataFrame({"regulator": regs, "_r": [k * n for k in range(len(regs))]},
                     schema={"regulator": pl.String, "_r": pl.Int64}), how="cross")
    rest = rest.with_columns(pl.col("_p0") + pl.col("_r")).select(df.columns)
    df = pl.concat([df.filter(pl.col("regulator").is_not_null()), rest])
    return df, np.repeat(np.arange(table.height, dtype=np.int64), per * n)


def bounded(table: Any) -> set[str]:
    """The comparator columns that hold a bound in ``table`` (a lab reported as "<0.5")."""
    return {name for name in table.columns if name.endswith(".comparator") and table[name].null_count() < table.height}


def evaluate(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str]) -> Evaluated:
    """The compiled assessment of every drug for every row, on Polars."""
    import polars as pl

    be = c.PolarsBackend(c.finding_ids(kb))
    be.bounded = bounded(table)
    df, row = layout(table, regulators, drugs)
    rank = {d: k for k, d in enumerate(sorted(drugs))}
    jobs, frames = [], []
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
            current = (pl.col("jak") == pl.lit(name)).fill_null(False)
            frames.append(staged.select((pl.col("_p0") + rank[name]).alias("_p"), *be.words([*p.conditions, current])))
            jobs.append(Job(reg, name, p))
    return finish(kb, jobs, pl.collect_all(frames) if frames else [], row)


def finish(kb: KnowledgeBase, jobs: Sequence[Job], frames: Sequence[Any], row: Any) -> Evaluated:
    """:class:`Evaluated` from each job's words (a frame of ``_p``, the output row, and the job's ``_w`` words)."""
    import numpy as np
    import polars as pl

    schema = empty(kb).schema
    uniques = pl.collect_all([f.lazy().select(j.keys).unique() for j, f in zip(jobs, frames, strict=True)]) if jobs else []
    be = c.PolarsBackend(c.finding_ids(kb))
    verdicts = pl.collect_all([_verdict(be, j, u, schema) for j, u in zip(jobs, uniques, strict=True)]) if jobs else []
    maps = pl.collect_all([f.lazy().join(u.lazy().with_row_index("_g"), on=j.keys, how="inner").select("_p", "_g")
                           for j, f, u in zip(jobs, frames, uniques, strict=True)]) if jobs else []
    gid = np.zeros(len(row), dtype=np.uint32)
    filled = 0
    offset = 0
    for m, v in zip(maps, verdicts, strict=True):
        gid[m["_p"].to_numpy()] = m["_g"].to_numpy().astype(np.uint32) + offset
        offset += v.height
        filled += m.height
    if filled != len(row):
        raise AssertionError(f"{filled} of {len(row)} output rows assessed")  # a layout bug, never bad input
    table = pl.concat(verdicts) if verdicts else pl.DataFrame(schema={k: t for k, t in schema.items() if k != "id"})
    return Evaluated(table, gid, row)


def _verdict(be: c.PolarsBackend, job: Job, words: Any, schema: dict[str, Any]) -> Any:
    """Every output column but ``id`` for each distinct word tuple of a job (lazy): status, finding ids and screening
    missing by numpy (:func:`_lists`), the approval, dose and ``current`` by the plan's own build over the bits."""
    import polars as pl

    p, keys = job.plan, job.keys
    bits = [(pl.col(f"_w{j // WORD}") & pl.lit(1 << (j % WORD), dtype=pl.UInt64)) != 0 for j in range(job.bits)]
    rest = {k: e for k, e in p.build(be, bits[:-1]).items() if k not in VERDICT}
    return (words.lazy().map_batches(lambda d: _lists(d, p, keys, schema), schema={
            **dict.fromkeys(keys, pl.UInt64), **{k: schema[k] for k in VERDICT}})
            .with_columns(pl.lit(job.regulator).alias("regulator"), pl.lit(job.drug).alias("drug"), bits[-1].alias("current"), **rest)
            .select(pl.col(k).cast(t) for k, t in schema.items() if k != "id"))


def _lists(words: Any, p: c.Plan, keys: Sequence[str], schema: dict[str, Any]) -> Any:
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


def empty(kb: KnowledgeBase) -> Any:
    """The output schema; names from closed vocabularies are Enums (small, fast to sort and group)."""
    import typing

    import polars as pl

    from jakinib.knowledge import schema as s

    products = sorted({p.id for d in kb.drugs.values() for p in d.products})
    routes = sorted({p.route for d in kb.drugs.values() for p in d.products})
    tests = sorted({i.test for d in kb.drugs.values() for lab in d.labels for i in lab.screening})
    schema = {"id": pl.String, "regulator": pl.Enum(sorted(typing.get_args(s.Regulator))), "drug": pl.Enum(sorted(kb.drugs)),
              "product": pl.Enum(products), "route": pl.Enum(routes), "status": pl.Enum(sorted(s.STATUS_ORDER)),
              "approved": pl.Boolean, "findings": pl.List(pl.Enum(c.finding_ids(kb))), "screening_missing": pl.List(pl.Enum(tests)),
              "dose_mg": pl.Float64, "dose_every_h": pl.Float64, "dose_adjusted": pl.Boolean,
              "dose_rule": pl.Enum(sorted({r.id for r in kb.rules})), "dose_withheld": pl.Boolean, "dose_face_mg": pl.Float64,
              "dose_face_every_h": pl.Float64, "current": pl.Boolean}
    return pl.DataFrame(schema=schema)
