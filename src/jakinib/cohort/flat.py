"""A flat patient table (CSV or Parquet) -> the cohort table, column-wise.

Columns follow the simple patient JSON (docs/cohort.md): ``id, age, sex, weight_kg, pregnant, breastfeeding, smoking,
indication, regulator, conditions, medications, vaccines_planned`` (lists: ``;``-separated in CSV, lists in
Parquet), ``labs.<lab>`` in the lab's canonical unit or ``labs.<lab> [<unit>]`` in any unit jakinib converts,
``metabolizer.<enzyme>``, ``screening.<test>`` and ``screening.<test>.date``, and for care gaps ``jak, jak_start,
jak_dose_mg, jak_every_h`` and ``records.<lab>.first/.last`` (dates). Required: ``id, age, sex, conditions,
medications``; a column jakinib does not know is an error (a typo is not silence).

Values are validated and resolved as ``safety/patient.py`` does for one patient (synonyms and codes through the
knowledge base, implausible labs refused, Cockcroft-Gault CrCl from creatinine when CrCl is absent, men not
pregnant); the screen-vs-check property test holds the two to the same answers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jakinib.cohort import flatten
from jakinib.cohort.read import Problems
from jakinib.errors import InputError, JakinibError
from jakinib.knowledge import fields as f
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety import units
from jakinib.safety.patient import COMPARATORS

REQUIRED = ("id", "age", "sex", "conditions", "medications")
LAB_COLUMN = re.compile(r"^labs\.([a-z0-9-]+)(?:\s*\[(.+)\])?$")
LISTS = ("conditions", "history", "allergies", "medications", "vaccines_planned")
TRUE, FALSE = {"true", "yes", "1", "t", "y"}, {"false", "no", "0", "f", "n"}


def _raw(path: Path, kind: str) -> Any:
    import polars as pl

    try:
        if kind == "csv":
            return pl.read_csv(path, infer_schema=False, truncate_ragged_lines=False)
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read as {kind.upper()}: {first}") from None


def read(path: Path, kind: str, kb: KnowledgeBase, problems: Problems, today: Any = None) -> Any:
    """The cohort table of a flat file; bad rows stop the run or (skip) are dropped and counted."""
    import polars as pl

    df = _raw(path, kind)
    known = set(flatten.columns())
    labs: dict[str, tuple[str, str | None]] = {}
    for name in df.columns:
        m = LAB_COLUMN.match(name)
        if m and m.group(1) in f.LAB_UNITS:
            labs[name] = (m.group(1), m.group(2))
        elif name not in known:
            raise InputError(f"{path}:1: unknown column {name!r} (see docs/cohort.md for the columns)")
    for name in REQUIRED:
        if name not in df.columns:
            raise InputError(f"{path}:1: missing column {name!r} (required: {', '.join(REQUIRED)})")
    where = (lambda i: f"{path}:{i + 2}") if kind == "csv" else (lambda i: f"{path}: row {i + 1}")
    df = df.with_row_index("_row")
    checker = _Rows(df, where, problems)
    text = {c: pl.col(c).cast(pl.String).str.strip_chars() for c in df.columns if df.schema[c] != pl.List(pl.String)}
    out: dict[str, Any] = {"id": pl.col("id").cast(pl.String)}
    checker.require(pl.col("id").is_null() | (pl.col("id").cast(pl.String) == ""), "id is empty")

    numeric = {c for c, t in df.schema.items() if t.is_numeric()}  # Parquet numbers are read as they are, not as text

    def number(name: str) -> Any:
        return pl.col(name).cast(pl.Float64) if name in numeric else checker.number(name, text[name])

    for name in ("age", "weight_kg", "height_cm", "jak_dose_mg", "jak_every_h"):
        if name in df.columns:
            out[name] = number(name)
    if "age" in out:
        checker.require(~out["age"].is_between(0, 130), "age is implausible (0-130 years)")
    if "weight_kg" in out:
        checker.require(~out["weight_kg"].is_between(0.3, 500), "weight_kg is implausible (0.3-500 kg)")
    if "height_cm" in out:
        checker.require(~out["height_cm"].is_between(20, 280), "height_cm is implausible (20-280 cm)")
    for name in f.BOOLEAN:
        if name in df.columns and df.schema[name] == pl.Boolean:
            out[name] = pl.col(name)
        elif name in df.columns:
            low = text[name].str.to_lowercase()
            checker.require(low.is_not_null() & ~low.is_in([*TRUE, *FALSE, ""]), f"{name}: expected true or false")
            out[name] = pl.when(low.is_in(list(TRUE))).then(True).when(low.is_in(list(FALSE))).then(False)
    choices = {"sex": f.CHOICE["sex"], "smoking": f.CHOICE["smoking"],
               **{f"metabolizer.{e}": f.METABOLIZER for e in f.ENZYMES},
               **{f"screening.{t}": f.SCREENING_RESULTS for t in f.SCREENING_TESTS},
               **{flatten.comparator_column(lab): COMPARATORS for lab in f.LAB_UNITS}}
    for name, allowed in choices.items():
        if name in df.columns:
            low = _blank_null(text[name].str.to_lowercase())
            checker.require(low.is_not_null() & ~low.is_in(list(allowed)), f"{name}: not one of {', '.join(allowed)}")
            out[name] = pl.when(low != "not-done").then(low) if name.startswith("screening.") else low
    for name, kind_ in flatten.columns().items():
        if kind_ == "date" and name in df.columns and df.schema[name] in (pl.Date, pl.Datetime):
            out[name] = pl.col(name).cast(pl.Date)
        elif kind_ == "date" and name in df.columns:
            raw = _blank_null(text[name])
            value = raw.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            checker.require(raw.is_not_null() & value.is_null(), f"{name}: not an ISO date (YYYY-MM-DD)")
            out[name] = value
    for name, (lab, unit) in labs.items():
        if name in numeric:
            out[f"labs.{lab}"] = checker.lab(name, text[name], lab, unit, kb, pl.col(name).cast(pl.Float64))
            continue
        # a value reported with a comparator ("<0.5", "> 60") keeps it, as the patient JSON's {"comparator": "<"}
        cmp = text[name].str.extract(r"^(<=|>=|<|>)", 1)
        out[f"labs.{lab}"] = checker.lab(name, text[name].str.replace(r"^(<=|>=|<|>)\s*", ""), lab, unit, kb)
        given = out.get(flatten.comparator_column(lab))  # its own column, if the table has one
        out[flatten.comparator_column(lab)] = cmp if given is None else pl.coalesce(cmp, given)
    # the typed values once, as columns (with the row checks so far, in the same pass); what follows reads them
    df = df.with_columns(**{f"__{k}": v for k, v in out.items()})
    checker.df = df
    checker.flush()
    out = {k: pl.col(f"__{k}") for k in out}
    if today is not None:  # as the FHIR reader: a lab whose last record is older than its max_age_days is stale
        for lab in list(labs.values()):
            lab_id, last = lab[0], f"records.{lab[0]}.last"
            lab_def = kb.labs.get(lab_id)
            if lab_def is not None and lab_def.max_age_days and last in out and f"labs.{lab_id}" in out:
                fresh = (pl.lit(today) - out[last]).dt.total_days() <= lab_def.max_age_days
                out[f"labs.{lab_id}"] = pl.when(fresh).then(out[f"labs.{lab_id}"])
                if flatten.comparator_column(lab_id) in out:
                    out[flatten.comparator_column(lab_id)] = pl.when(fresh).then(out[flatten.comparator_column(lab_id)])
        for test, window in kb.screening_windows.items():  # as the checker: a dated non-positive result past its window
            name, date = f"screening.{test}", f"screening.{test}.date"
            if window.max_age_days is not None and name in out and date in out:
                stale = ((pl.lit(today) - out[date]).dt.total_days() > window.max_age_days) & (out[name] != "positive")
                out[name] = pl.when(stale.fill_null(False)).then(None).otherwise(out[name])
    if "sex" in out and "age" in out:  # as parse_patient: pregnancy is asked of females aged 10-55 only
        from jakinib.safety.patient import REPRODUCTIVE_AGE

        lo, hi = REPRODUCTIVE_AGE
        outside = (out["sex"] == "female") & ((out["age"] < lo) | (out["age"] > hi))
        for name in f.BOOLEAN:
            out[name] = pl.when(outside).then(out[name].fill_null(False) if name in out else False).otherwise(
                out.get(name, pl.lit(None, dtype=pl.Boolean)))
    if "sex" in out:  # as parse_patient: a man is not pregnant nor breastfeeding
        for name in f.BOOLEAN:
            out[name] = pl.when(out["sex"] == "male").then(out[name].fill_null(False) if name in out else False).otherwise(
                out.get(name, pl.lit(None, dtype=pl.Boolean)))

    lists = {name: _split(df, name) for name in LISTS if name in df.columns}
    df2 = df.with_columns(**{f"_{k}": v for k, v in lists.items()})
    checker.df = df2  # the split lists are checked too
    resolved = _resolve(df2, kb, checker, where)
    for name in ("indication", "regulator", "jak"):
        if name in df.columns:
            resolved[name] = checker.term(name, _blank_null(text[name]), kb)
    table = df2.with_columns(**{k: v for k, v in out.items()}, **{k: v for k, v in resolved.items() if not isinstance(v, str)})
    table = _derive_renal(table)
    checker.finish()
    table = table.filter(~pl.col("_row").is_in(checker.bad_rows()))
    keep = [c for c in flatten.columns() if c in table.columns]
    table = flatten.complete(table.select(keep))
    ids = table["id"]
    if not (ids.slice(1) > ids.slice(0, max(ids.len() - 1, 0))).fill_null(False).all():  # files are often in id order already
        table = table.sort("id")
    return table


def _blank_null(e: Any) -> Any:
    import polars as pl

    return pl.when(e != "").then(e)


def _split(df: Any, name: str) -> Any:
    import polars as pl

    if df.schema[name] == pl.List(pl.String):
        return pl.col(name).list.eval(pl.element().str.strip_chars()).list.eval(pl.element().filter(pl.element() != ""))
    return (pl.col(name).cast(pl.String).fill_null("").str.split(";")
            .list.eval(pl.element().str.strip_chars()).list.eval(pl.element().filter(pl.element() != "")))


def _resolve(df: Any, kb: KnowledgeBase, checker: _Rows, where: Any) -> dict[str, Any]:
    """Conditions, medications (-> interaction classes, unmapped) and planned vaccines, resolved per distinct value."""
    import polars as pl

    out: dict[str, Any] = {}
    for key in ("conditions", "history"):  # history = past conditions (resolved), as the FHIR reader keeps them
        if f"_{key}" not in df.columns:
            continue
        ids: dict[str, str] = {}
        for value in df[f"_{key}"].explode().drop_nulls().unique().to_list():
            try:
                ids[value] = kb.condition(value).id
            except JakinibError as exc:
                checker.bad_value(f"_{key}", value, f"{key}: {exc}")
        out[key] = (pl.col(f"_{key}").list.eval(pl.element().replace_strict(ids, default=None, return_dtype=pl.String).drop_nulls())
                    .list.unique(maintain_order=True))  # drop_nulls inside the eval: ~6x faster than .list.drop_nulls()
    if "_allergies" in df.columns:  # JAK inhibitors the patient is allergic to, by name, brand or synonym (as parse_patient)
        drugs: dict[str, str] = {}
        for value in df["_allergies"].explode().drop_nulls().unique().to_list():
            try:
                drugs[value] = kb.drug(value).name
            except JakinibError as exc:
                checker.bad_value("_allergies", value, f"allergies: {exc}")
        out["allergies"] = (pl.col("_allergies").list.eval(pl.element().replace_strict(drugs, default=None, return_dtype=pl.String)
                                                             .drop_nulls()).list.unique(maintain_order=True))
    if "_medications" in df.columns:
        names: dict[str, str] = {}
        classes: dict[str, str] = {}
        for value in df["_medications"].explode().drop_nulls().unique().to_list():
            entry = kb.medication(value)
            if entry is not None:
                names[value] = entry.name
                classes[value] = ";".join(entry.classes)
        meds = pl.col("_medications")
        mapped = meds.list.eval(pl.element().filter(pl.element().is_in(list(names))))
        out["medications"] = meds.list.eval(pl.element().replace(names)).list.unique(maintain_order=True)
        out["unmapped_medications"] = meds.list.eval(pl.element().filter(~pl.element().is_in(list(names))))
        out["medication_classes"] = (mapped.list.eval(pl.element().replace_strict(classes, default="", return_dtype=pl.String))
                                     .list.join(";").str.split(";").list.eval(pl.element().filter(pl.element() != ""))
                                     .list.unique(maintain_order=True))
    if "_vaccines_planned" in df.columns:
        out["vaccines_planned"] = pl.col("_vaccines_planned").list.eval(pl.element().str.to_lowercase())
    return out


class _PolarsOps:
    """``renal.py``'s equation operations on Polars columns."""

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        import polars as pl

        return pl.when(cond).then(a).otherwise(b)

    @staticmethod
    def minimum(a: Any, b: Any) -> Any:
        import polars as pl

        return pl.min_horizontal(a, b)

    @staticmethod
    def maximum(a: Any, b: Any) -> Any:
        import polars as pl

        return pl.max_horizontal(a, b)


def _derive_renal(table: Any) -> Any:
    """CrCl and eGFR derived from creatinine where missing, as ``renal.derive_labs`` does (its own equations, on
    columns): never over a measured value, never below 18 years, Cockcroft-Gault needing weight, CKD-EPI 2021 with
    cystatin C when it is known."""
    import polars as pl

    from jakinib.safety import renal

    if "labs.creatinine" not in table.columns:
        return table
    ops = _PolarsOps()

    def col(name: str) -> Any:
        return pl.col(name) if name in table.columns else pl.lit(None, dtype=pl.Float64 if name != "sex" else pl.String)

    age, sex, weight, scr, cys = col("age"), col("sex"), col("weight_kg"), col("labs.creatinine"), col("labs.cystatin-c")
    female = sex == "female"
    adult = ~(age.is_not_null() & (age < renal.ADULT_AGE))
    usable = scr.is_not_null() & (scr != 0) & adult & age.is_not_null() & sex.is_not_null()
    crcl = pl.when(usable & weight.is_not_null()).then(renal.cockcroft_gault_terms(age, weight, female, scr, ops))
    egfr = pl.when(usable).then(pl.when(cys.is_not_null() & (cys != 0))
                                .then(renal.ckd_epi_2021_cystatin_terms(age, female, scr, cys, ops))
                                .otherwise(renal.ckd_epi_2021_terms(age, female, scr, ops)))
    # a censored creatinine censors what is derived from it, the other way (as parse_patient): "<0.5" mg/dL -> eGFR ">..."
    s_cmp = col("labs.creatinine.comparator") if "labs.creatinine.comparator" in table.columns else pl.lit(None, dtype=pl.String)
    flipped = s_cmp.replace_strict({"<": ">", "<=": ">=", ">": "<", ">=": "<="}, default=None, return_dtype=pl.String)
    derived = {}
    for lab, value in (("crcl", crcl), ("egfr", egfr)):
        given = col(f"labs.{lab}")
        cmp = col(f"labs.{lab}.comparator") if f"labs.{lab}.comparator" in table.columns else pl.lit(None, dtype=pl.String)
        derived[f"labs.{lab}.comparator"] = pl.when(given.is_null() & value.is_not_null()).then(flipped).otherwise(cmp)
        derived[f"labs.{lab}"] = given.fill_null(value)
    return table.with_columns(**derived)


class _Rows:
    """Row-level validation: each check marks bad rows; the first stops the run (or all are skipped)."""

    def __init__(self, df: Any, where: Any, problems: Problems) -> None:
        self.df, self.where, self.problems = df, where, problems
        self.bad: set[int] = set()
        self.found: list[tuple[int, str]] = []
        self.pending: list[tuple[Any, str]] = []

    def require(self, bad: Any, message: str) -> None:
        """Mark the rows where ``bad`` holds (checked with the others in one pass, in the order they were asked)."""
        self.pending.append((bad, message))

    def flush(self) -> None:
        import polars as pl

        if not self.pending:
            return
        flags = self.df.select(pl.col("_row"), *[b.fill_null(False).alias(f"_b{k}") for k, (b, _) in enumerate(self.pending)])
        flags = flags.filter(pl.any_horizontal(pl.exclude("_row")))
        for k, (_, message) in enumerate(self.pending):
            self._mark(flags.filter(pl.col(f"_b{k}"))["_row"].to_list(), message)
        self.pending = []

    def _mark(self, rows: list[int], message: str) -> None:
        for r in rows:
            if r not in self.bad:
                self.bad.add(r)
                self.found.append((r, message))

    def finish(self) -> None:
        """Report the bad rows in line order: the first stops the run, or all are counted (skip)."""
        self.flush()
        for r, message in sorted(self.found):
            self.problems.add(self.where(r), message)

    def bad_value(self, list_column: str, value: str, message: str) -> None:
        import polars as pl

        self.require(pl.col(list_column).list.contains(value), message)

    def bad_rows(self) -> list[int]:
        self.flush()
        return sorted(self.bad)

    def number(self, name: str, text: Any) -> Any:
        import polars as pl

        raw = _blank_null(text)
        value = raw.cast(pl.Float64, strict=False)
        self.require(raw.is_not_null() & value.is_null(), f"{name}: expected a number")
        return value

    def lab(self, name: str, text: Any, lab: str, unit: str | None, kb: KnowledgeBase, native: Any = None) -> Any:
        canonical = f.LAB_UNITS[lab]
        value = native if native is not None else self.number(name, text)
        if unit:
            try:
                factor = units.convert(1.0, unit, canonical, f.MOLAR_MASS_G_MOL.get(lab))
            except JakinibError as exc:
                raise InputError(f"column {name!r}: {exc}") from None
            value = value * factor
        lab_def = kb.labs.get(lab)
        if lab_def is not None:
            lo, hi = lab_def.plausible
            self.require(value.is_not_null() & ~value.is_between(lo, hi),
                         f"{name}: implausible (plausible {lo:g}-{hi:g} {canonical}); give the unit in the column name, "
                         f"e.g. 'labs.{lab} [{canonical}]'")
        return value

    def term(self, name: str, text: Any, kb: KnowledgeBase) -> Any:
        import polars as pl

        lookup = {"indication": lambda v: kb.indication(v).id, "regulator": kb.regulator, "jak": lambda v: kb.drug(v).name}[name]
        ids: dict[str, str] = {}
        for value in self.df.select(text.alias("v"))["v"].drop_nulls().unique().to_list():
            try:
                ids[value] = lookup(value)
            except JakinibError as exc:
                self.require(text == value, f"{name}: {exc}")
        return text.replace_strict(ids, default=None, return_dtype=pl.String)
