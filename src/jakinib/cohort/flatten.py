"""The cohort table: one row per patient, one column per fact a rule or a care gap reads.

The columns are derived from ``knowledge/fields.py`` (the fields predicates may use), so a new field there is a new
column here. A :class:`~jakinib.safety.patient.Patient` (from a FHIR Bundle, a Bulk export or the simple JSON) becomes
a row through :meth:`Patient.facts` — the very map ``safety/predicates.py`` evaluates — plus what the checker does not
read but care gaps need: the current JAK inhibitor, its start date and dose, and dated monitoring records.

Column kinds: ``float``, ``str``, ``bool``, ``date``, ``list`` (list of strings; absent = empty, as in predicates).
Both engines get the same table: Polars directly, Spark from its Arrow form.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from jakinib.knowledge import fields as f

# Extra columns (beyond the predicate fields): identity, per-row regulator, medicines, therapy, records.
THERAPY = {"jak": "str", "jak_start": "date", "jak_dose_mg": "float", "jak_every_h": "float"}
RECORD_KINDS = ("first", "last")  # earliest and latest dated record of a lab or screening test


def comparator_column(lab: str) -> str:
    """Column of a lab's comparator ('<', '<=', '>', '>='; null when the value is exact): ``labs.anc`` 0.5 with
    ``labs.anc.comparator`` '<' is a value reported as "<0.5" (a :class:`~jakinib.safety.predicates.Censored`)."""
    return f"labs.{lab}.comparator"


def record_column(test: str, which: str) -> str:
    """Column of the earliest/latest dated record of a lab (``anc``) or a screening test (``tuberculosis``)."""
    return f"records.{test}.{which}"


def columns() -> dict[str, str]:
    """Every column of the cohort table and its kind, in order."""
    out: dict[str, str] = {"id": "str", "regulator": "str", "height_cm": "float"}
    for name in f.known_fields():
        kind = f.kind_of(name)
        out[name] = {"number": "float", "bool": "bool", "choice": "str", "list": "list", "screening": "str"}[kind or "choice"]
    for test in f.SCREENING_TESTS:
        out[f"screening.{test}.date"] = "date"
    out["medications"] = "list"
    out["unmapped_medications"] = "list"
    out.update(THERAPY)
    for lab in f.LAB_UNITS:
        for which in RECORD_KINDS:
            out[record_column(lab, which)] = "date"
    for lab in f.LAB_UNITS:
        out[comparator_column(lab)] = "str"
    return out


def list_columns() -> list[str]:
    return [c for c, k in columns().items() if k == "list"]


@dataclass
class Therapy:
    """What the checker does not read: the JAK inhibitor a patient is on, since when and at what dose, and the dates
    of the lab records care gaps count."""

    jak: str | None = None
    start: dt.date | None = None
    dose_mg: float | None = None
    every_h: float | None = None
    records: dict[str, list[dt.date]] = field(default_factory=dict)


def patient_row(pid: str, patient: Any, therapy: Therapy | None = None, regulator: str | None = None) -> dict[str, Any]:
    """The cohort row of one patient: its predicate facts plus therapy and record dates."""
    from jakinib.safety.predicates import Censored

    row: dict[str, Any] = dict(patient.facts())
    for lab in f.LAB_UNITS:
        value = row.get(f"labs.{lab}")
        if isinstance(value, Censored):
            row[f"labs.{lab}"], row[comparator_column(lab)] = value.bound, value.comparator
    row["id"] = pid
    row["regulator"] = regulator
    row["height_cm"] = patient.height_cm
    for name in f.LISTS:
        row[name] = list(row.get(name, ()))
    row["medications"] = list(patient.medications)
    row["unmapped_medications"] = list(patient.unmapped_medications)
    for test, scr in patient.screening.items():
        if scr.date is not None:
            row[f"screening.{test}.date"] = scr.date
    t = therapy or Therapy()
    row.update(jak=t.jak, jak_start=t.start, jak_dose_mg=t.dose_mg, jak_every_h=t.every_h)
    for test, dates in t.records.items():
        if dates and test in f.LAB_UNITS:
            row[record_column(test, "first")] = min(dates)
            row[record_column(test, "last")] = max(dates)
    return row


def patient_from_row(row: dict[str, Any]) -> Any:
    """The :class:`Patient` a cohort row stands for (the inverse of :func:`patient_row`), for the checker itself."""
    from jakinib.safety.patient import Patient, Screening

    scalars = {k: row.get(k) for k in ("age", "sex", "weight_kg", "height_cm", "pregnant", "breastfeeding", "smoking", "indication")}
    return Patient(
        **{k: v for k, v in scalars.items() if v is not None},
        conditions=tuple(row.get("conditions") or ()), history=tuple(row.get("history") or ()),
        allergies=tuple(row.get("allergies") or ()), medication_classes=tuple(row.get("medication_classes") or ()),
        vaccines_planned=tuple(row.get("vaccines_planned") or ()), medications=tuple(row.get("medications") or ()),
        unmapped_medications=tuple(row.get("unmapped_medications") or ()),
        labs={lab: row[f"labs.{lab}"] for lab in f.LAB_UNITS if row.get(f"labs.{lab}") is not None},
        lab_comparators={lab: row[comparator_column(lab)] for lab in f.LAB_UNITS
                         if row.get(f"labs.{lab}") is not None and row.get(comparator_column(lab)) is not None},
        metabolizer={e: row[f"metabolizer.{e}"] for e in f.ENZYMES if row.get(f"metabolizer.{e}") is not None},
        screening={t: Screening(result=row[f"screening.{t}"], date=row.get(f"screening.{t}.date"))
                   for t in f.SCREENING_TESTS if row.get(f"screening.{t}") is not None},
    )


def polars_schema() -> dict[str, Any]:
    import polars as pl

    kinds = {"float": pl.Float64, "str": pl.String, "bool": pl.Boolean, "date": pl.Date, "list": pl.List(pl.String)}
    return {c: kinds[k] for c, k in columns().items()}


def frame(rows: list[dict[str, Any]]) -> Any:
    """A Polars DataFrame of cohort rows with the full schema (absent keys are nulls, absent lists empty)."""
    import polars as pl

    schema = polars_schema()
    df = pl.DataFrame(rows, schema=schema, strict=False) if rows else pl.DataFrame(schema=schema)
    return complete(df)


def complete(df: Any) -> Any:
    """Add every missing column as nulls, fill lists with [], and order/cast columns to the schema."""
    import polars as pl

    schema = polars_schema()
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in df.columns]
    if missing:
        df = df.with_columns(missing)
    return df.select([
        (pl.col(c).cast(t).fill_null(pl.lit([], dtype=t)) if isinstance(t, pl.List) else pl.col(c).cast(t)).alias(c)
        for c, t in schema.items()
    ])
