"""One compiler, two backends: rule predicates and the checker's assessment as column expressions.

``predicate`` walks the same :class:`~jakinib.knowledge.schema.Predicate` trees ``safety/predicates.py`` evaluates
for one patient, and emits a column expression; Polars and Spark both have Kleene null semantics (``null & false``
is false, ``null | true`` is true, ``~null`` is null), so *unknown* stays unknown exactly as in the checker.

``plan`` compiles what ``safety/engine.py``'s ``assess`` does for one drug, one regulator and one indication: the
approval and age check (the engine's own function, evaluated once per age band), label-level findings, every rule
(fired -> its status, unknown -> caution; renal rules read as ``safety/renal.py`` reads them: the label's measure or a
flagged surrogate, de-indexed eGFR, the conservative band near a cut-off), screening still missing, unmapped medicines,
the worst status and the dose (the engine's choice over the label's age/weight dose bands: a renal 'not recommended',
a renal adjustment in words, the lowest structured dose at most the standard one; withheld while a renal input is
missing; the face-value candidate beside it). A plan is a list of boolean conditions and a ``build`` that makes every
output from them, so an engine may build once per distinct combination of conditions (``assess.py``) or per row
(``assessment``, Spark). Findings come out in the engine's order (severity, then rule id) without a per-row sort.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from itertools import pairwise
from typing import Any

from jakinib.knowledge import fields as f
from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety import engine, renal

WORD = 64
"""Bits in a packed word of conditions (``words``)."""
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


class PolarsBackend:
    """Column expressions for Polars."""

    name = "polars"

    def __init__(self, finding_ids: Sequence[str] = ()) -> None:
        import polars as pl

        self.pl = pl
        self.string = pl.String
        self.ids = pl.Enum(sorted(set(finding_ids))) if finding_ids else pl.String
        self.bounded: set[str] | None = None
        """The comparator columns that hold a bound in the table (None: not known); a lab leaf whose comparator
        column has none is compiled as a plain comparison."""
        self.leaves: dict[str, tuple[str, Any]] | None = None
        """When a dict, each distinct predicate leaf is named once (``_l<n>``) and referenced by that name, so a
        caller computes every leaf once per row for all the plans that share it."""

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

    def coalesce(self, *items: Any) -> Any:
        return self.pl.coalesce(*items)

    def null_number(self) -> Any:
        return self.pl.lit(None, dtype=self.pl.Float64)

    def collect(self, items: Sequence[Any]) -> Any:
        """A list column of the non-null items (each a scalar or a list expression)."""
        if not items:
            return self.pl.lit([], dtype=self.pl.List(self.ids))
        return self.pl.concat_list(items).list.drop_nulls()

    def size(self, column: Any) -> Any:
        return column.list.len()

    def words(self, conds: Sequence[Any], prefix: str = "_w") -> list[Any]:
        """Conditions packed into the bits of ``UInt64`` words ``_w0, _w1, ...`` (bit k of word j: condition 64j+k)."""
        pl = self.pl
        one, zero = (lambda k: pl.lit(1 << k, dtype=pl.UInt64)), pl.lit(0, dtype=pl.UInt64)
        return [pl.sum_horizontal([pl.when(w).then(one(k)).otherwise(zero) for k, w in enumerate(conds[j:j + WORD])])
                .alias(f"{prefix}{j // WORD}") for j in range(0, len(conds), WORD)]


class Sql:
    """A Spark SQL expression as text, with the operators of a Column (every binary operation parenthesised, so the
    evaluation order is the expression's own). Building text costs microseconds where each Column operation is a call
    into the JVM; Spark parses a whole column at once (``SparkBackend.select``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def _op(self, op: str, other: Any, right: bool = False) -> Sql:
        a, b = self.text, _sql(other).text
        return Sql(f"({b} {op} {a})" if right else f"({a} {op} {b})")

    def __and__(self, other: Any) -> Sql:
        return self._op("AND", other)

    def __or__(self, other: Any) -> Sql:
        return self._op("OR", other)

    def __invert__(self) -> Sql:
        return Sql(f"(NOT {self.text})")

    def __eq__(self, other: Any) -> Sql:  # type: ignore[override]
        return self._op("=", other)

    def __ne__(self, other: Any) -> Sql:  # type: ignore[override]
        return Sql(f"(NOT ({self.text} = {_sql(other).text}))")

    def __lt__(self, other: Any) -> Sql:
        return self._op("<", other)

    def __le__(self, other: Any) -> Sql:
        return self._op("<=", other)

    def __gt__(self, other: Any) -> Sql:
        return self._op(">", other)

    def __ge__(self, other: Any) -> Sql:
        return self._op(">=", other)

    def __add__(self, other: Any) -> Sql:
        return self._op("+", other)

    def __radd__(self, other: Any) -> Sql:
        return self._op("+", other, right=True)

    def __sub__(self, other: Any) -> Sql:
        return self._op("-", other)

    def __rsub__(self, other: Any) -> Sql:
        return self._op("-", other, right=True)

    def __mul__(self, other: Any) -> Sql:
        return self._op("*", other)

    def __rmul__(self, other: Any) -> Sql:
        return self._op("*", other, right=True)

    def __truediv__(self, other: Any) -> Sql:
        return self._op("/", other)

    def __rtruediv__(self, other: Any) -> Sql:
        return self._op("/", other, right=True)

    def __pow__(self, other: Any) -> Sql:
        return Sql(f"power({self.text}, {_sql(other).text})")

    __hash__ = None  # type: ignore[assignment]

    def cast(self, to: str) -> Sql:
        return Sql(f"CAST({self.text} AS {to})")

    def alias(self, name: str) -> Any:
        """A pyspark Column of this expression named ``name``."""
        from pyspark.sql import functions as F

        return F.expr(f"{self.text} AS `{name}`")


def _sql(value: Any) -> Sql:
    """A Python value as a Spark SQL literal (types as ``F.lit`` gives them: int, bigint, double, string, boolean)."""
    if isinstance(value, Sql):
        return value
    if value is None:
        return Sql("NULL")
    if isinstance(value, bool):
        return Sql("TRUE" if value else "FALSE")
    if isinstance(value, int):
        return Sql(str(value) if -(1 << 31) <= value < (1 << 31) else f"{value}L")
    if isinstance(value, float):
        return Sql(f"{value!r}D" if math.isfinite(value) else f"CAST('{value}' AS DOUBLE)")
    if isinstance(value, str):
        return Sql("'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'")
    raise TypeError(f"no Spark SQL literal for {value!r}")


class SparkBackend:
    """Spark SQL expressions (:class:`Sql`; column names hold dots, so they are back-quoted)."""

    name = "spark"

    def __init__(self, finding_ids: Sequence[str] = ()) -> None:
        self.bounded: set[str] | None = None  # as PolarsBackend.bounded
        self.leaves: dict[str, tuple[str, Any]] | None = None  # as PolarsBackend.leaves

    @staticmethod
    def select(df: Any, columns: dict[str, Sql], keep: bool = True) -> Any:
        """``df`` with these columns (after its own when ``keep``): one parse of each column's text in the JVM."""
        return df.selectExpr(*(["*"] if keep else []), *[f"{e.text} AS `{k}`" for k, e in columns.items()])

    def col(self, name: str) -> Sql:
        return Sql(f"`{name}`")

    def lit(self, value: Any) -> Sql:
        return _sql(value)

    string = "string"

    def unknown(self) -> Sql:
        return Sql("CAST(NULL AS BOOLEAN)")

    def finding(self, rule_id: str) -> Sql:
        return _sql(rule_id)

    def when(self, cases: Sequence[tuple[Any, Any]], otherwise: Any = None) -> Sql:
        if not cases:
            return _sql(otherwise)
        arms = " ".join(f"WHEN {_sql(c).text} THEN {_sql(v).text}" for c, v in cases)
        return Sql(f"CASE {arms} ELSE {_sql(otherwise).text} END")

    def has(self, column: Sql, value: str) -> Sql:
        return Sql(f"array_contains({column.text}, {_sql(value).text})")

    def isin(self, column: Sql, values: Sequence[Any]) -> Sql:
        if not values:
            return Sql("FALSE")  # Spark's In over an empty list
        return Sql(f"({column.text} IN ({', '.join(_sql(v).text for v in values)}))")

    def is_null(self, column: Sql) -> Sql:
        return Sql(f"({_sql(column).text} IS NULL)")

    def least(self, items: Sequence[Any]) -> Sql:
        return _sql(items[0]) if len(items) == 1 else Sql(f"least({', '.join(_sql(x).text for x in items)})")

    def coalesce(self, *items: Any) -> Sql:
        return Sql(f"coalesce({', '.join(_sql(x).text for x in items)})")

    def null_number(self) -> Sql:
        return Sql("CAST(NULL AS DOUBLE)")

    def collect(self, items: Sequence[Any]) -> Sql:
        if not items:
            return Sql("CAST(array() AS ARRAY<STRING>)")
        return Sql(f"array_compact(concat({', '.join(f'array(CAST({_sql(x).text} AS STRING))' for x in items)}))")

    def size(self, column: Sql) -> Sql:
        return Sql(f"size({column.text})")

    def words(self, conds: Sequence[Any], prefix: str = "_w") -> dict[str, Sql]:
        """As ``PolarsBackend.words``, in signed 64-bit longs (bit 63 is the sign bit: read them back as unsigned),
        by name."""
        def bit(k: int) -> str:
            return f"{1 << k}L" if k < WORD - 1 else f"shiftleft(1L, {k})"

        def either(terms: list[str]) -> str:  # a balanced OR tree (shallow expressions)
            while len(terms) > 1:
                terms = [f"({terms[i]} | {terms[i + 1]})" if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
            return terms[0]

        return {f"{prefix}{j // WORD}": Sql(either([f"CASE WHEN {_sql(w).text} THEN {bit(k)} ELSE 0L END"
                                                     for k, w in enumerate(conds[j:j + WORD])]))
                for j in range(0, len(conds), WORD)}


def backend(name: str, finding_ids: Sequence[str] = ()) -> PolarsBackend | SparkBackend:
    return PolarsBackend(finding_ids) if name == "polars" else SparkBackend(finding_ids)


# ---- predicates -------------------------------------------------------------------------------

def predicate(p: s.Predicate, be: Any, values: dict[str, Any] | None = None) -> Any:
    """A Kleene-valued boolean column expression for one predicate tree (null = unknown); ``values`` replaces the
    column of a field by an expression (the renal reading a rule is evaluated with)."""
    if p.field is not None:
        return _leaf(p, be, values or {})
    if p.not_ is not None:
        return ~predicate(p.not_, be, values)
    children = [predicate(c, be, values) for c in (p.all if p.all is not None else p.any or [])]
    if not children:
        return be.lit(p.all is not None)  # all([]) is true, any([]) false, as in predicates.py
    return reduce(operator.and_ if p.all is not None else operator.or_, children)


def missing_any(p: s.Predicate, fields: set[str], be: Any, values: dict[str, Any] | None = None) -> Any:
    """Whether ``p`` is unknown with one of ``fields`` among the missing fields ``predicates.evaluate`` names
    (an unknown all/any names the missing fields of its unknown children)."""
    if p.field is not None:
        if p.field not in fields or f.kind_of(p.field) == "list":
            return be.lit(False)
        return be.is_null(_leaf(p, be, values or {}))
    if p.not_ is not None:
        return missing_any(p.not_, fields, be, values)
    children = [c for c in (p.all if p.all is not None else p.any or [])]
    inner = [missing_any(c, fields, be, values) for c in children]
    if not inner:
        return be.lit(False)
    return be.is_null(predicate(p, be, values)) & reduce(operator.or_, inner)


def _leaf(p: s.Predicate, be: Any, values: dict[str, Any]) -> Any:
    leaves = getattr(be, "leaves", None)
    if leaves is None or values:
        return _leaf_expr(p, be, values)
    key = repr((p.field, p.op, p.value, p.has, p.in_, p.is_))
    if key not in leaves:
        leaves[key] = (f"_l{len(leaves)}", _leaf_expr(p, be, values))
    return be.col(leaves[key][0])


def _leaf_expr(p: s.Predicate, be: Any, values: dict[str, Any]) -> Any:
    field = p.field or ""
    kind = f.kind_of(field)
    if kind is None:
        return be.unknown()  # predicates.py: a field that is never in the facts is unknown
    column = values[field] if field in values else be.col(field)
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
        plain = OPS[p.op](column, be.lit(p.value))
        if not field.startswith("labs."):
            return plain
        cmp_name = f"{field}.comparator"
        cmp = values.get(cmp_name) if field in values else _comparator(be, cmp_name)
        return plain if cmp is None else _censorable(plain, column, cmp, p.op, float(p.value), be)  # type: ignore[arg-type]
    raise AssertionError("schema guarantees one test per field predicate")


def _comparator(be: Any, name: str) -> Any:
    """The comparator column ``name``, or None when the backend knows the table has no bound in it (``be.bounded``:
    the comparator columns with a value; absent = not known, so every lab leaf reads its comparator)."""
    bounded = getattr(be, "bounded", None)
    return None if bounded is not None and name not in bounded else be.col(name)


def _censorable(plain: Any, v: Any, cmp: Any, op: str, t: float, be: Any) -> Any:
    """``v op t`` where ``cmp`` (a comparator column, null = exact) may say ``v`` is only a bound: ``predicates._censored``
    as columns (true if every value beyond the bound satisfies it, false if none does, else unknown)."""
    cases = [(be.is_null(cmp), plain)]
    for c in ("<", "<=", ">", ">="):
        low_side = c in ("<", "<=")
        if op in ("==", "!="):
            outside = ((v < be.lit(t)) | ((v == be.lit(t)) & be.lit(c == "<"))) if low_side else \
                      ((v > be.lit(t)) | ((v == be.lit(t)) & be.lit(c == ">")))
            truth = be.when([(outside, be.lit(op == "!="))], be.unknown())
        else:
            same_side = (op in ("<", "<=")) == low_side
            strict = c in ("<=", ">=") and op in (("<", ">") if same_side else ("<=", ">="))
            beyond = v < be.lit(t) if low_side else v > be.lit(t)
            decided = beyond | ((v == be.lit(t)) & be.lit(not strict))
            truth = be.when([(decided, be.lit(same_side))], be.unknown())
        cases.append((cmp == be.lit(c), truth))
    return be.when(cases, be.unknown())


# ---- the assessment of one drug ----------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """A finding a row may carry: rule id, severity, and its condition (an index into the plan's conditions)."""

    rule: str
    severity: str
    when: Any


@dataclass
class Plan:
    """The compiled assessment of one drug under one regulator for one indication.

    Every output depends on a row only through ``conditions`` (boolean columns; unknown counts as not holding), and
    ``build`` makes the outputs from those conditions or from equivalent ones (e.g. bits of a packed word), so an
    engine may evaluate ``build`` once per distinct combination of conditions instead of once per row.
    """

    product: str
    route: str
    conditions: list[Any]
    build: Callable[[Any, Sequence[Any]], dict[str, Any]]
    candidates: list[Candidate]            # in the engine's order; ``when`` is an index into ``conditions``
    missing: list[tuple[str, int]]          # (screening test, index of its 'missing' condition)


class _Conds:
    """The conditions of a plan, by index (each coalesced to false: unknown is not holding)."""

    def __init__(self, be: Any) -> None:
        self.be, self.exprs = be, []

    def add(self, expr: Any) -> int:
        self.exprs.append(self.be.coalesce(expr, self.be.lit(False)))
        return len(self.exprs) - 1


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


def plan(kb: KnowledgeBase, drug: s.DrugFile, regulator: str, indication: str | None, be: Any,
         stage: list[dict[str, Any]] | None = None, tag: str = "") -> Plan:
    """The compiled ``engine.assess`` for one drug under one regulator, for rows with this indication.

    With ``stage`` (a list of three empty dicts), the renal readings (layers 0 and 1) and each rule's truth value
    (layer 2, ``_r<i>``) are put there as columns of their own and referenced, so a caller computes the layers in
    order and the assessment over them (each predicate is then evaluated once per row); ``tag`` starts their names,
    so the layers of several plans can share one frame.
    """
    product = engine.choose_product(kb, drug, regulator, indication)
    label = kb.label(product.id, regulator)
    cands: list[Candidate] = []
    conds = _Conds(be)
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
    for (rule, sev), where in by_finding.items():
        cands.append(Candidate(rule, sev, conds.add(reduce(operator.or_, where) if len(where) < len(bands) else be.lit(True))))
    approved_values = {v for _, v, _ in bands}
    approved_expr = (be.lit(next(iter(approved_values))) if len(approved_values) == 1
                     else be.when([(c, be.lit(v)) for c, v, _ in bands]))
    approved_true, approved_false = conds.add(approved_expr == be.lit(True)), conds.add(approved_expr == be.lit(False))

    if label is None:
        cands.append(Candidate("label.none", "caution", conds.add(be.lit(True))))
    elif label.partial:
        cands.append(Candidate("label.partial", "caution", conds.add(be.lit(True))))
    for gap in label.not_encoded if label else []:  # a class clause with no rule here: said when the patient is concerned
        field, value, _ = engine.NOT_ENCODED_APPLIES[gap.topic]
        cands.append(Candidate(f"label.not-encoded.{gap.topic}", "caution", conds.add(be.has(be.col(field), value))))

    # rules: fired -> the rule's status; unknown -> caution. Renal rules read the value renal.decide reads them with.
    rules = [(i, r) for i, r in enumerate(kb.rules_for(product.id, regulator))
             if not r.indications or indication in r.indications]
    renal_plan = _renal(rules, be, stage, tag)
    fired: dict[int, int] = {}
    for i, rule in rules:
        value = renal_plan.values[i] if rule.renal is not None else predicate(rule.when, be)
        if stage is not None:
            stage[2][f"_{tag}r{i}"] = value
            value = be.col(f"_{tag}r{i}")
        fired[i] = conds.add(value)
        cands.append(Candidate(rule.id, rule.status, fired[i]))
        cands.append(Candidate(rule.id, "caution", conds.add(be.is_null(value))))
    for measure, cond in renal_plan.surrogate.items():
        cands.append(Candidate(f"renal.surrogate.{measure}", "caution", conds.add(cond)))

    # screening still missing before start
    missing_items: list[tuple[str, int]] = []
    if label is not None:
        for item in label.screening:
            name = f"screening.{item.test}"  # a label test that is not a patient screening key is never recorded
            result = be.col(name) if f.kind_of(name) == "screening" else be.unknown().cast(be.string)
            missing = conds.add(be.is_null(result) | (result == be.lit("indeterminate")))
            missing_items.append((item.test, missing))
            cands.append(Candidate(f"screening.{item.test}", "do-not-start" if item.blocking else "caution", missing))
            implying = sorted(cid for cid, term in kb.conditions.items() if term.implies_screening.get(item.test) == "positive")
            if implying:  # a negative screen contradicted by a recorded condition: the engine keeps the condition
                contradicted = reduce(operator.or_, [be.has(be.col("conditions"), cid) for cid in implying])
                cands.append(Candidate(f"screening.{item.test}.contradiction", "caution",
                                       conds.add((result == be.lit("negative")) & contradicted)))
            cands.append(Candidate(f"screening.{item.test}.positive", "caution", conds.add(result == be.lit("positive"))))
    cands.append(Candidate("medication.unmapped", "caution", conds.add(be.size(be.col("unmapped_medications")) > be.lit(0))))
    bases = [(conds.add(fits), d) for fits, d in _bases(label, indication, be)]
    if indication is not None:
        no_base = reduce(operator.and_, [~conds.exprs[k] for k, _ in bases], be.lit(True))
        cands.append(Candidate("dose.not-recorded", "caution", conds.add((approved_expr == be.lit(True)) & no_base)))
    face = {i: conds.add(v) for i, v in renal_plan.face.items()}
    unresolved, changed = conds.add(renal_plan.unresolved), conds.add(renal_plan.changed)
    cands.sort(key=lambda c: (s.STATUS_ORDER.index(c.severity), c.rule))

    def build(be: Any, holds: Sequence[Any]) -> dict[str, Any]:
        order = s.STATUS_ORDER
        items = [be.when([(holds[c.when], be.finding(c.rule))]) for c in cands]
        severities = [be.when([(holds[c.when], be.lit(order.index(c.severity)))]) for c in cands]
        worst = be.least(severities) if severities else be.lit(None)
        return {
            "product": be.lit(product.id), "route": be.lit(product.route),
            "status": be.when([(worst == be.lit(i), be.lit(name)) for i, name in enumerate(order)], be.lit("ok")),
            "approved": be.when([(holds[approved_true], be.lit(True)), (holds[approved_false], be.lit(False))], be.lit(None)),
            "findings": be.collect(items),
            "screening_missing": be.collect([be.when([(holds[k], be.lit(t))]) for t, k in missing_items]),
            **_dose(rules, {i: holds[k] for i, k in fired.items()}, {i: holds[k] for i, k in face.items()}, holds[unresolved],
                    holds[changed], [(holds[k], d) for k, d in bases], be),
        }

    return Plan(product.id, product.route, conds.exprs, build, cands, missing_items)


def assessment(kb: KnowledgeBase, drug: s.DrugFile, regulator: str, indication: str | None, be: Any,
               stage: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Column expressions of ``engine.assess`` (see :func:`plan`): product, route, status, approved, findings,
    screening_missing and the dose columns."""
    p = plan(kb, drug, regulator, indication, be, stage)
    return p.build(be, p.conditions)


# ---- renal rules, as safety/renal.py reads them -------------------------------------------------

@dataclass
class RenalPlan:
    """The renal rules of one plan as columns: each rule's value at the reading ``renal.decide`` applies (``values``)
    and at face value (``face``), the surrogate findings per measure, whether a near cut-off changed an answer
    (``changed``) and whether a renal input is missing (``unresolved``)."""

    values: dict[int, Any]
    face: dict[int, Any]
    surrogate: dict[str, Any]
    changed: Any
    unresolved: Any


def _reading(basis: s.RenalBasis, cuts: tuple[float, ...], be: Any) -> tuple[Any, Any, Any]:
    """(value, surrogate, comparator) columns of ``renal.read`` for one basis: the value rules on it are read with,
    whether that value is the other measure (or an indexed eGFR for a de-indexed label) standing in for the label's,
    and the comparator of the lab the value comes from (null: exact)."""
    crcl, egfr = be.col("labs.crcl"), be.col("labs.egfr")
    c_cmp, e_cmp = _comparator(be, "labs.crcl.comparator"), _comparator(be, "labs.egfr.comparator")

    def bound_of(first: Any, a: Any, b: Any) -> Any:  # the comparator of a if ``first`` else of b (None: no bounds)
        if a is None and b is None:
            return None
        return be.when([(first, a if a is not None else be.lit(None))], b if b is not None else be.lit(None))

    if basis.measure == "crcl":
        return be.coalesce(crcl, egfr), be.is_null(crcl) & ~be.is_null(egfr), bound_of(~be.is_null(crcl), c_cmp, e_cmp)
    by_crcl = be.is_null(egfr) & ~be.is_null(crcl)
    cmp = bound_of(be.is_null(egfr), c_cmp, e_cmp)
    if basis.indexed is True:
        return be.coalesce(egfr, crcl), by_crcl, cmp
    w, h = be.col("weight_kg"), be.col("height_cm")
    body = ~be.is_null(w) & ~be.is_null(h) & (w != be.lit(0.0)) & (h != be.lit(0.0))
    absolute = be.when([(body, renal.deindexed(egfr, renal.bsa_terms(w, h)))], be.null_number())
    use_abs = ~be.is_null(absolute) if basis.indexed is False else be.coalesce(absolute < egfr, be.lit(False))
    value = be.when([(be.is_null(egfr), crcl), (use_abs, absolute)], egfr)
    if basis.indexed is False:  # no body size: the indexed eGFR stands in for the de-indexed one
        return value, by_crcl | (~be.is_null(egfr) & ~be.coalesce(use_abs, be.lit(False))), cmp
    return value, by_crcl, cmp


def _renal(rules: list[tuple[int, s.Rule]], be: Any, stage: list[dict[str, Any]] | None, tag: str = "") -> RenalPlan:
    """``renal.decide`` as columns: rules grouped by (measure, indexed), each group read once, its cut-offs from
    ``renal.thresholds`` and the surrogate margin from ``renal.margin``."""
    groups: dict[tuple[str, bool | None], list[tuple[int, s.Rule]]] = {}
    for i, rule in rules:
        if rule.renal is not None:
            groups.setdefault((rule.renal.measure, rule.renal.indexed), []).append((i, rule))
    plan = RenalPlan({}, {}, {}, be.lit(False), be.lit(False))
    for g, ((measure, _), group) in enumerate(groups.items()):
        name = f"labs.{measure}"
        cuts = renal.thresholds([r for _, r in group], name)
        value, surrogate, cmp = _reading(group[0][1].renal, cuts, be)  # type: ignore[arg-type]
        if stage is not None:
            stage[0].update({f"_{tag}g{g}v": value, f"_{tag}g{g}s": surrogate, **({} if cmp is None else {f"_{tag}g{g}c": cmp})})
            value, surrogate = be.col(f"_{tag}g{g}v"), be.col(f"_{tag}g{g}s")
            cmp = None if cmp is None else be.col(f"_{tag}g{g}c")
        lo, hi = renal.margin(value)
        near = surrogate & reduce(operator.or_, [(lo <= be.lit(t)) & (be.lit(t) <= hi) for t in cuts], be.lit(False))
        applied = be.when([(near, lo)], value)
        if stage is not None:
            stage[1][f"_{tag}g{g}n"], stage[1][f"_{tag}g{g}a"] = near, applied
            near, applied = be.col(f"_{tag}g{g}n"), be.col(f"_{tag}g{g}a")
        nulls = {other: be.null_number() for other in renal.RENAL_FIELDS}
        for i, rule in group:
            at_applied, at_face = {**nulls, name: applied, f"{name}.comparator": cmp}, {**nulls, name: value, f"{name}.comparator": cmp}
            plan.values[i] = predicate(rule.when, be, at_applied)
            plan.face[i] = predicate(rule.when, be, at_face)
            plan.unresolved = plan.unresolved | missing_any(rule.when, {*renal.RENAL_FIELDS, name}, be, at_applied)
            differs = be.coalesce(plan.face[i], be.lit(False)) != be.coalesce(plan.values[i], be.lit(False))
            plan.changed = plan.changed | (near & differs)
        plan.surrogate[measure] = plan.surrogate[measure] | surrogate if measure in plan.surrogate else surrogate
    return plan


# ---- the dose -----------------------------------------------------------------------------------

def _bases(label: s.Label | None, indication: str | None, be: Any) -> list[tuple[Any, s.Dose]]:
    """The label's doses for the indication, each with the column saying its age/weight band fits (``Dose.fits``
    is True); the engine takes the first that fits."""
    if label is None or indication is None:
        return []
    out = []
    for d in label.doses:
        if d.indication != indication:
            continue
        conds = []
        for field, lo, hi in (("age", d.min_age_years, d.max_age_years), ("weight_kg", d.min_weight_kg, d.max_weight_kg)):
            if lo is not None:
                conds.append(be.col(field) >= be.lit(float(lo)))
            if hi is not None:
                conds.append(be.col(field) < be.lit(float(hi)))
        out.append((reduce(operator.and_, conds) if conds else be.lit(True), d))
    return out


def _mg_day(mg: float | None, every_h: float | None) -> float | None:
    return mg * 24 / every_h if mg and every_h else None


DOSE_KEYS = ("mg", "every_h", "adjusted", "rule")


def _choice(base: s.Dose | None, fired: list[tuple[s.Rule, Any]], be: Any) -> tuple[list[tuple[Any, tuple]], tuple]:
    """``engine._dose_for`` as when-cases: (condition, (mg, every_h, adjusted, rule id)) in the order the engine
    decides (a renal 'not recommended', a renal adjustment in words, the lowest structured dose at most the standard
    one, first in ``fired`` order on a tie), and the fallback (the standard dose, or None)."""
    from jakinib.safety.engine import NOT_RECOMMENDED

    cases: list[tuple[Any, tuple]] = []
    for r, v in fired:
        if r.renal is not None and r.dose is None and r.status in NOT_RECOMMENDED:
            cases.append((v, (None, None, True, r.id)))
    for r, v in fired:
        if r.renal is not None and r.dose is None:
            cases.append((v, (None, None, True, r.id)))
    base_day = _mg_day(base.mg, base.every_h) if base else None
    actions = [(k, r, v) for k, (r, v) in enumerate(fired) if r.dose is not None]
    for _, r, v in sorted(actions, key=lambda a: (a[1].dose.mg * 24 / a[1].dose.every_h, a[0])):  # type: ignore[union-attr]
        assert r.dose is not None
        if base_day is None or r.dose.mg * 24 / r.dose.every_h <= base_day:  # a rule dose equal to the usual one is a ceiling
            cases.append((v, (float(r.dose.mg), float(r.dose.every_h), True, r.id)))
    fallback = (None, None, None, None) if base is None else (base.mg, base.every_h, False, None)
    return cases, fallback


def _pick(bases: list[tuple[Any, s.Dose]], fired: list[tuple[s.Rule, Any]], be: Any) -> dict[str, Any]:
    """The chosen dose's columns, over the base doses (the first band that fits; none fits -> no base)."""
    options = [(fits, _choice(d, fired, be)) for fits, d in bases] + [(None, _choice(None, fired, be))]
    out = {}
    for k, key in enumerate(DOSE_KEYS):
        def col(cases: list[tuple[Any, tuple]], fallback: tuple, k: int = k) -> Any:
            return be.when([(c, _lit(o[k], be)) for c, o in cases], _lit(fallback[k], be))
        exprs = [(fits, col(*choice)) for fits, choice in options]
        last = exprs.pop()[1]
        out[key] = be.when(exprs, last) if exprs else last
    return out


def _lit(value: Any, be: Any) -> Any:
    if value is None:
        return be.lit(None)
    return be.lit(float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value)


def _dose(rules: list[tuple[int, s.Rule]], fired: dict[int, Any], face: dict[int, Any], unresolved: Any, changed: Any,
          bases: list[tuple[Any, s.Dose]], be: Any) -> dict[str, Any]:
    """``engine._dose`` from conditions (rule i fired, fired at face value, a renal input missing, a near cut-off
    changed a renal answer, base dose b fits): the dose for the fired rules; withheld while a renal input is missing
    (unless another rule already lowered it); beside it the face-value candidate when a near cut-off changed a renal
    answer."""
    by_id = dict(rules)
    chosen = _pick(bases, [(r, fired[i]) for i, r in rules], be)
    # engine: non-renal fired rules first, then the renal ones at face value (group order, then rule order)
    at_face = _pick(bases, [(r, fired[i]) for i, r in rules if r.renal is None] + [(by_id[i], face[i]) for i in face], be)
    withheld = unresolved & ~be.coalesce(chosen["adjusted"], be.lit(False))
    candidates = changed & ~unresolved & ~be.is_null(chosen["adjusted"])
    return {
        "dose_mg": be.when([(withheld, be.null_number())], chosen["mg"]),
        "dose_every_h": be.when([(withheld, be.null_number())], chosen["every_h"]),
        "dose_adjusted": be.when([(withheld, be.lit(False))], chosen["adjusted"]),
        "dose_rule": be.when([(withheld, be.lit(None).cast(be.string))], chosen["rule"]),
        "dose_withheld": withheld,
        "dose_face_mg": be.when([(candidates, at_face["mg"])], be.null_number()),
        "dose_face_every_h": be.when([(candidates, at_face["every_h"])], be.null_number()),
    }
