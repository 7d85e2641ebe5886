"""Cohort inputs -> the cohort table (``flatten``): a flat CSV/Parquet table, NDJSON with one FHIR Bundle per line,
or a FHIR Bulk Data export folder (``Patient.ndjson``, ``Observation.1.ndjson.gz``, ...).

The FHIR forms are read in columns first (``cohort/fhir_columns.py``): Polars decodes the elements the single-patient
reader reads, the reader's own per-resource functions classify each distinct code/status/unit once, and the
flat-table validation builds the rows; a patient with any shape that path does not reproduce exactly is read by the
single-patient checker's reader (``interop/fhir.py``, ``_row`` here), and an input with a bad record is read all the
exact way (which reports it). So codes, units, latest-by-instant and clinical status mean the same here as in
``jakinib check``; tests/test_cohort_fhir_columns.py holds the two paths to the same rows. The exact path groups a
Bulk export by patient with bounded memory: one streaming pass routes each line to a bucket file by a hash of its
patient, then each bucket (a few tens of MB) is grouped and read, two processes at a time.

Bad input is one line naming file and line. With ``on_error="skip"`` bad records are counted (the first few kept)
and the rest is read.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jakinib.cohort import flatten, therapy
from jakinib.errors import InputError, JakinibError
from jakinib.knowledge.base import KnowledgeBase

READ_TYPES = ("Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement", "Immunization",
              "AllergyIntolerance")
CHUNK = 2000  # bundles per task
BUCKET_BYTES = 48 << 20
FIRST_FEW = 5
COLUMNS = True  # the columnar fast path (cohort/fhir_columns.py) for FHIR inputs; False: the exact reader only


@dataclass
class Problems:
    """Bad records: the first one stops the run, or (skip) all are counted and the first few kept."""

    skip: bool = False
    count: int = 0
    first: list[str] = field(default_factory=list)
    not_read: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        line = f"{where}: {message}"
        if not self.skip:
            raise InputError(line)
        self.count += 1
        if len(self.first) < FIRST_FEW:
            self.first.append(line)

    def to_json(self) -> dict[str, Any]:
        return {"skipped": self.count, "first": self.first, "files_not_read": self.not_read}


Progress = Callable[[int], None]


def kind_of(path: Path) -> str:
    """'bulk', 'bundles', 'csv' or 'parquet'."""
    if path.is_dir():
        return "bulk"
    name = path.name.lower()
    if name.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")):
        return "bundles"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    raise InputError(f"{path}: unknown input (a Bulk export folder, .ndjson[.gz] with a Bundle per line, .csv or .parquet)")


def read(path: Path, kb: KnowledgeBase, today: dt.date, problems: Problems, progress: Progress | None = None,
         workers: int | None = None) -> Any:
    """The cohort table (Polars DataFrame, one row per patient, sorted by id) of any input form."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    kind = kind_of(path)
    if kind in ("csv", "parquet"):
        from jakinib.cohort import flat

        df = flat.read(path, kind, kb, problems, today)
        if progress:
            progress(df.height)
        return df
    if kind == "bundles" and COLUMNS:
        from jakinib.cohort import fhir_columns

        _STATE.update(kb=kb, today=today, labs=therapy.lab_index(kb))
        try:
            return fhir_columns.read_bundles(path, kb, today, problems, progress)
        except fhir_columns.Fallback:
            pass  # a bad line or a shape only the exact reader reports: read it all the exact way
    if kind == "bundles":
        tasks: Iterator[Any] = ((str(path), start, lines) for start, lines in _chunks(path))
        big = path.stat().st_size > 32 << 20
        return _run(_bundle_task, tasks, today, problems, progress, workers if workers is not None else (2 if big else 0))
    return _bulk(path, today, problems, progress, workers, kb)


def _open(path: Path) -> Any:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _chunks(path: Path) -> Iterator[tuple[int, list[bytes]]]:
    with _open(path) as fh:
        lines: list[bytes] = []
        start = 1
        for i, raw in enumerate(fh, 1):
            lines.append(raw)
            if len(lines) >= CHUNK:
                yield start, lines
                start, lines = i + 1, []
        if lines:
            yield start, lines


# ---- per-process state: the knowledge base, loaded once per worker ------------------------------

_STATE: dict[str, Any] = {}


def _init(today: dt.date) -> None:
    import jakinib

    kb = jakinib.load()
    _STATE.update(kb=kb, today=today, labs=therapy.lab_index(kb))


def _row(pid: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    from jakinib.interop.fhir import patient_from_bundle
    from jakinib.safety.engine import stale_screening

    kb, today = _STATE["kb"], _STATE["today"]
    patient = patient_from_bundle(resources, kb, today)
    row = flatten.patient_row(pid, patient, therapy.read(resources, kb, _STATE["labs"]))
    for test in stale_screening(kb, patient, today):  # as flat.py: the result is not current, its date is kept for the gaps
        row[f"screening.{test}"] = None
    return row


def _loads(raw: bytes) -> Any:
    import orjson

    return orjson.loads(raw)


def _malformed(raw: bytes, exc: Exception) -> str:
    if not raw.rstrip().endswith(b"}"):
        return "malformed JSON (truncated line: it does not end with '}')"
    return f"malformed JSON ({exc})"


def _bundle_task(task: tuple[str, int, list[bytes]]) -> tuple[Any, list[tuple[str, str]], int]:
    from jakinib.interop.fhir import resources as bundle_resources

    name, start, lines = task
    rows, bad = [], []
    for i, raw in enumerate(lines, start):
        if not raw.strip():
            continue
        where = f"{name}:{i}"
        try:
            payload = _loads(raw)
        except ValueError as exc:
            bad.append((where, _malformed(raw, exc)))
            continue
        try:
            items = bundle_resources(payload)
            pid = next((str(r.get("id")) for r in items if r["resourceType"] == "Patient" and r.get("id")), f"line-{i}")
            rows.append(_row(pid, items))
        except JakinibError as exc:
            bad.append((where, str(exc)))
    return flatten.frame(rows), bad, len(lines)


def _run(fn: Callable[[Any], tuple[Any, list[tuple[str, str]], int]], tasks: Iterator[Any], today: dt.date,
         problems: Problems, progress: Progress | None, workers: int) -> Any:
    """Map tasks to frames (in a process pool when ``workers``), feeding problems in input order."""
    import polars as pl

    frames, done = [], 0

    def take(result: tuple[Any, list[tuple[str, str]], int]) -> None:
        nonlocal done
        df, bad, _ = result
        for where, msg in bad:
            problems.add(where, msg)
        frames.append(df)
        done += df.height
        if progress:
            progress(done)

    if workers:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(today,)) as pool:
            for result in pool.map(fn, tasks, chunksize=1):
                take(result)
    else:
        _init(today)
        for task in tasks:
            take(fn(task))
    df = pl.concat(frames) if frames else flatten.frame([])
    dup = df.filter(pl.col("id").is_duplicated())
    if dup.height:
        problems.add("input", f"patient id {dup['id'][0]!r} appears more than once")
        df = df.unique("id", keep="first")
    return df.sort("id")


# ---- FHIR Bulk Data export -----------------------------------------------------------------------

TYPE_OF_FILE = re.compile(r"^([A-Z][A-Za-z]+)")


def _bulk_files(folder: Path, problems: Problems) -> list[tuple[str, Path]]:
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or not p.name.lower().endswith((".ndjson", ".ndjson.gz")):
            continue
        m = TYPE_OF_FILE.match(p.name)
        kind = m.group(1) if m else ""
        if kind in READ_TYPES:
            out.append((kind, p))
        else:
            problems.not_read.append(p.name)
    if not any(k == "Patient" for k, _ in out):
        raise InputError(f"{folder}: not a FHIR Bulk export: no Patient*.ndjson[.gz] file")
    return out


def _patient_of(r: dict[str, Any]) -> str | None:
    if r.get("resourceType") == "Patient":
        return str(r["id"]) if r.get("id") else None
    for key in ("subject", "patient"):
        ref = r.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            text = ref["reference"]
            return text.rsplit("Patient/", 1)[1] if "Patient/" in text else text
    return None


REFERENCE = re.compile(rb'"(?:subject|patient)"\s*:\s*\{[^{}]*?"reference"\s*:\s*"([^"\\]*)"')
PATIENT_ID = re.compile(rb'"id"\s*:\s*"([^"\\]*)"')


def _quick_patient(raw: bytes, kind: str) -> str | None:
    """The patient a line belongs to, read without parsing the JSON, when that is unambiguous: one ``"id"`` in a
    Patient line, one subject/patient key and nothing contained otherwise. None: parse the line (``_patient_of``).
    The line is parsed in pass 2 anyway, which checks its JSON, its type and that it was routed to its patient."""
    if kind == "Patient":
        if raw.count(b'"id"') != 1 or raw.count(b'"resourceType"') != 1:
            return None
        m = PATIENT_ID.search(raw)
    else:
        if raw.count(b'"subject"') + raw.count(b'"patient"') != 1 or b'"contained"' in raw or raw.count(b'"resourceType"') != 1:
            return None
        m = REFERENCE.search(raw)
    if m is None:
        return None
    text = m.group(1).decode()
    return text.rsplit("Patient/", 1)[1] if "Patient/" in text else text


def _bucket(pid: str, buckets: int) -> int:
    return zlib.crc32(pid.encode()) % buckets


def _route_task(task: tuple[str, str, str, int, str]) -> tuple[list[tuple[str, str]], int]:
    """Pass 1 for one file: append each line to its patient's bucket (``file<TAB>line<TAB>json``), reading only the
    patient reference where that is unambiguous (``_quick_patient``), else parsing and checking the line."""
    kind, name, outdir, buckets, tag = task
    bad: list[tuple[str, str]] = []
    handles: dict[int, Any] = {}
    n = 0
    try:
        with _open(Path(name)) as fh:
            for i, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                n += 1
                pid = _quick_patient(raw, kind)
                if pid is None:
                    where = f"{name}:{i}"
                    try:
                        r = _loads(raw)
                    except ValueError as exc:
                        bad.append((where, _malformed(raw, exc)))
                        continue
                    problem = _type_problem(r, kind)
                    if problem:
                        bad.append((where, problem))
                        continue
                    pid = _patient_of(r)
                    if pid is None:
                        bad.append((where, f"{kind} without {'an id' if kind == 'Patient' else 'a subject/patient reference'}"))
                        continue
                b = _bucket(pid, buckets)
                if b not in handles:
                    handles[b] = open(Path(outdir) / f"{b}.{tag}", "ab")  # noqa: SIM115 (closed in finally)
                handles[b].write(f"{name}\t{i}\t".encode() + raw.rstrip(b"\r\n") + b"\n")
    finally:
        for h in handles.values():
            h.close()
    return bad, n


def _type_problem(r: Any, kind: str) -> str | None:
    rtype = r.get("resourceType") if isinstance(r, dict) else None
    if rtype == kind:
        return None
    return (f"resource type {rtype!r} in a {kind} file (a Bulk export file holds one type)" if rtype in READ_TYPES
            else f"unknown resource type {rtype!r}")


def _group_task(task: tuple[list[str], int, int]) -> tuple[Any, list[tuple[str, str]], int]:
    """Pass 2 for one bucket: parse and check each line, group lines by patient and read each patient with the
    shared FHIR reader."""
    paths, bucket, buckets = task
    groups: dict[str, list[dict[str, Any]]] = {}
    first: dict[str, str] = {}
    has_patient: set[str] = set()
    bad: list[tuple[str, str]] = []
    kinds: dict[bytes, str] = {}
    for p in paths:
        with open(p, "rb") as fh:
            for raw in fh:
                name, line, body = raw.split(b"\t", 2)
                where = f"{name.decode()}:{int(line)}"
                try:
                    r = _loads(body)
                except ValueError as exc:
                    bad.append((where, _malformed(body.rstrip(b"\n"), exc)))
                    continue
                if name not in kinds:
                    m = TYPE_OF_FILE.match(Path(name.decode()).name)
                    kinds[name] = m.group(1) if m else ""
                problem = _type_problem(r, kinds[name])
                pid = _patient_of(r)
                if problem is None and (pid is None or _bucket(pid, buckets) != bucket):
                    problem = f"{kinds[name]}: its patient reference could not be read"
                if problem:
                    bad.append((where, problem))
                    continue
                assert pid is not None
                groups.setdefault(pid, []).append(r)
                first.setdefault(pid, f"{name.decode()}:{int(line)}")
                if r["resourceType"] == "Patient":
                    has_patient.add(pid)
    rows = []
    for pid, items in groups.items():
        if pid not in has_patient:
            bad.append((first[pid], f"references Patient/{pid}, which is not in the export"))
            continue
        if sum(1 for r in items if r["resourceType"] == "Patient") > 1:
            bad.append((first[pid], f"Patient/{pid} appears more than once"))
            continue
        try:
            rows.append(_row(pid, items))
        except JakinibError as exc:
            bad.append((first[pid], f"Patient/{pid}: {exc}"))
    return flatten.frame(rows), bad, len(groups)


def _bulk(folder: Path, today: dt.date, problems: Problems, progress: Progress | None, workers: int | None,
          kb: KnowledgeBase | None = None) -> Any:
    files = _bulk_files(folder, problems)
    if kb is not None and COLUMNS:
        from jakinib.cohort import fhir_columns

        _STATE.update(kb=kb, today=today, labs=therapy.lab_index(kb))
        try:
            return fhir_columns.read_bulk(files, kb, today, progress)
        except fhir_columns.Fallback:
            pass  # a bad record or a shape only the exact reader reports: read it all the exact way
    total = sum(p.stat().st_size * (5 if p.name.endswith(".gz") else 1) for _, p in files)
    buckets = max(1, min(512, total // BUCKET_BYTES + 1))
    workers = workers if workers is not None else (2 if total > 32 << 20 else 0)
    with tempfile.TemporaryDirectory(prefix="jakinib-bulk-") as tmp:
        tasks = [(kind, str(p), tmp, buckets, f"{i}") for i, (kind, p) in enumerate(files)]
        if workers:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_route_task, tasks))
        else:
            results = [_route_task(t) for t in tasks]
        for bad, _ in results:
            for where, msg in bad:
                problems.add(where, msg)
        by_bucket: dict[str, list[str]] = {}
        for entry in sorted(os.listdir(tmp), key=lambda e: (int(e.split(".")[0]), int(e.split(".")[1]))):
            by_bucket.setdefault(entry.split(".")[0], []).append(str(Path(tmp) / entry))
        tasks2 = ((paths, int(b), buckets) for b, paths in by_bucket.items())
        return _run(_group_task, tasks2, today, problems, progress, workers)
