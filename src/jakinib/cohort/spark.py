"""The Spark engine: the same cohort table and the same compiled plans (``compile.SparkBackend``) on PySpark,
``local[*]`` by default or a cluster by ``--master``. Install with ``pip install 'jakinib[spark]'`` (needs Java).

The cohort table is read and flattened as for Polars (``read.py``) and handed to Spark as Arrow. Spark does the
per-row work: every predicate leaf, renal reading and rule of every drug, packed into words of condition bits (one
query per regulator x indication partition, all drugs in it). The words come back as Arrow, and ``assess.finish``
builds the output once per distinct word tuple exactly as for Polars (the plan's own ``build``), then the care gaps
of the (much smaller) current-drug rows are added by ``gaps.py``.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Sequence
from typing import Any

from jakinib.cohort import compile as c
from jakinib.cohort import gaps as g
from jakinib.errors import InputError
from jakinib.knowledge.base import KnowledgeBase


def available() -> str | None:
    """None when Spark can run here, else why not."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'jakinib[spark]')"
    if shutil.which("java") is None:
        return "Java is not installed (Spark needs a JRE, e.g. apt-get install default-jre-headless)"
    return None


def session(master: str | None = None) -> Any:
    reason = available()
    if reason:
        raise InputError(f"--engine spark: {reason}")
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master or "local[*]").appName("jakinib-screen")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true").config("spark.driver.memory", "2g")
            # the cohort arrives as local data: this rule would evaluate every plan on it inside the optimizer,
            # interpreted, row by row on the driver (most of the time Spark took); without it the plan is compiled
            .config("spark.sql.optimizer.excludedRules", "org.apache.spark.sql.catalyst.optimizer.ConvertToLocalRelation")
            .getOrCreate())


def evaluate(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str], master: str | None = None) -> Any:
    """The compiled assessment on Spark, as ``assess.evaluate``'s :class:`~jakinib.cohort.assess.Evaluated`."""
    import polars as pl

    from jakinib.cohort import assess

    spark = session(master)
    df, row = assess.layout(table, regulators, drugs)
    sdf = spark.createDataFrame(df.drop("_i").to_arrow())
    rank = {d: k for k, d in enumerate(sorted(drugs))}
    with_bounds = assess.bounded(table)
    combos = df.select("regulator", "indication").unique().sort(["regulator", "indication"], nulls_last=True).rows()
    jobs, frames = [], []
    for reg, ind in combos:
        be = c.SparkBackend()
        be.bounded = with_bounds
        be.leaves = {}
        stage: list[dict[str, Any]] = [{}, {}, {}]
        plans = [(k, name, c.plan(kb, kb.drugs[name], reg, ind, be, stage, tag=f"d{k}")) for k, name in enumerate(drugs)]
        part = sdf.filter(str((be.col("regulator") == reg) & (be.is_null(be.col("indication")) if ind is None else be.col("indication") == ind)))
        part = be.select(part, dict(be.leaves.values()))  # every predicate leaf once, for all the drugs
        for layer in stage:
            if layer:
                part = be.select(part, layer)
        words: dict[str, Any] = {"_p0": be.col("_p0")}
        for k, name, p in plans:
            words.update(be.words([*p.conditions, be.coalesce(be.col("jak") == be.lit(name), be.lit(False))], prefix=f"_d{k}w"))
        got = pl.from_arrow(be.select(part, words, keep=False).toArrow())
        for k, name, p in plans:
            job = assess.Job(reg, name, p)
            jobs.append(job)
            frames.append(got.select((pl.col("_p0") + rank[name]).alias("_p"),
                                     *[pl.col(f"_d{k}w{j}").reinterpret(signed=False).alias(w) for j, w in enumerate(job.keys)]))
    return assess.finish(kb, jobs, frames, row)


def run(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str], today: dt.date,
        master: str | None = None) -> Any:
    return g.add_gaps(kb, evaluate(kb, table, drugs, regulators, master), table, today)
