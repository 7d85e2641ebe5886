"""FHIR NDJSON (a Bulk export or Bundle-per-line) -> the cohort table in columns, with the single-patient reader's
own logic: the fast path of ``cohort/read.py``.

How it stays *one* reader, not a second copy of it:

- each resource is decoded by Polars with a schema of exactly the elements ``interop/fhir.py`` and
  ``cohort/therapy.py`` read for its type, and split into what varies from patient to patient (values, dates) and
  what repeats (codes, statuses, units, dosage): the *key*; a compact Observation line is decoded as its template
  (id, reference, dates and value cut out, decoded once per distinct template) plus the values cut out (``_parse``);
- every distinct key is classified once by the reader's own per-resource functions (``fhir._condition``,
  ``fhir._observation``, ``fhir._medication``, ``fhir._immunization``, ``fhir._allergy``, ``fhir._sex``, ``fhir._age``,
  ``therapy._jak``/``_dose``), so codes, value sets, answers and statuses mean what they mean in ``jakinib check``;
  unit factors are ``safety/units.py``'s; windows are the knowledge base's; instants are normalised to UTC as
  ``fhir.instant`` does, with its key order (``fhir.WHEN_*``);
- per patient the choices the reader makes across resources (latest-by-instant with its tie rule, staleness, last
  assignment wins, current JAK inhibitor by start date) are group-bys over those columns; the simple patient JSON
  this gives is validated and resolved by the flat-table reader (``cohort/flat.py``: parse_patient's rules on
  columns), so a FHIR patient and a flat row go through the same validation;
- a patient with any shape this path does not reproduce exactly (a null or a value of an unexpected JSON type,
  an unusual date form, a comparator, a medicationReference, a derived ANC/ALC, cystatin C, a resource about another
  subject, several pregnancy sources, a value the validation refuses, ...) is read by the exact per-patient reader
  (``cohort/read._row``), and any bad record makes the caller read the whole input the exact way, which reports it
  with file and line as before (:class:`Fallback`).

``tests/test_cohort_fhir_columns.py`` holds the fast path to the exact reader, column by column.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from jakinib.cohort import flatten, therapy
from jakinib.errors import JakinibError
from jakinib.interop import fhir
from jakinib.knowledge import fields as f
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety import units


class Fallback(Exception):
    """The input holds a bad record (or a shape only the exact reader reports): read all of it the exact way."""


# ---- schemas: exactly the elements the reader reads, per type ----------------------------------------------------


def _schemas() -> dict[str, Any]:
    import polars as pl

    s = pl.String
    coding = pl.Struct({"system": s, "code": s, "display": s})
    cc = pl.Struct({"coding": pl.List(coding), "text": s})
    ref = pl.Struct({"reference": s})
    period = pl.Struct({"start": s, "end": s})
    when = {k: s for k in (*fhir.WHEN_FIRST, *fhir.WHEN_LAST)} | {k: period for k in fhir.WHEN_PERIODS}
    base = {"resourceType": s, "id": s, "subject": ref, "patient": ref}
    dosage = pl.List(pl.Struct({
        "doseAndRate": pl.List(pl.Struct({"doseQuantity": pl.Struct({"value": pl.Float64, "unit": s, "code": s})})),
        "timing": pl.Struct({"repeat": pl.Struct({"frequency": pl.Float64, "period": pl.Float64, "periodUnit": s})})}))
    return {
        "Patient": {"resourceType": s, "id": s, "gender": s, "birthDate": s, "deceasedBoolean": pl.Boolean,
                    "deceasedDateTime": s,
                    "extension": pl.List(pl.Struct({"url": s, "valueCode": s, "valueCoding": pl.Struct({"code": s})}))},
        "Condition": base | {"code": cc, "clinicalStatus": cc, "verificationStatus": cc},
        "Observation": base | when | {"status": s, "code": cc, "valueCodeableConcept": cc, "valueString": s,
                                      "interpretation": pl.List(cc),
                                      "valueQuantity": pl.Struct({"value": pl.Float64, "unit": s, "code": s, "comparator": s})},
        "MedicationRequest": base | when | {"status": s, "medicationCodeableConcept": cc,
                                            "medicationReference": pl.Struct({"reference": s, "display": s}),
                                            "dosageInstruction": dosage, "dosage": dosage, "dateAsserted": s},
        "Immunization": base | when | {"status": s, "vaccineCode": cc},
        "AllergyIntolerance": base | {"verificationStatus": cc, "clinicalStatus": cc, "code": cc,
                                      "reaction": pl.List(pl.Struct({"substance": cc}))},
    }


SCHEMA_OF = {"MedicationStatement": "MedicationRequest"}
# The key of a resource: what repeats across patients (classified once per distinct value by the reader's functions).
KEYS = {
    "Condition": ("code", "clinicalStatus", "verificationStatus"),
    "Observation": ("status", "code", "valueCodeableConcept", "valueString", "interpretation", "_unit"),
    "MedicationRequest": ("resourceType", "status", "medicationCodeableConcept", "dosageInstruction", "dosage"),
    "Immunization": ("status", "vaccineCode"),
    "AllergyIntolerance": ("verificationStatus", "clinicalStatus", "code", "reaction"),
}
# Raw-text guards: JSON a schema would coerce (a number or boolean where the reader wants a string, a boolean where
# it wants a number, an explicit null) -> the patient is read the exact way.
ODD = re.compile(
    r'"(?:system|code|display|text|status|reference|unit|comparator|url|valueCode|valueString|gender|birthDate|'
    r'periodUnit|deceasedDateTime|resourceType|id|start|end|' + "|".join((*fhir.WHEN_FIRST, *fhir.WHEN_LAST, "dateAsserted"))
    + r')"\s*:\s*[-0-9tfn]|"(?:value|frequency|period)"\s*:\s*[tfn]|:\s*null\b')
DATE = r"^\d{4}-\d{2}-\d{2}$"
DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3}|\.\d{6})?(?:Z|[+-]\d{2}:\d{2})?$"
REFERENCE = r"^Patient/[A-Za-z0-9\-.]{1,64}$"
DERIVED_FROM = ("wbc", "neutrophils-pct", "lymphocytes-pct")


def _strip(value: Any) -> Any:
    """A decoded key without the nulls Polars adds for absent elements (the input's own nulls are routed away)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


# ---- per distinct key: the reader's own functions -----------------------------------------------------------------


class Classifier:
    """The reader's per-resource functions, applied once per distinct key (cached for the whole input)."""

    def __init__(self, kb: KnowledgeBase, today: dt.date) -> None:
        self.kb, self.today = kb, today
        self.lab_by_loinc = therapy.lab_index(kb)
        self.cache: dict[str, dict[str, Any]] = {}

    def table(self, kind: str, keys: list[str]) -> Any:
        """One row per key: the effect columns of ``kind``."""
        import polars as pl

        fn = getattr(self, f"_{kind}")
        rows = []
        for key in keys:
            cached = self.cache.get(f"{kind}\0{key}")
            if cached is None:
                cached = fn(_strip(orjson.loads(key)))
                self.cache[f"{kind}\0{key}"] = cached
            rows.append(cached)
        return pl.DataFrame(rows, schema=EFFECTS[kind], strict=False).with_columns(pl.Series("_key", keys, dtype=pl.String))

    def _Condition(self, r: dict[str, Any]) -> dict[str, Any]:
        out = fhir.FhirRead()
        fhir._condition(r, self.kb, out)
        s = out.simple
        return {"c_preg": s.get("pregnant"), "c_cond": (s["conditions"] or [None])[0], "c_hist": (s["history"] or [None])[0],
                "c_nostatus": fhir._status(r, "clinicalStatus") is None}

    def _Observation(self, r: dict[str, Any]) -> dict[str, Any]:
        unit = r.pop("_unit", None)
        if unit is not None:
            r["valueQuantity"] = {**unit, "value": 1.0}
        out, labs, latest = fhir.FhirRead(), fhir._Labs(), {}
        row: dict[str, Any] = {"o_kind": None, "o_target": None, "o_answer": None, "o_factor": None, "o_cmp": None,
                               "o_rec": None}
        try:
            fhir._observation(r, self.kb, self.lab_by_loinc, out, labs, latest)
        except JakinibError:
            row["o_kind"] = "odd"
            return row
        if labs.by_lab:
            (lab, [(_, value, _)]), = labs.by_lab.items()
            canonical = f.LAB_UNITS.get(lab) or f.NUMERIC.get(lab) or ("%" if lab.endswith("-pct") else "10^9/L")
            try:
                factor = units.convert(1.0, value["unit"], canonical, f.MOLAR_MASS_G_MOL.get(lab))
            except JakinibError:
                factor = None
            row.update(o_kind="lab", o_target=lab, o_factor=factor, o_cmp=value.get("comparator"))
        else:
            for field, got in ((k, v) for k, v in out.simple.items() if k not in ("conditions", "history", "allergies",
                                                                                 "labs", "medications", "screening")):
                row.update(o_kind="answer", o_target=field, o_answer=str(got).lower() if isinstance(got, bool) else got)
            for test, got in out.simple["screening"].items():
                row.update(o_kind="answer", o_target=f"screening.{test}", o_answer=got)
        status = r.get("status")
        if not (status and status not in fhir.OBS_OK):  # therapy.read's record dates
            for system, code, _ in fhir._codings(r.get("code")):
                if system == "loinc" and code in self.lab_by_loinc:
                    row["o_rec"] = self.lab_by_loinc[code]
                    break
        return row

    def _MedicationRequest(self, r: dict[str, Any]) -> dict[str, Any]:
        out = fhir.FhirRead()
        fhir._medication(r, self.kb, out, {})
        row: dict[str, Any] = {"m_meds": list(out.simple["medications"]), "m_jak": None, "m_mg": None, "m_every": None}
        if not (r.get("status") and r["status"] not in fhir.MED_ACTIVE):
            concept = r.get("medicationCodeableConcept")
            name = therapy._jak(self.kb, concept)
            if name is not None:
                mg, every = therapy._dose(r, concept)
                row.update(m_jak=name, m_mg=mg, m_every=every)
        return row

    def _Immunization(self, r: dict[str, Any]) -> dict[str, Any]:
        out = fhir.FhirRead()
        fhir._immunization(r, self.kb, out)
        return {"i_test": next(iter(out.simple["screening"]), None)}

    def _AllergyIntolerance(self, r: dict[str, Any]) -> dict[str, Any]:
        out = fhir.FhirRead()
        fhir._allergy(r, self.kb, out)
        return {"a_drug": (out.simple["allergies"] or [None])[0]}

    def _Patient(self, r: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            if r.get("birthDate"):
                out["age"] = fhir._age(r["birthDate"], self.today)
            return {"p_age": out.get("age"), "p_sex": fhir._sex(r), "p_odd": False}
        except JakinibError:
            return {"p_age": None, "p_sex": None, "p_odd": True}


def _effects() -> dict[str, dict[str, Any]]:
    import polars as pl

    s, b, x = pl.String, pl.Boolean, pl.Float64
    return {"Condition": {"c_preg": b, "c_cond": s, "c_hist": s, "c_nostatus": b},
            "Observation": {"o_kind": s, "o_target": s, "o_answer": s, "o_factor": x, "o_cmp": s, "o_rec": s},
            "MedicationRequest": {"m_meds": pl.List(s), "m_jak": s, "m_mg": x, "m_every": x},
            "Immunization": {"i_test": s}, "AllergyIntolerance": {"a_drug": s},
            "Patient": {"p_age": x, "p_sex": s, "p_odd": b}}


class _Lazy(dict):  # the effect schemas need Polars: built on first use
    def __missing__(self, key: str) -> Any:
        self.update(_effects())
        return dict.__getitem__(self, key)


EFFECTS: dict[str, dict[str, Any]] = _Lazy()


# ---- instants, as fhir.instant reads them ---------------------------------------------------------------------------


def _instant(col: Any) -> tuple[Any, Any, Any]:
    """(UTC instant, local date, odd) of a FHIR date/dateTime column: odd when present in a form not handled here."""
    import polars as pl

    is_date, is_dt = col.str.contains(DATE), col.str.contains(DATETIME)
    text = (pl.when(is_date).then(col + "T00:00:00+00:00")
            .when(is_dt & ~col.str.contains(r"(?:Z|[+-]\d{2}:\d{2})$")).then(col + "+00:00")
            .otherwise(col.str.replace(r"Z$", "+00:00")))
    when = pl.when(is_date | is_dt).then(text).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", strict=False,
                                                              time_unit="us")
    local = pl.when(when.is_not_null()).then(col.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False))
    return when, local, col.is_not_null() & ~(is_date | is_dt)


def _when(df: Any) -> tuple[Any, Any, Any]:
    """when_instant on columns: the first key that parses, in the reader's order (keys absent from the whole
    frame are left out: they cannot be the first)."""
    import polars as pl

    cols = []
    for key in fhir.WHEN_FIRST:
        cols.append(pl.col(key))
    for key in fhir.WHEN_PERIODS:
        cols += [pl.col(key).struct.field("end"), pl.col(key).struct.field("start")]
    for key in fhir.WHEN_LAST:
        cols.append(pl.col(key))
    present = df.select([c.is_not_null().any().alias(str(i)) for i, c in enumerate(cols)]).row(0)
    parsed = [_instant(c) for c, there in zip(cols, present, strict=True) if there]
    if not parsed:
        none = pl.lit(None, dtype=pl.Datetime("us", "UTC"))
        return none, pl.lit(None, dtype=pl.Date), pl.lit(False)
    return (pl.coalesce([p[0] for p in parsed]), pl.coalesce([p[1] for p in parsed]),
            pl.any_horizontal([p[2].fill_null(False) for p in parsed]))


def _date10(col: Any) -> tuple[Any, Any]:
    """therapy._date on a column: (date, odd)."""
    import polars as pl

    long = col.str.len_chars() >= 10
    ok = col.str.contains(r"^\d{4}-\d{2}-\d{2}")
    return pl.when(long & ok).then(col.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)), long & ~ok


# ---- one batch of resources of one type -> columns ------------------------------------------------------------------


def decode(lines: Any, kind: str, classify: Classifier) -> Any:
    """Raw lines (a frame with ``_raw``, ``_f``, ``_n``) of one resource type of a Bulk export -> pid, order, odd flag
    and the effect columns; Fallback when a line is not the JSON of a resource of that type with a patient reference."""
    import polars as pl

    df = _parse(lines, kind)
    if df.filter(pl.col("resourceType") != kind).height or df["resourceType"].null_count():
        raise Fallback(f"{kind}: another resource type")
    if kind == "Patient":
        if df["id"].null_count():
            raise Fallback("Patient without an id")
        pid = pl.col("id")
    else:
        refd = pl.coalesce(pl.col("subject").struct.field("reference"), pl.col("patient").struct.field("reference"))
        if df.select(refd.is_null().any()).item():
            raise Fallback(f"{kind} without a subject/patient reference")
        pid = pl.when(refd.str.contains("Patient/")).then(refd.str.split("Patient/").list.last()).otherwise(refd)
    df = df.with_columns(_pid=pid)
    return effects(df, kind, classify).with_columns(df["_raw"])


# Per type: the string elements and the number element whose values vary from line to line. A compact line (no
# backslash, no space after a colon) in which each of them occurs at most once is decoded as its *template* (those
# values replaced by a placeholder, decoded once per distinct template) plus the values cut out of it; any other line
# is decoded whole. The placeholder shows where each value was: a value cut from an element the schema does not read
# is dropped, as a whole decode would drop it.
VARIES = {"Observation": (("id", "reference", "effectiveDateTime", "issued"), "value")}  # most lines; for the
# other types a whole decode costs about what the template costs (measured)
PLACEHOLDER = "\x01"
NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"


def _parse(lines: Any, kind: str) -> Any:
    """Lines of one type -> their schema's columns (unnested) with ``_raw, _f, _n`` and the raw-text flags ``_lodd``
    (a shape the schema would coerce) and ``_labat`` (an abatement element); Fallback when Polars cannot decode."""
    import polars as pl

    schema_kind = SCHEMA_OF.get(kind, kind)
    schema = _schemas()[schema_kind]

    def whole(part: Any) -> Any:
        try:
            df = part.with_columns(pl.col("_raw").str.json_decode(pl.Struct(schema)).alias("_r")).unnest("_r")
        except pl.exceptions.PolarsError as exc:
            raise Fallback(f"{kind}: {exc}") from None
        return df.with_columns(_lodd=pl.col("_raw").str.contains(ODD.pattern),
                               _labat=pl.col("_raw").str.contains('"abatement', literal=True))

    if schema_kind not in VARIES:
        return whole(lines)
    texts, number = VARIES[schema_kind]
    there = lines.select(pl.col("_raw").str.contains(f'"{k}":', literal=True).any().alias(k)
                         for k in (*texts, *([number] if number else []))).row(0, named=True)
    texts = tuple(k for k in texts if there[k])
    number = number if number and there[number] else None
    raw = pl.col("_raw")
    ok = ~raw.str.contains("\\", literal=True) & ~raw.str.contains(": ", literal=True) & ~raw.str.contains("\t", literal=True)
    cut = {}
    template = raw
    for key in texts:
        pattern = f'"{key}":"[^"]*"'
        n = raw.str.count_matches(f'"{key}":', literal=True)
        ok = ok & (n <= 1) & (n == raw.str.count_matches(pattern))
        cut[key] = raw.str.extract(f'"{key}":"([^"]*)"', 1)
        template = template.str.replace(pattern, f'"{key}":"\\u0001"')
    if number:
        pattern = rf'"{number}":{NUMBER}[,}}\]]'
        n = raw.str.count_matches(f'"{number}":', literal=True)
        ok = ok & (n <= 1) & (n == raw.str.count_matches(pattern))
        cut[number] = raw.str.extract(rf'"{number}":({NUMBER})[,}}\]]', 1).cast(pl.Float64)
        template = template.str.replace(rf'"{number}":{NUMBER}([,}}\]])', f'"{number}":"\\u0001"${{1}}')
    flagged = lines.with_columns(_ok=ok)
    rest = whole(flagged.filter(~pl.col("_ok")).drop("_ok"))
    easy = flagged.filter(pl.col("_ok")).drop("_ok")
    if not easy.height:
        return rest
    easy = easy.with_columns(_t=template, **{f"_c_{k}": v for k, v in cut.items()})
    tschema = dict(schema)
    if number:
        tschema["valueQuantity"] = pl.Struct({**{f.name: f.dtype for f in schema["valueQuantity"].fields}, "value": pl.String})
    distinct = easy.select("_t").unique()
    try:
        decoded = distinct.with_columns(pl.col("_t").str.json_decode(pl.Struct(tschema)).alias("_r")).unnest("_r")
    except pl.exceptions.PolarsError as exc:
        raise Fallback(f"{kind}: {exc}") from None
    decoded = decoded.with_columns(_lodd=pl.col("_t").str.contains(ODD.pattern),
                                   _labat=pl.col("_t").str.contains('"abatement', literal=True))
    df = easy.join(decoded, on="_t", how="left")

    def put(value: Any, key: str) -> Any:  # the value cut out where the placeholder is; odd if it is anywhere else
        return pl.when(value == PLACEHOLDER).then(pl.col(f"_c_{key}")).otherwise(value)

    fix: dict[str, Any] = {}
    for key in texts:
        if key == "reference":
            for holder in ("subject", "patient"):
                fix[holder] = pl.when(pl.col(holder).is_not_null()).then(
                    pl.struct(reference=put(pl.col(holder).struct.field("reference"), key)))
        elif key in schema:
            fix[key] = put(pl.col(key), key)
    if number:
        q = pl.col("valueQuantity")
        value = q.struct.field("value")
        fix["valueQuantity"] = pl.when(q.is_not_null()).then(pl.struct(
            value=pl.when(value == PLACEHOLDER).then(pl.col(f"_c_{number}")),
            **{f.name: q.struct.field(f.name) for f in schema["valueQuantity"].fields if f.name != "value"}))
        fix["_lodd"] = pl.col("_lodd") | (value.is_not_null() & (value != PLACEHOLDER)).fill_null(False)
    df = df.with_columns(**fix).select(*rest.columns)
    return pl.concat([rest, df], how="vertical_relaxed") if rest.height else df


def effects(df: Any, kind: str, classify: Classifier) -> Any:
    """Decoded resources of one type (its schema's columns plus ``_pid``, ``_f``, ``_n``, and the raw text's
    ``_lodd`` / ``_labat``) -> ``_pid, _f, _n, _odd`` and the effect columns."""
    import polars as pl

    schema_kind = SCHEMA_OF.get(kind, kind)
    odd = pl.col("_lodd")
    if kind == "Patient":
        key = pl.struct("gender", "birthDate", "extension").struct.json_encode()
        df = df.with_columns(_key=key)
        eff = classify.table("Patient", df["_key"].unique().to_list())
        df = df.join(eff, on="_key", how="left")
        odd = odd | pl.col("p_odd") | (pl.col("deceasedBoolean") == True).fill_null(False) | pl.col("deceasedDateTime").is_not_null()  # noqa: E712
        return df.select("_pid", "_f", "_n", _odd=odd.fill_null(False), age=pl.col("p_age"), sex=pl.col("p_sex"))
    sub, pat = pl.col("subject").struct.field("reference"), pl.col("patient").struct.field("reference")
    refd = pl.coalesce(sub, pat)
    odd = odd | (sub.is_not_null() & pat.is_not_null()) | ~refd.str.contains(REFERENCE).fill_null(False)
    cols: dict[str, Any] = {}
    if schema_kind == "Observation":
        q = pl.col("valueQuantity")
        unit = pl.when(q.struct.field("value").is_not_null()).then(
            pl.struct(unit=q.struct.field("unit"), code=q.struct.field("code"), comparator=q.struct.field("comparator")))
        df = df.with_columns(_unit=unit)
        when, local, when_odd = _when(df)
        cols.update(_at=when, _day=local, _v=q.struct.field("value"))
        odd = odd | when_odd
    elif schema_kind == "Immunization":
        when, local, when_odd = _when(df)
        cols.update(_day=local)
        odd = odd | when_odd
    elif schema_kind == "MedicationRequest":
        starts = [_date10(pl.col("effectivePeriod").struct.field("start"))] + [
            _date10(pl.col(k)) for k in ("effectiveDateTime", "authoredOn", "dateAsserted")]
        cols.update(_start=pl.coalesce([s[0] for s in starts]))
        odd = odd | pl.any_horizontal([s[1].fill_null(False) for s in starts]) | pl.col("medicationReference").is_not_null()
    elif schema_kind == "Condition":
        cols.update(_abat=pl.col("_labat"))
    key = pl.struct(*KEYS[schema_kind]).struct.json_encode()
    df = df.with_columns(_key=key, **cols)
    eff = classify.table(schema_kind, df["_key"].unique().to_list())
    df = df.join(eff, on="_key", how="left")
    extra = list(cols) + list(EFFECTS[schema_kind])
    if schema_kind == "Observation":
        odd = odd | (pl.col("o_kind") == "odd").fill_null(False)
    return df.select("_pid", "_f", "_n", *extra, _odd=odd.fill_null(False))


# ---- per patient: the reader's cross-resource choices as group-bys -------------------------------------------------


def _wide(out: Any, long: Any, on: str, values: dict[str, Callable[[str], str]]) -> Any:
    """Join ``long`` (one row per patient and ``on`` value) onto ``out`` as one column per ``on`` value and value
    column, named ``values[column](on_value)``; a column already in ``out`` is filled where ``long`` has a value."""
    import polars as pl

    for target in sorted(long[on].unique().to_list()):
        part = long.filter(pl.col(on) == target)
        cols = {name(target): pl.col(column) for column, name in values.items()}
        part = part.select(pl.col("_pid").alias("__id"), **{f"__{k}": v for k, v in cols.items()})
        out = out.join(part, left_on="id", right_on="__id", how="left")
        for k in cols:
            out = out.with_columns((pl.coalesce(f"__{k}", k) if k in out.columns else pl.col(f"__{k}")).alias(k)).drop(f"__{k}")
    return out


def _listed(long: Any, value: str, name: str) -> Any:
    """Per patient, the distinct non-null values of ``value`` in resource order."""
    import polars as pl

    return (long.filter(pl.col(value).is_not_null()).unique(["_pid", value], keep="first", maintain_order=True)
            .group_by("_pid", maintain_order=True).agg(pl.col(value).alias(name)))


def simple_table(parts: dict[str, Any], kb: KnowledgeBase, today: dt.date) -> tuple[Any, Any, set[str]]:
    """(flat-input frame of the simple patient JSON, records frame, patients to read the exact way) for the decoded
    resources of a set of whole patients (``parts``: type -> frame from :func:`decode`, resources in input order)."""
    import polars as pl

    order = ["_f", "_n"]
    pts = parts["Patient"]
    if pts["_pid"].is_duplicated().any():
        raise Fallback("a Patient appears more than once")
    known = set(pts["_pid"].to_list())
    exact: set[str] = set()
    for kind, df in parts.items():
        exact |= set(df.filter(pl.col("_odd"))["_pid"].unique().to_list())
        if kind != "Patient" and not set(df["_pid"].unique().to_list()) <= known:
            raise Fallback("a resource references a Patient not in the input")
    out = pts.select(pl.col("_pid").alias("id"), "age", "sex")

    def join(frame: Any) -> None:
        nonlocal out
        out = out.join(frame.rename({"_pid": "__id"}), left_on="id", right_on="__id", how="left")

    cond = parts.get("Condition")
    cond = cond.sort(order) if cond is not None else None
    if cond is not None and cond.height:
        exact |= set(cond.filter(pl.col("_abat") & pl.col("c_nostatus"))["_pid"].to_list())
        join(_listed(cond, "c_cond", "conditions"))
        current = cond.filter(pl.col("c_cond").is_not_null()).select("_pid", c_hist="c_cond")
        past = cond.filter(pl.col("c_hist").is_not_null()).join(current, on=["_pid", "c_hist"], how="anti", maintain_order="left")
        join(_listed(past, "c_hist", "history"))
        join(cond.filter(pl.col("c_preg").is_not_null()).group_by("_pid", maintain_order=True).agg(_cpreg=pl.col("c_preg").last()))

    records = pl.DataFrame(schema={"id": pl.String})
    obs = parts.get("Observation")
    obs_tests: set[str] = set()
    if obs is not None and obs.height:
        obs = obs.sort(order)
        labs = obs.filter(pl.col("o_kind") == "lab")
        exact |= set(labs.filter(pl.col("o_target") == "cystatin-c")["_pid"].to_list())
        # latest by instant (undated lowest), ties: the first in input order (max() over the reader's list)
        chosen = (labs.sort(["_pid", "o_target", "_at", "_f", "_n"], descending=[False, False, True, False, False], nulls_last=True)
                  .unique(["_pid", "o_target"], keep="first", maintain_order=True))
        max_age = {lab.id: lab.max_age_days for lab in kb.labs.values()} | dict.fromkeys(f.NUMERIC, fhir.WEIGHT_MAX_AGE_DAYS)
        age_days = (pl.lit(today) - pl.col("_at").dt.date()).dt.total_days()
        limit = pl.col("o_target").replace_strict(max_age, default=None, return_dtype=pl.Int64)
        stale = limit.is_not_null() & (pl.col("_at").is_null() | (age_days > limit))
        chosen = chosen.with_columns(_value=pl.when(~stale).then(pl.col("_v") * pl.col("o_factor")))
        exact |= set(chosen.filter(pl.col("_value").is_not_null() & pl.col("o_cmp").is_not_null())["_pid"].to_list())
        used = chosen.filter(pl.col("o_target").is_in([*f.LAB_UNITS, *f.NUMERIC]))
        out = _wide(out, used, "o_target", {"_value": lambda t: t if t in f.NUMERIC else f"labs.{t}"})
        derive = set(labs.filter(pl.col("o_target").is_in(DERIVED_FROM))["_pid"].to_list())
        if derive:
            counts = [c for c in ("labs.anc", "labs.alc") if c in out.columns]
            full = out.filter(pl.all_horizontal([pl.col(c).is_not_null() for c in counts])) if len(counts) == 2 else out.clear()
            exact |= derive - set(full["id"].to_list())
        answers = (obs.filter(pl.col("o_kind") == "answer")
                   .sort(["_pid", "o_target", "_at", "_f", "_n"], descending=[False, False, True, True, True], nulls_last=True)
                   .unique(["_pid", "o_target"], keep="first", maintain_order=True))
        out = _wide(out, answers.filter(~pl.col("o_target").str.starts_with("screening.")), "o_target", {"o_answer": lambda t: t})
        scr = answers.filter(pl.col("o_target").str.starts_with("screening."))
        obs_tests = set(scr["o_target"].unique().to_list())
        out = _wide(out, scr, "o_target", {"o_answer": lambda t: t, "_day": lambda t: f"{t}.date"})
        rec = (obs.filter(pl.col("o_rec").is_in(list(f.LAB_UNITS)) & pl.col("_day").is_not_null())
               .group_by(["_pid", "o_rec"]).agg(_first=pl.col("_day").min(), _last=pl.col("_day").max()))
        records = (pl.DataFrame({"id": rec["_pid"].unique()}).pipe(lambda r: _wide(r, rec, "o_rec", {
            "_first": lambda t: flatten.record_column(t, "first"), "_last": lambda t: flatten.record_column(t, "last")}))
            if rec.height else records)
    if "pregnant" in out.columns:  # an Observation's answer: 'true' / 'false'
        out = out.with_columns(pregnant=pl.col("pregnant") == "true")
        if "_cpreg" in out.columns:
            exact |= set(out.filter(pl.col("pregnant").is_not_null() & pl.col("_cpreg").is_not_null())["id"].to_list())
            out = out.with_columns(pregnant=pl.coalesce("pregnant", "_cpreg"))
    elif "_cpreg" in out.columns:
        out = out.with_columns(pregnant=pl.col("_cpreg"))

    imm = parts.get("Immunization")
    if imm is not None and imm.height:
        last = (imm.filter(pl.col("i_test").is_not_null()).sort(order, descending=True)
                .unique(["_pid", "i_test"], keep="first", maintain_order=True)
                .with_columns(_target="screening." + pl.col("i_test"), _done=pl.lit("done")))
        for test in set(last["_target"].unique().to_list()) & obs_tests:  # two sources for one test: the exact reader
            exact |= set(last.filter(pl.col("_target") == test)["_pid"].to_list()) & set(
                out.filter(pl.col(test).is_not_null())["id"].to_list())
        out = _wide(out, last, "_target", {"_done": lambda t: t, "_day": lambda t: f"{t}.date"})

    meds = [parts[k] for k in ("MedicationRequest", "MedicationStatement") if k in parts and parts[k].height]
    if meds:
        med = pl.concat(meds).sort(order)
        join(med.select("_pid", "m_meds").explode("m_meds").pipe(_listed, "m_meds", "medications"))
        jak = (med.filter(pl.col("m_jak").is_not_null())
               .sort(["_pid", "_start", "_f", "_n"], descending=[False, True, False, False], nulls_last=True)
               .unique("_pid", keep="first", maintain_order=True)
               .select("_pid", jak="m_jak", jak_start="_start", jak_dose_mg="m_mg", jak_every_h="m_every"))
        join(jak)

    alg = parts.get("AllergyIntolerance")
    if alg is not None and alg.height:
        join(_listed(alg.sort(order), "a_drug", "allergies"))

    for name in ("conditions", "history", "allergies", "medications"):
        out = out.with_columns((pl.col(name).fill_null([]) if name in out.columns else pl.lit([], dtype=pl.List(pl.String))).alias(name))
    for name in f.NUMERIC:  # the reader rounds weight and height to 2 decimals (Python's round, per distinct value)
        if name in out.columns:
            values = out[name].drop_nulls().unique().to_list()
            out = out.with_columns(pl.col(name).replace_strict({v: round(v, 2) for v in values}, default=None,
                                                                return_dtype=pl.Float64))
    columns = flatten.columns()
    keep = [c for c in out.columns if c in columns and not c.startswith("records.")]
    return out.select(keep), records, exact


# ---- the simple table -> cohort rows (the flat reader's validation), and the exact reader for the rest -------------


def rows(simple: Any, records: Any, kb: KnowledgeBase, today: dt.date, tmp: Path) -> tuple[Any, set[str]]:
    """(cohort rows, ids the flat validation refused: to be read the exact way, which reports why)."""

    from jakinib.cohort import flat
    from jakinib.cohort.read import Problems

    path = Path(tempfile.mkstemp(suffix=".parquet", dir=tmp)[1])
    simple.write_parquet(path)
    table = flat.read(path, "parquet", kb, Problems(skip=True), today)
    path.unlink()
    refused = set(simple["id"].to_list()) - set(table["id"].to_list())
    recs = [c for c in table.columns if c.startswith("records.")]
    table = table.drop(recs).join(records, on="id", how="left") if records.height else table
    return flatten.complete(table), refused


def exact_rows(resources: dict[str, list[dict[str, Any]]], one_patient: bool = True) -> Any:
    """The exact per-patient reader (``cohort/read._row``) for the patients routed to it; Fallback on a bad one."""
    from jakinib.cohort import read

    out = []
    for pid, items in resources.items():
        if one_patient and sum(1 for r in items if r.get("resourceType") == "Patient") != 1:
            raise Fallback(f"Patient/{pid}: not exactly one Patient")
        try:
            out.append(read._row(pid, items))
        except JakinibError as exc:
            raise Fallback(f"Patient/{pid}: {exc}") from None
    return flatten.frame(out)


# ---- Bulk export ------------------------------------------------------------------------------------------------------

CHUNK_BYTES = 64 << 20
THREADS = 2  # Polars' decoding of one column is one thread: two chunks at a time use both cores
STATS = {"fast": 0, "exact": 0}  # patients read each way (for benchmarks and tests)
_STATS_LOCK = threading.Lock()


def _count(fast: int, exact: int) -> None:
    with _STATS_LOCK:
        STATS["fast"] += fast
        STATS["exact"] += exact
BUCKET_BYTES = 256 << 20


def _lines(path: Path, file_index: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
    """Frames of raw lines (``_raw``; ``_f`` the file's index, ``_n`` the line number), about CHUNK_BYTES each."""
    import gzip

    import polars as pl

    opener = gzip.open if path.name.endswith(".gz") else open
    line = 1
    with opener(path, "rb") as fh:
        rest = b""
        while True:
            block = fh.read(chunk_bytes)
            data = rest + block
            if not block:
                rest, chunk = b"", data
            else:
                cut = data.rfind(b"\n") + 1
                rest, chunk = data[cut:], data[:cut]
            if chunk.strip():
                try:
                    df = pl.read_csv(io.BytesIO(chunk), has_header=False, separator="\x1f", quote_char=None,
                                     schema={"_raw": pl.String}, infer_schema=False)
                except pl.exceptions.PolarsError as exc:
                    raise Fallback(f"{path}: {exc}") from None
                df = df.with_row_index("_n", offset=line).with_columns(pl.lit(file_index, dtype=pl.Int32).alias("_f"))
                line += df.height
                yield df.filter(pl.col("_raw").is_not_null() & (pl.col("_raw").str.strip_chars() != ""))
            if not block:
                return


def _bucket_of(pid: Any, buckets: int) -> Any:
    import polars as pl

    return (pid.hash(seed=0) % buckets).cast(pl.Int32)


def read_bulk(files: list[tuple[str, Path]], kb: KnowledgeBase, today: dt.date,
              progress: Callable[[int], None] | None = None, threads: int = THREADS) -> Any:
    """The cohort table of a Bulk export's files (``(type, path)`` in the exact reader's order); Fallback when the
    export holds anything only the exact reader reports.

    Bounded memory: pass 1 decodes each chunk of lines and writes its rows to one file per patient bucket (with the
    raw line, for the patients routed to the exact reader); pass 2 reads one bucket (whole patients) at a time.
    ``threads`` chunks / buckets at a time (Polars works outside the GIL)."""
    import polars as pl

    classify = Classifier(kb, today)
    total = sum(p.stat().st_size * (12 if p.name.endswith(".gz") else 1) for _, p in files)
    buckets = max(1, total // BUCKET_BYTES + 1)
    with tempfile.TemporaryDirectory(prefix="jakinib-columns-") as name, ThreadPoolExecutor(threads) as pool:
        tmp = Path(name)

        def route(task: tuple[int, int, str, Any]) -> list[tuple[int, str, Path]]:
            fi, ci, kind, lines = task
            df = decode(lines, kind, classify).with_columns(_b=_bucket_of(pl.col("_pid"), buckets))
            out = []
            for (b,), part in df.partition_by("_b", as_dict=True, include_key=False).items():
                path = tmp / f"{b}.{fi}.{ci}.arrow"
                part.write_ipc(path, compression="lz4")
                out.append((int(b), kind, path))  # type: ignore[arg-type]
            return out

        chunks = ((fi, ci, kind, lines) for fi, (kind, path) in enumerate(files)
                  for ci, lines in enumerate(_lines(path, fi)) if lines.height)
        written: dict[int, dict[str, list[Path]]] = {}
        for result in _ordered(pool, route, chunks, threads):
            for b, kind, path in result:
                written.setdefault(b, {}).setdefault(kind, []).append(path)

        def bucket(b: int) -> tuple[Any, int]:
            paths = written.get(b, {})
            parts = {kind: pl.concat([pl.read_ipc(p).drop("_raw") for p in ps]) for kind, ps in paths.items()}
            if "Patient" not in parts:
                if parts:
                    raise Fallback("resources without their Patient")
                return None, 0
            simple, records, exact = simple_table(parts, kb, today)
            table, refused = rows(simple.filter(~pl.col("id").is_in(list(exact))), records, kb, today, tmp)
            exact |= refused
            _count(simple.height - len(exact), len(exact))
            out = [table.filter(~pl.col("id").is_in(list(exact)))]
            if exact:
                raw = pl.concat([pl.read_ipc(p).select("_pid", "_f", "_n", "_raw") for ps in paths.values() for p in ps])
                raw = raw.filter(pl.col("_pid").is_in(list(exact))).sort(["_f", "_n"])
                grouped: dict[str, list[dict[str, Any]]] = {}
                for pid, text in raw.select("_pid", "_raw").iter_rows():
                    grouped.setdefault(pid, []).append(orjson.loads(text))
                out.append(exact_rows(grouped))
            return pl.concat(out), parts["Patient"].height

        frames, done = [], 0
        for df, n in _ordered(pool, bucket, iter(range(buckets)), threads - 1):
            if df is not None:
                frames.append(df)
            done += n
            if progress:
                progress(done)
    return pl.concat(frames).sort("id") if frames else flatten.frame([])


# ---- NDJSON with one Bundle per line --------------------------------------------------------------------------------

FAST_TYPES = ("Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement", "Immunization",
              "AllergyIntolerance")
EXACT_TYPES = ("Medication", "DiagnosticReport", "Procedure")  # read by the reader in ways this path does not follow


def _union() -> Any:
    """One struct holding every type's schema (the elements share their types across resource types)."""
    import polars as pl

    fields: dict[str, Any] = {}
    for schema in _schemas().values():
        for name, dtype in schema.items():
            if fields.setdefault(name, dtype) != dtype:
                raise AssertionError(f"{name}: two types in the union schema")
    return pl.Struct({"resourceType": pl.String, "id": pl.String,
                      "entry": pl.List(pl.Struct({"resource": pl.Struct(fields)}))})


def bundle_chunk(lines: Any, classify: Classifier, kb: KnowledgeBase, today: dt.date, tmp: Path,
                 name: str) -> tuple[Any, list[tuple[str, str]]]:
    """One chunk of Bundle lines (``_raw``, ``_n``) -> (cohort rows, bad lines in line order): the fast path, and the
    exact reader's own per-line task for the bundles it routes."""
    import polars as pl

    try:
        df = lines.with_columns(pl.col("_raw").str.json_decode(_union()).alias("_b"))
    except pl.exceptions.PolarsError as exc:
        raise Fallback(f"bundles: {exc}") from None
    df = df.with_columns(_lodd=pl.col("_raw").str.contains(ODD.pattern) | (pl.col("_b").struct.field("resourceType") != "Bundle").fill_null(True),
                         _labat=pl.col("_raw").str.contains('"abatement', literal=True))
    res = (df.select("_n", "_lodd", "_labat", _e=pl.col("_b").struct.field("entry")).explode("_e")
           .with_columns(_i=pl.int_range(pl.len()).over("_n"))
           .with_columns(_r=pl.col("_e").struct.field("resource")).drop("_e"))
    res = res.filter(pl.col("_r").is_not_null() | pl.col("_i").is_not_null()).unnest("_r")
    kind = pl.col("resourceType")
    patient_ids = (res.filter(kind == "Patient").group_by("_n", maintain_order=True)
                   .agg(_pid=pl.col("id").first(), _np=pl.len(), _noid=pl.col("id").is_null().any()))
    lines_ = df.select("_n", "_raw", "_lodd").join(patient_ids, on="_n", how="left")
    res = res.join(patient_ids.select("_n", "_pid"), on="_n", how="left")
    ref = pl.coalesce(pl.col("subject").struct.field("reference"), pl.col("patient").struct.field("reference"))
    wrong = (kind != "Patient") & ref.is_not_null() & (ref != "Patient/" + pl.col("_pid")).fill_null(True)
    bad_line = (res.group_by("_n").agg(_bad=(kind.is_null() | kind.is_in(EXACT_TYPES) | wrong.fill_null(True)).any()))
    lines_ = lines_.join(bad_line, on="_n", how="left")
    odd_lines = lines_.filter(pl.col("_pid").is_null() | (pl.col("_np") != 1) | pl.col("_noid") | pl.col("_bad").fill_null(False)
                              | pl.col("_lodd"))
    exact_n = set(odd_lines["_n"].to_list())
    res = res.filter(~pl.col("_n").is_in(list(exact_n)) & kind.is_in(FAST_TYPES)).rename({"_n": "_f", "_i": "_n"})
    schemas = _schemas()
    parts = {}
    for k in FAST_TYPES:
        sub = res.filter(kind == k)
        cols = list(schemas[SCHEMA_OF.get(k, k)])
        parts[k] = effects(sub.select(*cols, "_pid", "_f", "_n", "_lodd", "_labat"), k, classify)
    simple, records, exact = simple_table(parts, kb, today)
    table, refused = rows(simple.filter(~pl.col("id").is_in(list(exact))), records, kb, today, tmp)
    exact |= refused
    _count(simple.height - len(exact), len(exact) + len(exact_n))
    out = [table.filter(~pl.col("id").is_in(list(exact)))]
    again = lines_.filter(pl.col("_n").is_in(list(exact_n)) | pl.col("_pid").is_in(list(exact))).sort("_n")
    bad: list[tuple[str, str]] = []
    if again.height:
        more, bad = _exact_bundles(again, name)
        out.append(more)
    return pl.concat(out), bad


def _exact_bundles(lines: Any, name: str) -> tuple[Any, list[tuple[str, str]]]:
    """The exact reader's own task (``cohort/read._bundle_task``) for the routed lines: rows and bad lines."""
    from jakinib.cohort import read

    frames, bad = [], []
    for n, text in lines.select("_n", "_raw").iter_rows():
        df, problems, _ = read._bundle_task((name, n, [text.encode()]))
        frames.append(df)
        bad += problems
    return pl_concat(frames), bad


def pl_concat(frames: list[Any]) -> Any:
    import polars as pl

    return pl.concat(frames) if frames else flatten.frame([])


def read_bundles(path: Path, kb: KnowledgeBase, today: dt.date, problems: Any,
                 progress: Callable[[int], None] | None = None, threads: int = THREADS) -> Any:
    """The cohort table of NDJSON with one Bundle per line; bad lines go to ``problems`` in line order, as the exact
    reader reports them (Fallback when the file holds what only the exact reader reports). Chunks are read by
    ``threads`` threads (Polars works outside the GIL)."""
    import polars as pl

    classify = Classifier(kb, today)
    frames, done = [], 0
    found: list[tuple[str, str]] = []  # reported once the whole file is read (a Fallback midway reports nothing twice)
    with tempfile.TemporaryDirectory(prefix="jakinib-columns-") as name, ThreadPoolExecutor(threads) as pool:
        def task(lines: Any) -> tuple[Any, list[tuple[str, str]]]:
            return bundle_chunk(lines.drop("_f"), classify, kb, today, Path(name), str(path))

        for df, bad in _ordered(pool, task, (lines for lines in _lines(path, 0, CHUNK_BYTES // 2) if lines.height), threads):
            found += bad
            frames.append(df)
            done += df.height
            if progress:
                progress(done)
    df = pl.concat(frames) if frames else flatten.frame([])
    if df["id"].is_duplicated().any():
        raise Fallback("a patient id appears more than once")
    for where, message in found:
        problems.add(where, message)
    return df.sort("id")


def _ordered(pool: Any, fn: Callable[[Any], Any], items: Iterator[Any], ahead: int) -> Iterator[Any]:
    """fn over items in a pool, results in input order, at most ``ahead`` + 1 in flight (bounded memory)."""
    pending: list[Any] = []
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()
