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

    def ranked(pairs: dict[str, int]) -> dict[str, int]:
        return dict(sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])))

    def add(into: dict[Any, int], key: Any, n: int) -> None:
        into[key] = into.get(key, 0) + n

    # every count from one grouping of the few columns they read (a pass over the rows, not one per count)
    cells = rows.group_by("drug", "regulator", "status", "current", (pl.col("current") & (pl.col("gaps").list.len() > 0)).alias("_gaps")).len()
    statuses: dict[str, int] = {}
    by: dict[str, dict[tuple[str, str], int]] = {"drug": {}, "regulator": {}}
    on_it: dict[str, int] = {}
    with_gaps: dict[str, dict[str, int]] = {"drug": {}, "regulator": {}}
    for drug, reg, status, cur, gapped, n in cells.select("drug", "regulator", "status", "current", "_gaps", "len").iter_rows():
        drug, reg, status = str(drug), str(reg), str(status)
        add(statuses, status, n)
        for kind, key in (("drug", drug), ("regulator", reg)):
            add(by[kind], (key, status), n)
            add(with_gaps[kind], key, n if gapped else 0)
        add(on_it, drug, n if cur else 0)

    def nested(kind: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (key, status), n in sorted(by[kind].items(), key=lambda x: (x[0][0], -x[1], x[0][1])):
            out.setdefault(key, {})[status] = n
        return out

    current = rows.select("id", "drug", "regulator", "status", "gaps", "max_overdue_days", "current").filter(pl.col("current"))
    gaps: dict[str, int] = {}
    for gap, n in current.select(pl.col("gaps").alias("gap")).explode("gap").drop_nulls("gap").group_by("gap").len().iter_rows():
        add(gaps, str(gap).split(":")[0], int(n))
    per_drug = {d: {"statuses": st, "on_it": on_it[d], "with_gaps": with_gaps["drug"][d]} for d, st in nested("drug").items()}
    per_reg = {r: {"statuses": st, "current_with_gaps": with_gaps["regulator"][r]} for r, st in nested("regulator").items()}
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
        "statuses": ranked(statuses), "gaps": ranked(gaps),
        "per_drug": {k: per_drug[k] for k in sorted(per_drug)},
        "per_regulator": {k: per_reg[k] for k in sorted(per_reg)},
        "most_at_risk": [{"id": r["id"], "drug": r["drug"], "regulator": r["regulator"], "status": r["status"],
                          "gaps": r["gaps"], "max_overdue_days": r["max_overdue_days"]} for r in risk.iter_rows(named=True)],
        "input_problems": problems.to_json(),
    }
