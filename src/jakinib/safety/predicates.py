"""Three-valued evaluation of rule predicates over a patient's facts.

``evaluate`` returns ``(True | False | None, missing_fields)``; ``None`` means *unknown* because
an input is missing, and is never treated as a pass. Kleene logic: ``any`` is true if one child
is true, ``all`` is false if one child is false, ``not`` keeps unknown unknown.

A lab reported with a comparator (``"<0.5"``) is a :class:`Censored` value: the true value lies anywhere in
that half-line, so a comparison is true only if it holds for every value there, false only if it holds for
none, and unknown otherwise (``<0.5`` satisfies ``< 0.5`` and fails ``>= 0.5``; it leaves ``< 0.4``
unknown). Cohort tables hold the bound and the comparator in two columns (``labs.anc``, ``labs.anc.comparator``),
and ``cohort/compile.py`` evaluates them with this same logic.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any, NamedTuple

from jakinib.knowledge import fields as f
from jakinib.knowledge.schema import Predicate

Truth = bool | None


class Censored(NamedTuple):
    """A value known only as ``comparator bound``, e.g. ``Censored("<", 0.5)``."""

    comparator: str  # one of < <= > >=
    bound: float


def _censored(v: Censored, op: str, t: float) -> Truth:
    low_side = v.comparator in ("<", "<=")  # values run down from the bound
    if op in ("==", "!="):
        outside = (v.bound < t or (v.bound == t and v.comparator == "<")) if low_side else \
                  (v.bound > t or (v.bound == t and v.comparator == ">"))
        return (op == "!=") if outside else None
    same_side = (op in ("<", "<=")) == low_side
    strict = v.comparator in ("<=", ">=") and op in (("<", ">") if same_side else ("<=", ">="))
    beyond = v.bound < t if low_side else v.bound > t
    decided = beyond or (v.bound == t and not strict)
    if not decided:
        return None
    return same_side  # every value satisfies (same side) or none does (opposite side)
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


def _leaf(p: Predicate, facts: Mapping[str, Any]) -> tuple[Truth, frozenset[str]]:
    field = p.field or ""
    if f.kind_of(field) == "list":
        value = facts.get(field, ())  # an absent list means none
    elif field not in facts:
        return None, frozenset({field})
    else:
        value = facts[field]
    if p.is_ is not None:
        return value is p.is_, frozenset()
    if p.has is not None:
        return p.has in value, frozenset()
    if p.in_ is not None:
        return value in p.in_, frozenset()
    if p.op is not None:
        if isinstance(value, Censored):
            truth = _censored(value, p.op, float(p.value))  # type: ignore[arg-type]
            return truth, (frozenset({field}) if truth is None else frozenset())
        return OPS[p.op](value, p.value), frozenset()
    raise AssertionError("schema guarantees one test per field predicate")


def evaluate(p: Predicate, facts: Mapping[str, Any]) -> tuple[Truth, frozenset[str]]:
    """Evaluate a predicate; the second item names the missing fields that made it unknown."""
    if p.field is not None:
        return _leaf(p, facts)
    if p.not_ is not None:
        value, missing = evaluate(p.not_, facts)
        return (None if value is None else not value), missing
    children = [evaluate(c, facts) for c in (p.all if p.all is not None else p.any or [])]
    values = [v for v, _ in children]
    missing = frozenset().union(*(m for v, m in children if v is None)) if children else frozenset()
    if p.all is not None:
        if False in values:
            return False, frozenset()
        return (None, missing) if None in values else (True, frozenset())
    if True in values:
        return True, frozenset()
    return (None, missing) if None in values else (False, frozenset())
