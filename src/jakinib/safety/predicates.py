"""Three-valued evaluation of rule predicates over a patient's facts.

``evaluate`` returns ``(True | False | None, missing_fields)``; ``None`` means *unknown* because
an input is missing, and is never treated as a pass. Kleene logic: ``any`` is true if one child
is true, ``all`` is false if one child is false, ``not`` keeps unknown unknown.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from jakinib.knowledge import fields as f
from jakinib.knowledge.schema import Predicate

Truth = bool | None
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
