"""One compiler, two backends: rule predicates and the checker's assessment as column expressions.

``predicate`` walks the same :class:`~jakinib.knowledge.schema.Predicate` trees ``safety/predicates.py`` evaluates
for one patient, and emits a column expression; Polars and Spark both have Kleene null semantics (``null & false``
is false, ``null | true`` is true, ``~null`` is null), so *unknown* stays unknown exactly as in the checker.

``assessment`` compiles what ``safety/engine.py``'s ``assess`` does for one drug, one regulator and one indication:
the approval and age check (the engine's own function, evaluated once per age band), label-level findings, every
rule (fired -> its status, unknown -> caution), screening still missing, unmapped medicines, the worst status and
the dose (the engine's choice: the lowest daily dose among fired dose rules when below the standard dose). Findings
come out in the engine's order (severity, then rule id) without a per-row sort: the candidate findings are
enumerated in that order once.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from itertools import pairwise
from typing import Any

from jakinib.knowledge import fields as f
from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety import engine

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


class PolarsBackend:
    """Column expressions for Polars."""

    name = "polars"

    def __init__(self, finding_ids: Sequence[str] = ()) -> None:
        import polars as pl

        self.pl = pl
        self.string = pl.String
        self.ids = pl.Enum(sorted(set(finding_ids))) if finding_ids else pl.String

    def col(self, name: str) -> Any:
        return self.pl.col(name)

    def lit(self, value: Any) -> Any:
        return self.pl.lit(value)

    def unknown(self) -> Any:
        return self.pl.lit(None, dtype=self.pl.Boolean)

    def finding(self, rule_id: str) -> Any:
        return self.pl.lit(rule_id, dtype=self.ids)

    def when(self, cases: Sequence[tuple[Any, Any]], otherwise: Any = None) -> Any:
        pl = self.pl
        if not cases:
            return otherwise if otherwise is not None else pl.lit(None)
        chain: Any = pl
        for cond, value in cases:
            chain = chain.when(cond).then(value)
        return chain.otherwise(otherwise if otherwise is not None else pl.lit(None))

    def has(self, column: Any, value: str) -> Any:
        return column.list.contains(value)

    def isin(self, column: Any, values: Sequence[Any]) -> Any:
        return column.is_in(list(values))

    def is_null(self, column: Any) -> Any:
        return column.is_null()

    def least(self, items: Sequence[Any]) -> Any:
        return self.pl.min_horizontal(items)

    def collect(self, items: Sequence[Any]) -> Any:
        """A list column of the non-null items (each a scalar or a list expression)."""
        if not items:
            return self.pl.lit([], dtype=self.pl.List(self.ids))
        return self.pl.concat_list(items).list.drop_nulls()

    def repeat(self, value: Any, times: Any) -> Any:
        return value.repeat_by(times)

    def size(self, column: Any) -> Any:
        return column.list.len()


class SparkBackend:
    """Column expressions for PySpark (column names hold dots, so they are back-quoted)."""

    name = "spark"

    def __init__(self, finding_ids: Sequence[str] = ()) -> None:
        from pyspark.sql import functions as F

        self.F = F

    def col(self, name: str) -> Any:
        return self.F.col(f"`{name}`")

    def lit(self, value: Any) -> Any:
        return self.F.lit(value)

    string = "string"

    def unknown(self) -> Any:
        return self.F.lit(None).cast("boolean")

    def finding(self, rule_id: str) -> Any:
        return self.F.lit(rule_id)

    def when(self, cases: Sequence[tuple[Any, Any]], otherwise: Any = None) -> Any:
        F = self.F
        if not cases:
            return otherwise if otherwise is not None else F.lit(None)
        chain: Any = F
        for cond, value in cases:
            chain = chain.when(cond, value)
        return chain.otherwise(otherwise if otherwise is not None else F.lit(None))

    def has(self, column: Any, value: str) -> Any:
        return self.F.array_contains(column, value)

    def isin(self, column: Any, values: Sequence[Any]) -> Any:
        return column.isin(list(values))

    def is_null(self, column: Any) -> Any:
        return column.isNull()

    def least(self, items: Sequence[Any]) -> Any:
        return items[0] if len(items) == 1 else self.F.least(*items)

    def collect(self, items: Sequence[Any]) -> Any:
        F = self.F
        if not items:
            return F.array().cast("array<string>")
        arrays = [x.column if isinstance(x, _Repeated) else F.array(x.cast("string")) for x in items]
        return F.array_compact(F.concat(*arrays))

    def repeat(self, value: Any, times: Any) -> Any:
        return _Repeated(self.F.array_repeat(value.cast("string"), times))

    def size(self, column: Any) -> Any:
        return self.F.size(column)


@dataclass(frozen=True)
class _Repeated:
    """A Spark array column standing for several items of a collected list."""

    column: Any


def backend(name: str, finding_ids: Sequence[str] = ()) -> PolarsBackend | SparkBackend:
    return PolarsBackend(finding_ids) if name == "polars" else SparkBackend(finding_ids)


# ---- predicates -------------------------------------------------------------------------------

def predicate(p: s.Predicate, be: Any) -> Any:
    """A Kleene-valued boolean column expression for one predicate tree (null = unknown)."""
    if p.field is not None:
        return _leaf(p, be)
    if p.not_ is not None:
        return ~predicate(p.not_, be)
    children = [predicate(c, be) for c in (p.all if p.all is not None else p.any or [])]
    if not children:
        return be.lit(p.all is not None)  # all([]) is true, any([]) false, as in predicates.py
    return reduce(operator.and_ if p.all is not None else operator.or_, children)


def _leaf(p: s.Predicate, be: Any) -> Any:
    field = p.field or ""
    kind = f.kind_of(field)
    if kind is None:
        return be.unknown()  # predicates.py: a field that is never in the facts is unknown
    column = be.col(field)
    if kind == "list":
        if p.has is not None:
            return be.has(column, p.has)
        if p.in_ is not None or p.is_ is not None:
            return be.lit(False)  # a tuple is never in a list of strings, nor `is` a bool
        raise ValueError(f"field {field!r} is a list: compare it with `has`")
    if p.is_ is not None:
        return column == be.lit(p.is_)
    if p.has is not None:
        raise ValueError(f"field {field!r} is not a list: `has` needs conditions, medication_classes or vaccines_planned")
    if p.in_ is not None:
        return be.isin(column, p.in_)
    if p.op is not None:
        return OPS[p.op](column, be.lit(p.value))
    raise AssertionError("schema guarantees one test per field predicate")


# ---- the assessment of one drug ----------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """A finding a row may carry: rule id, severity, and the condition (a boolean column, or a repeat count)."""

    rule: str
    severity: str
    when: Any
    repeat: Any = None


def age_bands(drug: s.DrugFile) -> list[tuple[float, float]]:
    """Age intervals [lo, hi) on which every approval age check of the drug gives the same answer."""
    cuts = sorted({a.min_age_years for a in drug.approvals if a.min_age_years is not None})
    edges = [-math.inf, *cuts, math.inf]
    return [(lo, hi) for lo, hi in pairwise(edges) if lo < hi]


def _representative(lo: float, hi: float) -> float:
    if lo == -math.inf:
        return (hi - 1.0) if hi != math.inf else 40.0
    return lo


def finding_ids(kb: KnowledgeBase) -> list[str]:
    """Every finding id the compiler can emit (for the Polars Enum of finding ids)."""
    ids = {"approval.none", "approval.indication-unknown", "approval.off-label", "approval.age-unknown",
           "approval.below-min-age", "label.none", "label.partial", "medication.unmapped", "dose.not-recorded"}
    from jakinib.safety import renal

    ids |= {f"renal.surrogate.{m}" for m in renal.NAMES}
    ids |= {f"label.not-encoded.{topic}" for topic in engine.NOT_ENCODED_APPLIES}
    ids |= {r.id for r in kb.rules}
    for d in kb.drugs.values():
        for label in d.labels:
            for item in label.screening:
                ids |= {f"screening.{item.test}", f"screening.{item.test}.positive", f"screening.{item.test}.contradiction"}
    return sorted(ids)


def assessment(kb: KnowledgeBase, drug: s.DrugFile, regulator: str, indication: str | None, be: Any,
               stage: dict[str, Any] | None = None) -> dict[str, Any]:
    """Column expressions of ``engine.assess`` for one drug under one regulator, for rows with this indication.

    With ``stage``, each rule's truth value is put there as a column of its own (``_r<i>``) and referenced, so a
    caller computes ``stage`` first and the assessment over it (each predicate is then evaluated once per row).
    """
    product = engine.choose_product(kb, drug, regulator, indication)
    label = kb.label(product.id, regulator)
    cands: list[Candidate] = []
    age = be.col("age")

    # approval and age: the engine's own function, once per age band (its answer is constant on a band)
    bands: list[tuple[Any, bool | None, list[Any]]] = []
    approved_none, none_findings = engine._approval_findings(kb, drug, product, regulator, indication, None)
    bands.append((be.is_null(age), approved_none, none_findings))
    for lo, hi in age_bands(drug):
        approved, found = engine._approval_findings(kb, drug, product, regulator, indication, _representative(lo, hi))
        cond = reduce(operator.and_, [c for c in ((age >= be.lit(lo)) if lo != -math.inf else None,
                                                  (age < be.lit(hi)) if hi != math.inf else None) if c is not None],
                      ~be.is_null(age))
        bands.append((cond, approved, found))
    by_finding: dict[tuple[str, str], list[Any]] = {}
    for cond, _, found in bands:
        for x in found:
            by_finding.setdefault((x.rule, x.severity), []).append(cond)
    for (rule, sev), conds in by_finding.items():
        cands.append(Candidate(rule, sev, reduce(operator.or_, conds) if len(conds) < len(bands) else be.lit(True)))
    approved_values = {v for _, v, _ in bands}
    approved_expr = (be.lit(next(iter(approved_values))) if len(approved_values) == 1
                     else be.when([(c, be.lit(v)) for c, v, _ in bands]))

    if label is None:
        cands.append(Candidate("label.none", "caution", be.lit(True)))
    elif label.partial:
        cands.append(Candidate("label.partial", "caution", be.lit(True)))
    for gap in label.not_encoded if label else []:  # a class clause with no rule here: said when the patient is concerned
        field, value, _ = engine.NOT_ENCODED_APPLIES[gap.topic]
        cands.append(Candidate(f"label.not-encoded.{gap.topic}", "caution", be.has(be.col(field), value)))

    # rules: fired -> the rule's status; unknown -> caution
    dose_rules: list[tuple[float, int, s.Rule, Any]] = []
    for i, rule in enumerate(kb.rules_for(product.id, regulator)):
        if rule.indications and indication not in rule.indications:
            continue
        value = predicate(rule.when, be)
        if stage is not None:
            stage[f"_r{i}"] = value
            value = be.col(f"_r{i}")
        cands.append(Candidate(rule.id, rule.status, value))
        cands.append(Candidate(rule.id, "caution", be.is_null(value)))
        if rule.dose is not None:
            dose_rules.append((rule.dose.mg * 24 / rule.dose.every_h, i, rule, value))

    # screening still missing before start
    missing_items: list[tuple[str, Any]] = []
    if label is not None:
        for item in label.screening:
            name = f"screening.{item.test}"  # a label test that is not a patient screening key is never recorded
            result = be.col(name) if f.kind_of(name) == "screening" else be.unknown().cast(be.string)
            missing = be.is_null(result) | (result == be.lit("indeterminate"))
            missing_items.append((item.test, missing))
            cands.append(Candidate(f"screening.{item.test}", "do-not-start" if item.blocking else "caution", missing))
            implying = sorted(cid for cid, term in kb.conditions.items() if term.implies_screening.get(item.test) == "positive")
            if implying:  # a negative screen contradicted by a recorded condition: the engine keeps the condition
                contradicted = reduce(operator.or_, [be.has(be.col("conditions"), cid) for cid in implying])
                cands.append(Candidate(f"screening.{item.test}.contradiction", "caution", (result == be.lit("negative")) & contradicted))
            cands.append(Candidate(f"screening.{item.test}.positive", "caution", result == be.lit("positive")))
    cands.append(Candidate("medication.unmapped", "caution", be.size(be.col("unmapped_medications")) > be.lit(0)))  # one finding
    if indication is not None and _base(label, indication) is None:
        cands.append(Candidate("dose.not-recorded", "caution", approved_expr == be.lit(True)))

    order = s.STATUS_ORDER
    cands.sort(key=lambda c: (order.index(c.severity), c.rule))
    items = [be.repeat(be.finding(c.rule), c.repeat) if c.repeat is not None
             else be.when([(c.when, be.finding(c.rule))]) for c in cands]
    severities = [be.when([(c.repeat > be.lit(0) if c.repeat is not None else c.when, be.lit(order.index(c.severity)))])
                  for c in cands]
    worst = be.least(severities) if severities else be.lit(None)
    status = be.when([(worst == be.lit(i), be.lit(name)) for i, name in enumerate(order)], be.lit("ok"))

    out = {"product": be.lit(product.id), "route": be.lit(product.route), "status": status, "approved": approved_expr,
           "findings": be.collect(items),
           "screening_missing": be.collect([be.when([(m, be.lit(t))]) for t, m in missing_items])}
    out.update(_dose(label, indication, dose_rules, be))
    return out


def covers(kb: KnowledgeBase, drug: s.DrugFile, regulator: str, indication: str | None) -> bool:
    """Whether :func:`assessment` reproduces ``engine.assess`` for this plan: no renal rules (read through
    ``safety/renal.py``'s surrogate logic) and no age/weight-banded doses. Other plans are assessed by the engine
    itself, row by row (``assess.engine_rows``)."""
    product = engine.choose_product(kb, drug, regulator, indication)
    label = kb.label(product.id, regulator)
    if any(getattr(r, "renal", None) is not None for r in kb.rules_for(product.id, regulator)):
        return False
    return label is None or not any(_banded(d) for d in label.doses)


def _banded(d: s.Dose) -> bool:
    return any(getattr(d, k, None) is not None for k in ("min_age_years", "max_age_years", "min_weight_kg", "max_weight_kg"))


def _base(label: s.Label | None, indication: str | None) -> s.Dose | None:
    if label is None or indication is None:
        return None
    return next((d for d in label.doses if d.indication == indication), None)


def _dose(label: s.Label | None, indication: str | None, dose_rules: list[tuple[float, int, s.Rule, Any]],
          be: Any) -> dict[str, Any]:
    """The engine's dose choice: the lowest daily dose among fired dose rules (first in rule order on a tie) when it is
    at most the standard dose (a ceiling; or there is none); else the standard dose for the indication."""
    base = _base(label, indication)
    base_day = base.mg * 24 / base.every_h if base and base.mg and base.every_h else None
    lower = sorted((r for r in dose_rules if base_day is None or r[0] <= base_day), key=lambda r: (r[0], r[1]))
    cases = [(value == be.lit(True), rule) for _, _, rule, value in lower]

    def pick(get: Any, fallback: Any) -> Any:
        return be.when([(c, be.lit(get(r))) for c, r in cases], be.lit(fallback))

    return {
        "dose_mg": pick(lambda r: float(r.dose.mg), float(base.mg) if base and base.mg else None),
        "dose_every_h": pick(lambda r: float(r.dose.every_h), float(base.every_h) if base and base.every_h else None),
        "dose_adjusted": pick(lambda r: True, False if base else None),
        "dose_rule": pick(lambda r: r.id, None),
    }
