"""The Spark engine: the same cohort table and the same compiled expressions (``compile.SparkBackend``) on PySpark,
``local[*]`` by default or a cluster by ``--master``. Install with ``pip install 'jakinib[spark]'`` (needs Java).

The cohort table is read and flattened as for Polars (``read.py``), handed to Spark as Arrow, assessed there, and the
care gaps of the (much smaller) current-drug rows are added by ``gaps.py`` on the collected result.
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
            .getOrCreate())


def unsorted(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str], master: str | None = None) -> Any:
    """The compiled assessment on Spark; returns a Polars DataFrame shaped as ``assess.unsorted``'s."""
    import polars as pl
    from pyspark.sql import functions as F

    from jakinib.cohort.assess import ORDER, empty, indexed

    spark = session(master)
    df, regs = indexed(table, regulators)
    sdf = spark.createDataFrame(df.with_columns(pl.col("_i").cast(pl.Int64)).to_arrow())
    be = c.SparkBackend()
    combos = df.select("regulator", "indication").unique().sort(["regulator", "indication"], nulls_last=True).rows()
    parts = []
    polars_be = c.PolarsBackend(c.finding_ids(kb))
    for reg, ind in combos:
        part = sdf.filter((be.col("regulator") == reg) & (be.col("indication").isNull() if ind is None else be.col("indication") == ind))
        for name in drugs:
            stage: list[dict[str, Any]] = [{}, {}, {}]
            exprs = c.assessment(kb, kb.drugs[name], reg, ind, be, stage)
            staged = part
            for layer in stage:
                if layer:
                    staged = staged.select("*", *[e.alias(k) for k, e in layer.items()])
            parts.append(staged.select(be.col("_i").alias("_i"), be.col("id").alias("id"), be.col("regulator").alias("regulator"),
                                       F.lit(name).alias("drug"), *[e.alias(k) for k, e in exprs.items()],
                                       F.coalesce(be.col("jak") == F.lit(name), F.lit(False)).alias("current")))
    schema = {"_i": pl.UInt32, **empty(kb, polars_be).schema}  # the Polars engine's types (an all-null column too)
    if not parts:
        return pl.DataFrame(schema={"_key": pl.UInt64, **schema}).select(*ORDER, *empty(kb, polars_be).columns)
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    rows = pl.from_arrow(out.toArrow()).cast(schema).select(list(schema))
    names = sorted(drugs)
    key = (pl.col("_i").cast(pl.UInt64) * (len(regs) * len(names))
           + pl.col("regulator").replace_strict({r: i for i, r in enumerate(regs)}, return_dtype=pl.UInt64) * len(names)
           + pl.col("drug").replace_strict({d: i for i, d in enumerate(names)}, return_dtype=pl.UInt64))
    return rows.with_columns(key.alias("_key")).select(*ORDER, *empty(kb, polars_be).columns)


def run(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str], today: dt.date,
        master: str | None = None) -> Any:
    return g.add_gaps(kb, unsorted(kb, table, drugs, regulators, master), table, today)
