"""Every drug for every row of a cohort table, on Polars: the compiled assessment, one plan per
(regulator, indication) partition, evaluated lazily in parallel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from jakinib.cohort import compile as c
from jakinib.knowledge.base import KnowledgeBase

OUTPUT = ("id", "regulator", "drug", "product", "route", "status", "approved", "findings", "screening_missing",
          "dose_mg", "dose_every_h", "dose_adjusted", "dose_rule")


def with_regulators(df: Any, regulators: Sequence[str]) -> Any:
    """Rows with a regulator of their own keep it; the others are screened under each of ``regulators``."""
    import polars as pl

    own = df.filter(pl.col("regulator").is_not_null())
    rest = df.filter(pl.col("regulator").is_null()).drop("regulator")
    regs = pl.DataFrame({"regulator": list(regulators)}, schema={"regulator": pl.String})
    return pl.concat([own, rest.join(regs, how="cross").select(df.columns)])


def assess(kb: KnowledgeBase, df: Any, drugs: Sequence[str], regulators: Sequence[str], keep: Sequence[str] = (),
           today: dt.date | None = None) -> Any:
    """One row per patient x regulator x drug with the checker's status, finding ids, screening missing and dose.

    Plans the compiler covers (``compile.covers``) run as column expressions; the others (renal surrogate reading,
    age/weight-banded doses) are assessed by ``safety/engine.py`` itself, row by row.
    """
    import polars as pl

    be = c.PolarsBackend(c.finding_ids(kb))
    df = with_regulators(df, regulators)
    frames = []
    for (reg, ind), part in df.group_by(["regulator", "indication"]):
        lazy = part.lazy()
        for name in drugs:
            if not c.covers(kb, kb.drugs[name], reg, ind):
                frames.append(engine_rows(kb, part, name, reg, ind, keep, today or dt.date.today(), be).lazy())
                continue
            stage: dict[str, Any] = {}
            exprs = c.assessment(kb, kb.drugs[name], reg, ind, be, stage)
            frames.append(lazy.with_columns(**stage).select(pl.col("id"), pl.col("regulator"), pl.lit(name).alias("drug"),
                                      *[e.alias(k) for k, e in exprs.items()], *[pl.col(k) for k in keep]))
    if not frames:
        return empty(be, keep, df)
    schema = empty(be, keep, df).schema
    out = pl.concat([f.select(list(schema)).cast(dict(schema)) for f in pl.collect_all(frames)], how="vertical_relaxed")
    return out.sort(["id", "regulator", "drug"])


def empty(be: Any, keep: Sequence[str], df: Any) -> Any:
    import polars as pl

    schema = {"id": pl.String, "regulator": pl.String, "drug": pl.String, "product": pl.String, "route": pl.String,
              "status": pl.String, "approved": pl.Boolean, "findings": pl.List(be.ids), "screening_missing": pl.List(pl.String),
              "dose_mg": pl.Float64, "dose_every_h": pl.Float64, "dose_adjusted": pl.Boolean, "dose_rule": pl.String}
    schema.update({k: df.schema[k] for k in keep})
    return pl.DataFrame(schema=schema)


# ---- the engine on the plans the compiler does not cover, once per distinct decision-relevant input -----------

def _leaves(p: Any) -> Any:
    if p.field is not None:
        yield p
    for child in [*(p.all or []), *(p.any or []), *([p.not_] if p.not_ is not None else [])]:
        yield from _leaves(child)


def _plan_inputs(kb: KnowledgeBase, drug: Any, regulator: str, indication: str | None) -> dict[str, Any]:
    """What the engine reads for this plan: numeric fields with every cut-off they are compared with (predicates,
    approval ages, dose bands; renal readings also at the surrogate margin), the list values predicates test, the
    label's screening tests, and whether eGFR may be de-indexed (then body size is read exactly)."""
    from jakinib.safety import engine, renal

    product = engine.choose_product(kb, drug, regulator, indication)
    label = kb.label(product.id, regulator)
    rules = [r for r in kb.rules_for(product.id, regulator) if not r.indications or indication in r.indications]
    cuts: dict[str, set[float]] = {"age": {a.min_age_years for a in drug.approvals if a.min_age_years is not None}, "weight_kg": set()}
    lists: dict[str, set[str]] = {"conditions": set(), "medication_classes": set(), "vaccines_planned": set()}
    scalars: set[str] = set()
    for rule in rules:
        for leaf in _leaves(rule.when):
            if leaf.has is not None and leaf.field in lists:
                lists[leaf.field].add(leaf.has)
            elif leaf.op is not None and isinstance(leaf.value, (int, float)) and not isinstance(leaf.value, bool):
                cuts.setdefault(leaf.field, set()).add(float(leaf.value))
            else:
                scalars.add(leaf.field)
    for d in (label.doses if label else []):
        for k, field in (("min_age_years", "age"), ("max_age_years", "age"), ("min_weight_kg", "weight_kg"), ("max_weight_kg", "weight_kg")):
            if getattr(d, k, None) is not None:
                cuts[field].add(float(getattr(d, k)))
    renal_rules = [r for r in rules if getattr(r, "renal", None) is not None]
    if renal_rules:
        m = renal.SURROGATE_MARGIN
        both = cuts.get("labs.crcl", set()) | cuts.get("labs.egfr", set())
        for field in renal.RENAL_FIELDS:  # a surrogate is compared with the other measure's cut-offs, and near them at +-m
            cuts[field] = both | {t / (1 - m) for t in both} | {t / (1 + m) for t in both}
    for gap in label.not_encoded if label else []:
        field, value, _ = engine.NOT_ENCODED_APPLIES[gap.topic]
        lists[field].add(value)
    tests = [i.test for i in label.screening] if label else []
    for t in tests:
        lists["conditions"] |= {cid for cid, term in kb.conditions.items() if term.implies_screening.get(t) == "positive"}
    deindex = any(r.renal.measure == "egfr" and r.renal.indexed is not True for r in renal_rules)
    return {"cuts": {k: sorted(v) for k, v in cuts.items()}, "lists": {k: sorted(v) for k, v in lists.items()},
            "scalars": scalars, "tests": tests, "deindex": deindex}


def _canonical(values: Any, cuts: list[float]) -> Any:
    """Each value replaced by a representative of its class among the cut-offs (the cut itself, or the middle of
    the open interval it lies in); nulls stay null."""
    import numpy as np

    arr = values.to_numpy().astype(float)
    if not cuts:
        return np.where(np.isnan(arr), np.nan, 0.0)
    c = np.asarray(cuts, dtype=float)
    pos = np.searchsorted(c, arr)
    exact = (pos < len(c)) & (c[np.minimum(pos, len(c) - 1)] == arr)
    lo = np.concatenate([[c[0] - 2.0], c])
    hi = np.concatenate([c, [c[-1] + 2.0]])
    return np.where(np.isnan(arr), np.nan, np.where(exact, arr, (lo[pos] + hi[pos]) / 2))


def engine_rows(kb: KnowledgeBase, part: Any, drug: str, regulator: str, indication: str | None, keep: Sequence[str],
                today: dt.date, be: Any) -> Any:
    """The engine's own assessment (plans the compiler does not cover), called once per distinct projection of the
    rows onto what the plan reads, with numbers replaced by their class among the plan's cut-offs."""
    import polars as pl

    from jakinib.cohort.flatten import patient_from_row
    from jakinib.safety import engine

    d = kb.drugs[drug]
    plan = _plan_inputs(kb, d, regulator, indication)
    key_cols: dict[str, Any] = {}
    exact_body = plan["deindex"] and {"weight_kg", "height_cm"} <= set(part.columns)
    body_known = (part["weight_kg"].is_not_null() & part["height_cm"].is_not_null()) if exact_body else None
    for field, cuts in plan["cuts"].items():
        if field not in part.columns:
            continue
        canon = pl.Series(field, _canonical(part[field], cuts)).fill_nan(None)
        if body_known is not None and field in ("weight_kg", "labs.egfr"):
            canon = pl.select(pl.when(body_known).then(part[field]).otherwise(canon)).to_series()
        key_cols[field] = canon
    if exact_body:
        key_cols["height_cm"] = part["height_cm"]
    for field, values in plan["lists"].items():
        key_cols[field] = part[field].list.set_intersection(pl.lit(values, dtype=pl.List(pl.String))).list.sort()
    for field in sorted(plan["scalars"] | {"sex", "smoking", "pregnant", "breastfeeding", "indication"}):
        if field in part.columns and field not in key_cols:
            key_cols[field] = part[field]
    for t in plan["tests"]:
        if f"screening.{t}" in part.columns:
            key_cols[f"screening.{t}"] = part[f"screening.{t}"]
    key_cols["unmapped_medications"] = part["unmapped_medications"].list.eval(pl.lit("?"))
    keys = pl.DataFrame(key_cols).with_columns(pl.struct(pl.all()).hash(seed=7).alias("_key"))
    firsts = keys.unique("_key", keep="first", maintain_order=True)
    messages: dict[str, str] = {}
    results = []
    for row in firsts.iter_rows(named=True):
        a = engine.assess(kb, patient_from_row(row), d, regulator, indication, today)
        if not messages:
            messages = {r.message: r.id for r in kb.rules_for(a.product, regulator)}
        dose = a.dose
        results.append({"_key": row["_key"], "product": a.product, "route": a.route, "status": a.status, "approved": a.approved,
                        "findings": [x.rule for x in a.findings], "screening_missing": list(a.screening_missing),
                        "dose_mg": dose.mg if dose else None, "dose_every_h": dose.every_h if dose else None,
                        "dose_adjusted": dose.adjusted if dose else None,
                        "dose_rule": messages.get(dose.reason or "") if dose and dose.adjusted else None})
    schema = empty(be, keep, part).schema
    res_schema = {"_key": pl.UInt64, **{k: (pl.List(pl.String) if k == "findings" else v) for k, v in schema.items()
                                        if k not in ("id", "regulator", "drug", *keep)}}
    res = pl.DataFrame(results, schema=res_schema).with_columns(pl.col("findings").cast(schema["findings"]))
    base = part.select("id", *keep).with_columns(keys["_key"], pl.lit(regulator).alias("regulator"), pl.lit(drug).alias("drug"))
    return base.join(res, on="_key", how="left").select(list(schema))
