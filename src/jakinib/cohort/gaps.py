"""Care gaps over time for the JAK inhibitor a patient is on (column expressions, Polars).

For the row of a patient's current drug (``jak``, started ``jak_start``), under that row's label:

- ``screening.<test>.missing`` — a label screening item still missing (the checker's ``screening_missing``);
- ``screening.<test>.after-start`` / ``.undated`` — recorded, but after the start date, or without a date (it cannot be
  shown to predate the start);
- ``therapy.start-unknown`` — no start date: screening order and monitoring cannot be checked;
- ``monitoring.<test>.overdue`` — the label schedule (``MonitoringItem.at_weeks`` from the start, then every
  ``then_every_weeks``) has an occurrence due by ``today`` that no record covers: an occurrence is covered by a record
  dated after the previous occurrence (the baseline, week 0, by a record on or before the start);
- ``monitoring.<test>.unreadable`` — the label asks for a test jakinib has no record codes for (e.g. lipids): it cannot
  be verified, so it is listed, never assumed done;
- ``dose.above-label`` — the current daily dose is above the recommended one (renal, hepatic, interacting drugs);
- ``verdict.<status>`` — the checker's verdict today is contraindicated, do-not-start or avoid (a contraindication
  that appeared since the start, an EU patient >= 65 or a smoker started without a recorded reason).

Each gap carries the rule it comes from, its sources, its due date and how many days it is overdue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from jakinib.cohort.flatten import record_column
from jakinib.knowledge import fields as f
from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase

INPUTS = ("jak", "jak_start", "jak_dose_mg", "jak_every_h",
          *[f"screening.{t}" for t in f.SCREENING_TESTS], *[f"screening.{t}.date" for t in f.SCREENING_TESTS],
          *[record_column(lab, w) for lab in f.LAB_UNITS for w in ("first", "last")])
VERDICT_GAPS = ("contraindicated", "do-not-start", "avoid")
GAP = {"gap": "str", "rule": "str", "sources": "str", "due": "date", "overdue_days": "int"}


def _dates(kb: KnowledgeBase, test: str, which: str) -> list[str]:
    """The date columns of the records that satisfy a monitoring test (``labs.yaml`` monitoring_tests)."""
    out = []
    for rec in kb.monitoring_tests[test].records if test in kb.monitoring_tests else ():
        out.append(f"screening.{rec.split(':', 1)[1]}.date" if rec.startswith("screening:") else record_column(rec, which))
    return out


@dataclass(frozen=True)
class Gap:
    """One gap a row may have: its id, rule and sources (literals or expressions), when it applies, due and overdue."""

    gap: Any
    rule: Any
    sources: Any
    when: Any
    due: Any = None
    overdue: Any = None


def _monitoring(pl: Any, kb: KnowledgeBase, m: s.MonitoringItem, today: dt.date) -> tuple[Any, Any] | None:
    """(due date, overdue days) for one monitoring item, or None when it is unreadable."""
    if not _dates(kb, m.test, "last"):
        return None
    start = pl.col("jak_start")
    firsts = [pl.col(c) for c in _dates(kb, m.test, "first")]
    lasts = [pl.col(c) for c in _dates(kb, m.test, "last")]
    first, last = pl.min_horizontal(firsts), pl.max_horizontal(lasts)
    todays = pl.lit(today)

    def at(weeks: float) -> Any:
        return start + pl.duration(days=round(weeks * 7))

    weeks = list(m.at_weeks)
    due_parts: list[Any] = []
    if 0 in weeks:  # baseline: a record on or before the start
        due_parts.append(pl.when(first.is_null() | (first > start)).then(start))
    follow = sorted(w for w in weeks if w > 0)
    prev = [0.0, *follow[:-1]][: len(follow)]
    chain: Any = None
    for w, p in zip(follow, prev, strict=True):
        cond = last.is_null() | (last <= at(p))
        chain = pl.when(cond).then(at(w)) if chain is None else chain.when(cond).then(at(w))
    if m.then_every_weeks:
        base_w = weeks[-1] if weeks else 0.0
        step = round(m.then_every_weeks * 7)
        base = at(base_w)
        days = (last - base).dt.total_days()
        k = (days + step - 1) // step + 1  # first period not covered by the latest record
        periodic = base + pl.duration(days=k * step)
        cond = last.is_null() | (last <= base)
        chain = (pl.when(cond).then(base + pl.duration(days=step)) if chain is None else chain.when(cond).then(base + pl.duration(days=step)))
        chain = chain.otherwise(periodic)
    if chain is not None:
        due_parts.append(chain)
    if not due_parts:
        return None
    due = pl.min_horizontal(due_parts)
    due = pl.when(due <= todays).then(due)
    return due, (todays - due).dt.total_days()


def gap_items(kb: KnowledgeBase, product: str, regulator: str, today: dt.date, rule_sources: dict[str, list[str]]) -> list[Gap]:
    """The gaps rows of one product under one regulator may have, in their reporting order."""
    import polars as pl

    label = kb.label(product, regulator)
    start = pl.col("jak_start")
    since = (pl.lit(today) - start).dt.total_days()
    items = [Gap("therapy.start-unknown", "therapy.start", "seed", start.is_null())]
    if label is not None:
        for item in label.screening:
            test, src = item.test, ";".join(item.sources)
            missing = pl.col("screening_missing").list.contains(test)
            stale = pl.lit(False)
            if test in f.SCREENING_TESTS:  # a dated result too old for a start today (its value nulled at read) was still done
                stale = pl.col(f"screening.{test}").is_null() & pl.col(f"screening.{test}.date").is_not_null()
            items.append(Gap(f"screening.{test}.missing", f"screening.{test}", src, missing & ~stale, start, since))
            if test in f.SCREENING_TESTS:
                date = pl.col(f"screening.{test}.date")
                done = ~missing | stale
                items.append(Gap(f"screening.{test}.after-start", f"screening.{test}", src, done & (date > start), start,
                                 (date - start).dt.total_days()))
                items.append(Gap(f"screening.{test}.undated", f"screening.{test}", src,
                                 done & date.is_null() & start.is_not_null()))
        for m in label.monitoring:
            found = _monitoring(pl, kb, m, today)
            src = ";".join(m.sources)
            if found is None:
                items.append(Gap(f"monitoring.{m.test}.unreadable", f"monitoring.{m.test}", src, start.is_not_null()))
                continue
            due, overdue = found
            items.append(Gap(f"monitoring.{m.test}.overdue", f"monitoring.{m.test}", src, due.is_not_null(), due, overdue))
    current_day = pl.col("jak_dose_mg") * 24 / pl.col("jak_every_h").fill_null(24.0)
    label_day = pl.col("dose_mg") * 24 / pl.col("dose_every_h")
    rule = pl.col("dose_rule").cast(pl.String)
    dose_sources = rule.replace_strict(rule_sources, default=None, return_dtype=pl.List(pl.String)).list.join(";")
    items.append(Gap("dose.above-label", rule.fill_null("dose.standard"),
                     dose_sources.fill_null(";".join(_dose_sources(label))), current_day > label_day + 1e-9))
    for status in VERDICT_GAPS:
        items.append(Gap(f"verdict.{status}", "check", "seed", pl.col("status") == status))
    return items


STRUCT = {"gap": "String", "rule": "String", "sources": "String", "due": "Date", "overdue_days": "Int64"}
ITEMS = 1 << 12
"""At most this many gap items per (product, regulator): ``_s`` = row * ITEMS + item orders the long form."""


def _long(pl: Any, part: Any, items: list[Gap]) -> list[Any]:
    """One lazy frame per item of the rows of ``part`` it applies to: ``_n`` (the row), ``_s`` (the sort key: row,
    then item order) and the gap's fields, each computed on those rows only."""
    def lit(v: Any) -> Any:
        return pl.lit(v) if isinstance(v, str) else v

    assert len(items) < ITEMS
    return [part.lazy().filter(g.when.fill_null(False)).select(
        pl.col("_n"), (pl.col("_n").cast(pl.UInt64) * ITEMS + k).alias("_s"), lit(g.gap).cast(pl.String).alias("gap"),
        lit(g.rule).cast(pl.String).alias("rule"), lit(g.sources).cast(pl.String).alias("sources"),
        (g.due if g.due is not None else pl.lit(None)).cast(pl.Date).alias("due"),
        (g.overdue if g.overdue is not None else pl.lit(None)).cast(pl.Int64).alias("overdue_days"))
        for k, g in enumerate(items)]


def _dose_sources(label: s.Label | None) -> list[str]:
    return sorted({c for d in label.doses for c in d.sources}) if label is not None else ["seed"]


def add_gaps(kb: KnowledgeBase, ev: Any, table: Any, today: dt.date) -> Any:
    """The screen's rows: the assessment (``assess.Evaluated``, in its final order) with ``gaps`` (ids), ``gap_details``,
    ``max_overdue_days`` and the current dose and start. Gaps are computed on the current-drug rows only, with their
    inputs taken from ``table`` by row number, in long form (one row per gap), and placed by position: the list
    columns are built from the long form's values and offsets (the other rows get empty lists and nulls)."""
    import numpy as np
    import polars as pl

    struct = pl.Struct({k: getattr(pl, t) for k, t in STRUCT.items()})
    rule_sources = {r.id: list(r.sources) for r in kb.rules}
    rows = ev.rows(table)
    at = np.flatnonzero(ev.verdicts["current"].to_numpy()[ev.gid])  # output rows of a current drug, in output order
    current = pl.concat([ev.verdicts.select("product", "regulator", "status", "screening_missing", "dose_mg", "dose_every_h",
                                            "dose_rule")[pl.Series(ev.gid[at])],
                         table.select(list(INPUTS))[pl.Series(ev.row[at])]], how="horizontal").with_row_index("_n")
    frames = [f for (product, regulator), part in current.group_by("product", "regulator")
              for f in _long(pl, part, gap_items(kb, str(product), str(regulator), today, rule_sources))]
    long = (pl.concat(pl.collect_all(frames)).sort("_s") if frames else
            pl.DataFrame(schema={"_n": pl.UInt32, "_s": pl.UInt64, **{k: getattr(pl, t) for k, t in STRUCT.items()}}))
    lengths = np.bincount(long["_n"].to_numpy(), minlength=current.height)
    overdue = _most(long["overdue_days"], lengths).alias("max_overdue_days")
    return rows.with_columns(
        _spread_lists("gaps", long["gap"], lengths, at, rows.height),
        _spread_lists("gap_details", long.select(pl.struct(*STRUCT).alias("d"))["d"], lengths, at, rows.height).cast(pl.List(struct)),
        _spread(overdue, at, rows.height), _spread(current["jak_dose_mg"].alias("current_dose_mg"), at, rows.height),
        _spread(current["jak_every_h"].alias("current_every_h"), at, rows.height),
        _spread(current["jak_start"].alias("start"), at, rows.height))


def _most(values: Any, lengths: Any) -> Any:
    """The largest non-null value of each run of ``lengths[k]`` consecutive ``values`` (null when there is none)."""
    import numpy as np
    import polars as pl

    low = np.iinfo(np.int64).min
    out = np.full(len(lengths), low, dtype=np.int64)
    some = lengths > 0
    if some.any():
        out[some] = np.maximum.reduceat(values.fill_null(low).to_numpy(), (np.cumsum(lengths) - lengths)[some])
    return pl.select(pl.when(pl.lit(pl.Series(out)) != low).then(pl.lit(pl.Series(out)))).to_series()


def _spread_lists(name: str, values: Any, lengths: Any, at: Any, total: int) -> Any:
    """A list column of ``total`` rows: row ``at[k]`` holds the next ``lengths[k]`` of ``values`` (in order), every
    other row an empty list (the offsets are built around the values, which are not copied row by row)."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    full = np.zeros(total, dtype=np.int64)
    full[at] = lengths
    offsets = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(full, out=offsets[1:])
    return pl.Series(name, pa.LargeListArray.from_arrays(pa.array(offsets), values.rechunk().to_arrow()))


def _spread(values: Any, at: Any, total: int) -> Any:
    """A column of ``total`` rows with ``values`` at rows ``at`` and null elsewhere."""
    import polars as pl

    full = pl.select(pl.repeat(None, total, dtype=values.dtype).alias(values.name)).to_series()
    return full.scatter(at, values) if len(at) else full
