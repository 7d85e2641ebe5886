"""``jakinib screen``: read a cohort, assess every drug for every patient with the checker's compiled rules, add care
gaps for the JAK inhibitor each patient is on, and summarise."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jakinib.cohort import gaps as g
from jakinib.cohort.read import Problems, Progress
from jakinib.errors import InputError
from jakinib.knowledge.base import KnowledgeBase

MOST_AT_RISK = 20


@dataclass
class Screen:
    """The result of a screen: one row per patient x regulator x drug, the summary and the skipped input."""

    rows: Any  # polars.DataFrame
    summary: dict[str, Any]
    problems: Problems

    def write(self, out: Path) -> None:
        """Write the rows as Parquet (lists kept) or CSV (lists joined with ';')."""
        import polars as pl

        name = out.name.lower()
        rows = self.rows.with_columns(pl.col(c).cast(pl.List(pl.String)) for c, t in self.rows.schema.items()
                                      if isinstance(t, pl.List) and isinstance(t.inner, pl.Enum))
        if name.endswith(".parquet"):
            rows.write_parquet(out)
        elif name.endswith(".csv"):
            rows = rows.with_columns(pl.col("gap_details").list.eval(pl.element().struct.json_encode()))
            lists = [c for c, t in rows.schema.items() if isinstance(t, pl.List)]
            rows.with_columns([pl.col(c).list.join(";") for c in lists]).write_csv(out)
        else:
            raise InputError(f"--out {out}: use a .parquet or .csv file name")


def screen(source: Path | str, kb: KnowledgeBase, drugs: Sequence[str] | None = None, regulators: Sequence[str] = ("FDA",),
           today: dt.date | None = None, on_error: str = "stop", engine: str = "polars", master: str | None = None,
           progress: Progress | None = None) -> Screen:
    """Screen a cohort file or Bulk export folder (see :mod:`jakinib.cohort.read`)."""
    from jakinib.cohort import read

    if on_error not in ("stop", "skip"):
        raise InputError(f"--on-error {on_error!r}: use stop or skip")
    day = today or dt.date.today()
    names = [kb.drug(d).name for d in drugs] if drugs else list(kb.drugs)
    names = list(dict.fromkeys(names))
    regs = list(dict.fromkeys(kb.regulator(r) for r in regulators)) or ["FDA"]
    problems = Problems(skip=on_error == "skip")
    table = read.read(Path(source), kb, day, problems, progress)
    rows = run(kb, table, names, regs, day, engine, master)
    return Screen(rows=rows, summary=summarise(rows, table.height, regs, names, day, problems), problems=problems)


def run(kb: KnowledgeBase, table: Any, drugs: Sequence[str], regulators: Sequence[str], today: dt.date,
        engine: str = "polars", master: str | None = None) -> Any:
    """Assessment and gaps for a cohort table, on Polars or Spark (the same compiled expressions)."""
    if engine == "polars":
        from jakinib.cohort import assess

        return g.add_gaps(kb, assess.evaluate(kb, table, drugs, regulators), table, today)
    if engine == "spark":
        from jakinib.cohort import spark

        return spark.run(kb, table, drugs, regulators, today, master)
    raise InputError(f"--engine {engine!r}: use polars or spark")


def summarise(rows: Any, patients: int, regulators: Sequence[str], drugs: Sequence[str], today: dt.date,
              problems: Problems) -> dict[str, Any]:
    """Counts per status, per gap, per drug and per regulator, and the patients most at risk first."""
    import polars as pl

    from jakinib.knowledge.schema import STATUS_ORDER

    def counts(df: Any, by: str) -> dict[str, int]:
        pairs = [(str(k), int(v)) for k, v in df.group_by(by).len().iter_rows()]
        return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))

    def nested(df: Any, by: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for key, status, n in sorted(((str(k), str(st), int(n)) for k, st, n in df.group_by(by, "status").len().iter_rows()),
                                     key=lambda x: (x[0], -x[2], x[1])):
            out.setdefault(key, {})[status] = n
        return out

    # the few columns the counts read (grouping the whole table would copy every column of every row)
    thin = rows.select("drug", "regulator", "status", "current", (pl.col("current") & (pl.col("gaps").list.len() > 0)).alias("_gaps"))
    current = rows.select("id", "drug", "regulator", "status", "gaps", "max_overdue_days", "current").filter(pl.col("current"))
    gap_rows = current.select(pl.col("gaps").alias("gap")).explode("gap").drop_nulls("gap")
    by_drug = {str(d): (int(on), int(g)) for d, on, g in
               thin.group_by("drug").agg(pl.col("current").sum(), pl.col("_gaps").sum()).iter_rows()}
    per_drug = {d: {"statuses": st, "on_it": by_drug[d][0], "with_gaps": by_drug[d][1]} for d, st in nested(thin, "drug").items()}
    by_reg = {str(r): int(g) for r, g in thin.group_by("regulator").agg(pl.col("_gaps").sum()).iter_rows()}
    per_reg = {r: {"statuses": st, "current_with_gaps": by_reg[r]} for r, st in nested(thin, "regulator").items()}
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    order = current.select(pl.col("status").cast(pl.String).replace_strict(rank, return_dtype=pl.Int32).alias("_rank"),
                           pl.col("gaps").list.len().alias("_gaps"), "max_overdue_days", "id", pl.int_range(pl.len()).alias("_k"))
    top = (order.sort(["_rank", "_gaps", "max_overdue_days", "id"], descending=[False, True, True, False], nulls_last=True,
                       maintain_order=True)
           .head(MOST_AT_RISK))["_k"]  # only the first few rows are gathered
    risk = current[top]
    return {
        "today": today.isoformat(), "patients": patients, "rows": rows.height, "drugs": list(drugs),
        "regulators": list(regulators), "on_a_jak_inhibitor": int(current["id"].n_unique()) if current.height else 0,
        "statuses": counts(thin, "status") if rows.height else {},
        "gaps": counts(gap_rows.with_columns(pl.col("gap").str.split(":").list.first()), "gap") if gap_rows.height else {},
        "per_drug": {k: per_drug[k] for k in sorted(per_drug)},
        "per_regulator": {k: per_reg[k] for k in sorted(per_reg)},
        "most_at_risk": [{"id": r["id"], "drug": r["drug"], "regulator": r["regulator"], "status": r["status"],
                          "gaps": r["gaps"], "max_overdue_days": r["max_overdue_days"]} for r in risk.iter_rows(named=True)],
        "input_problems": problems.to_json(),
    }
