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


def assess(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str], master: str | None = None,
           keep: Sequence[str] = (), today: dt.date | None = None) -> Any:
    """The compiled assessment on Spark; returns a Polars DataFrame shaped as ``assess.assess``'s."""
    import polars as pl
    from pyspark.sql import functions as F

    from jakinib.cohort.assess import with_regulators

    spark = session(master)
    df = with_regulators(table, regulators)
    sdf = spark.createDataFrame(df.to_arrow())
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
            parts.append(staged.select(be.col("id").alias("id"), be.col("regulator").alias("regulator"), F.lit(name).alias("drug"),
                                       *[e.alias(k) for k, e in exprs.items()], *[be.col(k).alias(k) for k in keep]))
    from jakinib.cohort.assess import empty

    schema = empty(polars_be, keep, df).schema  # the Polars engine's types (an all-null column too)
    frames = []
    if parts:
        out = parts[0]
        for p in parts[1:]:
            out = out.unionByName(p)
        frames.append(pl.from_arrow(out.toArrow()).cast(dict(schema)).select(list(schema)))
    if not frames:
        return empty(polars_be, keep, df)
    return pl.concat(frames).sort(["id", "regulator", "drug"])


def run(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str], today: dt.date,
        master: str | None = None) -> Any:
    rows = assess(kb, table, drugs, regulators, master, keep=g.INPUTS, today=today)
    return g.add_gaps(kb, rows, today)
