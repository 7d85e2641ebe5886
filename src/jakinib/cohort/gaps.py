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
from typing import Any

from jakinib.cohort.flatten import record_column
from jakinib.knowledge import fields as f
from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase

# Which dated records satisfy a label monitoring test (lab ids of labs.yaml; 'screening:<test>' = a screening date).
# A test not listed here has no codes jakinib reads, and is reported as unreadable.
MONITORING_RECORDS: dict[str, tuple[str, ...]] = {
    "cbc": ("anc", "alc", "hb", "platelets"), "blood-counts": ("anc", "alc", "hb", "platelets"),
    "complete-blood-count": ("anc", "alc", "hb", "platelets"),
    "neutrophils": ("anc",), "lymphocytes": ("alc",), "haemoglobin": ("hb",), "hemoglobin": ("hb",), "platelets": ("platelets",),
    "liver-enzymes": ("alt", "ast"), "liver-function": ("alt", "ast"), "renal-function": ("creatinine", "egfr", "crcl"),
    "tuberculosis": ("screening:tuberculosis",),
}
INPUTS = ("jak", "jak_start", "jak_dose_mg", "jak_every_h",
          *[f"screening.{t}" for t in f.SCREENING_TESTS], *[f"screening.{t}.date" for t in f.SCREENING_TESTS],
          *[record_column(lab, w) for lab in f.LAB_UNITS for w in ("first", "last")])
VERDICT_GAPS = ("contraindicated", "do-not-start", "avoid")
GAP = {"gap": "str", "rule": "str", "sources": "str", "due": "date", "overdue_days": "int"}


def _dates(test: str, which: str) -> list[str]:
    out = []
    for rec in MONITORING_RECORDS.get(test, ()):
        out.append(f"screening.{rec.split(':', 1)[1]}.date" if rec.startswith("screening:") else record_column(rec, which))
    return out


def _gap_struct(pl: Any, gap: str, rule: str, sources: list[str], due: Any, overdue: Any) -> Any:
    return pl.struct(gap=pl.lit(gap), rule=pl.lit(rule), sources=pl.lit(";".join(sources)),
                     due=due if due is not None else pl.lit(None, dtype=pl.Date),
                     overdue_days=overdue if overdue is not None else pl.lit(None, dtype=pl.Int64))


def _monitoring(pl: Any, m: s.MonitoringItem, today: dt.date) -> tuple[Any, Any] | None:
    """(condition, overdue days) for one monitoring item, or None when it is unreadable."""
    if m.test not in MONITORING_RECORDS:
        return None
    start = pl.col("jak_start")
    firsts = [pl.col(c) for c in _dates(m.test, "first")]
    lasts = [pl.col(c) for c in _dates(m.test, "last")]
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


def gap_items(kb: KnowledgeBase, product: str, regulator: str, today: dt.date, rule_sources: dict[str, list[str]]) -> list[Any]:
    """Struct expressions (null when the gap does not apply) for rows of one product under one regulator."""
    import polars as pl

    label = kb.label(product, regulator)
    start = pl.col("jak_start")
    items: list[Any] = [pl.when(start.is_null()).then(_gap_struct(pl, "therapy.start-unknown", "therapy.start", ["seed"], None, None))]
    if label is not None:
        for item in label.screening:
            test = item.test
            missing = pl.col("screening_missing").list.contains(test)
            stale = pl.lit(False)
            if test in f.SCREENING_TESTS:  # a dated result too old for a start today (its value nulled at read) was still done
                stale = pl.col(f"screening.{test}").is_null() & pl.col(f"screening.{test}.date").is_not_null()
            items.append(pl.when(missing & ~stale).then(_gap_struct(pl, f"screening.{test}.missing", f"screening.{test}",
                                                                     list(item.sources), start, (pl.lit(today) - start).dt.total_days())))
            if test in f.SCREENING_TESTS:
                date = pl.col(f"screening.{test}.date")
                done = ~missing | stale
                items.append(pl.when(done & (date > start)).then(_gap_struct(
                    pl, f"screening.{test}.after-start", f"screening.{test}", list(item.sources), start, (date - start).dt.total_days())))
                items.append(pl.when(done & date.is_null() & start.is_not_null()).then(_gap_struct(
                    pl, f"screening.{test}.undated", f"screening.{test}", list(item.sources), None, None)))
        for m in label.monitoring:
            found = _monitoring(pl, m, today)
            if found is None:
                if m.test not in MONITORING_RECORDS:
                    items.append(pl.when(start.is_not_null()).then(_gap_struct(
                        pl, f"monitoring.{m.test}.unreadable", f"monitoring.{m.test}", list(m.sources), None, None)))
                continue
            due, overdue = found
            items.append(pl.when(due.is_not_null()).then(_gap_struct(
                pl, f"monitoring.{m.test}.overdue", f"monitoring.{m.test}", list(m.sources), due, overdue)))
    current_day = pl.col("jak_dose_mg") * 24 / pl.col("jak_every_h").fill_null(24.0)
    label_day = pl.col("dose_mg") * 24 / pl.col("dose_every_h")
    dose_sources = pl.col("dose_rule").replace_strict(rule_sources, default=None, return_dtype=pl.List(pl.String)).list.join(";")
    items.append(pl.when(current_day > label_day + 1e-9).then(pl.struct(
        gap=pl.lit("dose.above-label"), rule=pl.col("dose_rule").fill_null("dose.standard"),
        sources=dose_sources.fill_null(";".join(_dose_sources(label))), due=pl.lit(None, dtype=pl.Date),
        overdue_days=pl.lit(None, dtype=pl.Int64))))
    for status in VERDICT_GAPS:
        items.append(pl.when(pl.col("status") == status).then(_gap_struct(pl, f"verdict.{status}", "check", ["seed"], None, None)))
    return items


def _dose_sources(label: s.Label | None) -> list[str]:
    return sorted({c for d in label.doses for c in d.sources}) if label is not None else ["seed"]


def add_gaps(kb: KnowledgeBase, rows: Any, today: dt.date) -> Any:
    """Add ``current``, ``gaps`` (ids), ``gap_details`` and ``max_overdue_days``; drop the gap inputs."""
    import polars as pl

    struct = pl.Struct({"gap": pl.String, "rule": pl.String, "sources": pl.String, "due": pl.Date, "overdue_days": pl.Int64})
    rows = rows.with_columns((pl.col("jak") == pl.col("drug")).fill_null(False).alias("current"))
    rule_sources = {r.id: list(r.sources) for r in kb.rules}
    parts = [rows.filter(~pl.col("current")).with_columns(pl.lit([], dtype=pl.List(struct)).alias("gap_details"))]
    current = rows.filter(pl.col("current"))
    for (product, regulator), part in current.group_by(["product", "regulator"]):
        items = gap_items(kb, product, regulator, today, rule_sources)
        parts.append(part.with_columns(pl.concat_list(items).list.drop_nulls().cast(pl.List(struct)).alias("gap_details")))
    out = pl.concat(parts, how="vertical_relaxed")
    out = out.with_columns(
        pl.col("gap_details").list.eval(pl.element().struct.field("gap")).alias("gaps"),
        pl.col("gap_details").list.eval(pl.element().struct.field("overdue_days")).list.max().alias("max_overdue_days"),
        pl.when(pl.col("current")).then(pl.col("jak_dose_mg")).alias("current_dose_mg"),
        pl.when(pl.col("current")).then(pl.col("jak_every_h")).alias("current_every_h"),
        pl.when(pl.col("current")).then(pl.col("jak_start")).alias("start"),
    )
    return out.drop(list(INPUTS)).sort(["id", "regulator", "drug"])
