"""Cohort screening speed, against baselines measured in the same run.

    python benchmarks/bench_screen.py flat [N]      N patients (default 1,000,000) x all drugs from a flat Parquet file
    python benchmarks/bench_screen.py bulk [N]      N patients from a FHIR Bulk export (about 10 resources each); peak RSS
    python benchmarks/bench_screen.py cql [N]       per patient x drug against cql-execution (../shared/peers) on one cohort
    python benchmarks/bench_screen.py spark [N]     the Spark engine (local[*]) on N patients (default 100,000)

The baseline for flat/bulk/spark is the single-patient checker (``engine.check``) on a sample of the same patients.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

import jakinib
from jakinib.cohort import generate as gen
from jakinib.cohort import read, screen
from jakinib.safety import engine
from jakinib.safety.patient import parse_patient

TODAY = dt.date(2026, 12, 1)
SHARED = Path(__file__).resolve().parents[2] / "shared"


def flat_table(n: int, seed: int = 1) -> pl.DataFrame:
    """A large flat cohort, vectorised (the generator's columns and prevalences, drawn with numpy)."""
    rng = np.random.default_rng(seed)
    conds = np.array(["", "", "", "", "", "myocardial-infarction", "malignancy", "latent-tuberculosis", "venous-thromboembolism",
                      "cardiovascular-risk-factors", "herpes-zoster"])
    meds = np.array(["", "", "", "", "methotrexate", "ketoconazole", "probenecid", "clopidogrel", "fluconazole", "aspirin"])
    scr = np.array(["negative"] * 10 + ["positive", "indeterminate", None, None])
    start = np.datetime64(TODAY) - rng.integers(0, 900, n).astype("timedelta64[D]")
    last = np.datetime64(TODAY) - rng.integers(0, 400, n).astype("timedelta64[D]")
    df = pl.DataFrame({
        "id": [f"pt{i:08d}" for i in range(n)], "age": rng.integers(12, 90, n).astype(float),
        "sex": rng.choice(["female", "male"], n), "smoking": rng.choice(["never", "former", "current", None], n),
        "indication": rng.choice(["atopic-dermatitis", "rheumatoid-arthritis", "alopecia-areata", None], n),
        "conditions": rng.choice(conds, n), "medications": rng.choice(meds, n),
        "labs.anc": np.round(np.maximum(0.1, rng.normal(4, 1.5, n)), 1), "labs.alc": np.round(np.maximum(0.1, rng.normal(1.8, 0.6, n)), 1),
        "labs.hb": np.round(np.maximum(5, rng.normal(13.5, 1.8, n)), 1), "labs.platelets": np.round(np.maximum(10, rng.normal(250, 70, n))),
        "labs.egfr": np.round(np.clip(rng.normal(85, 25, n), 5, 190)),
        "screening.tuberculosis": rng.choice(scr, n), "screening.tuberculosis.date": start - rng.integers(-60, 400, n).astype("timedelta64[D]"),
        "screening.hepatitis-b": rng.choice(scr, n),
        "jak": rng.choice(["tofacitinib", "baricitinib", "upadacitinib", "abrocitinib", None], n), "jak_start": start,
        "jak_dose_mg": rng.choice([5.0, 15.0, 100.0, 4.0], n), "jak_every_h": np.full(n, 24.0),
        "records.anc.first": last - rng.integers(30, 900, n).astype("timedelta64[D]"), "records.anc.last": last,
    })
    return df.with_columns([pl.Series(c, df[c].to_list(), dtype=pl.String) for c in df.columns if df[c].dtype == pl.Object])


def per_patient_baseline(kb, table: pl.DataFrame, k: int = 1000) -> float:
    """Seconds per patient x drug for engine.check on k rows (all drugs, FDA)."""
    rows = table.head(k).to_dicts()
    simple = []
    for r in rows:
        p = {"age": r["age"], "sex": r["sex"], "smoking": r["smoking"], "indication": r["indication"],
             "conditions": [c for c in [r["conditions"]] if c], "medications": [m for m in [r["medications"]] if m],
             "labs": {k2[5:]: r[k2] for k2 in r if k2.startswith("labs.") and r[k2] is not None},
             "screening": {t: r[f"screening.{t}"] for t in ("tuberculosis", "hepatitis-b") if r.get(f"screening.{t}")}}
        simple.append({k2: v for k2, v in p.items() if v is not None})
    t = time.perf_counter()
    for p in simple:
        engine.check(kb, parse_patient(p, kb), None, "FDA", None, TODAY)
    return (time.perf_counter() - t) / (k * len(kb.drugs))


def bench_flat(n: int) -> None:
    kb = jakinib.load()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cohort.parquet"
        table = flat_table(n)
        table.write_parquet(path)
        base = per_patient_baseline(kb, table)
        t = time.perf_counter()
        result = screen.screen(path, kb, regulators=["FDA"], today=TODAY)
        el = time.perf_counter() - t
    per = el / result.rows.height
    print(f"flat parquet: {n:,} patients x {len(kb.drugs)} drugs = {result.rows.height:,} rows in {el:.1f} s "
          f"({result.rows.height / el:,.0f} rows/s); engine.check {base * 1e6:.0f} us per patient x drug -> {base / per:,.0f}x")


def bench_bulk(n: int) -> None:
    kb = jakinib.load()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "export"
        folder.mkdir()
        t = time.perf_counter()
        chunk = 20_000
        for start in range(0, n, chunk):
            ps = gen.patients(min(chunk, n - start), start + 1, TODAY, kb)
            for p in ps:
                p["id"] = f"b{start}-{p['id']}"
            sub = Path(d) / f"part{start}"
            gen.write_bulk(ps, sub, kb, TODAY, parts=1)
            for f in sub.iterdir():  # Observation.1.ndjson.gz -> Observation.<start>.ndjson.gz
                kind, _, rest = f.name.split(".", 2)
                f.rename(folder / f"{kind}.{start}.{rest}")
        resources = sum(_count_lines(f) for f in folder.iterdir())
        print(f"generated {n:,} patients, {resources:,} resources in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        result = screen.screen(folder, kb, regulators=["FDA"], today=TODAY)
        el = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6 + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    print(f"bulk export: {n:,} patients ({resources:,} resources) in {el:.1f} s, {result.rows.height:,} rows; "
          f"peak RSS (largest process, GB): {peak:.2f}")


def _count_lines(path: Path) -> int:
    import gzip

    with (gzip.open(path) if path.name.endswith(".gz") else open(path, "rb")) as fh:
        return sum(1 for _ in fh)


def bench_cql(n: int) -> None:
    kb = jakinib.load()
    peers = SHARED / "peers"
    with tempfile.TemporaryDirectory() as d:
        cohort = Path(d) / "cohort.ndjson"
        subprocess.run([sys.executable, str(peers / "make_cohort.py"), str(n), str(cohort)], check=True)
        shutil.copytree(peers / "cql", Path(d) / "cql")
        os.chmod(Path(d) / "cql", 0o755)
        for f in (Path(d) / "cql").iterdir():
            os.chmod(f, 0o644)
        subprocess.run(["npm", "install", "--silent"], cwd=Path(d) / "cql", check=True, capture_output=True)
        t = time.perf_counter()
        proc = subprocess.run(["node", "run.js", str(cohort)], cwd=Path(d) / "cql", capture_output=True, text=True, check=True)
        cql_s = time.perf_counter() - t
        cql = json.loads(proc.stdout[proc.stdout.index("{"):])
        t = time.perf_counter()
        result = screen.screen(cohort, kb, regulators=["FDA"], today=TODAY)
        js = time.perf_counter() - t
    rows = result.rows
    abro = rows.filter(pl.col("drug") == "abrocitinib")
    counts = {"do-not-start": abro.filter(pl.col("status").is_in(["do-not-start", "contraindicated"])).height,
              "antiplatelet": abro.filter(pl.col("findings").cast(pl.List(pl.String)).list.eval(pl.element().str.contains("antiplatelet")).list.any()).height,
              "dose-50": abro.filter(pl.col("dose_mg") == 50).height}
    cql_per = cql_s / n
    jk_per = js / rows.height
    print(f"cql-execution: {n:,} patients x 1 drug in {cql_s:.1f} s ({cql_per * 1e3:.2f} ms per patient x drug); counts {cql}")
    print(f"jakinib screen: {n:,} patients x {len(kb.drugs)} drugs in {js:.1f} s ({jk_per * 1e6:.1f} us per patient x drug) "
          f"-> {cql_per / jk_per:,.0f}x per patient x drug; abrocitinib FDA counts {counts}")


def bench_spark(n: int) -> None:
    kb = jakinib.load()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cohort.parquet"
        flat_table(n).write_parquet(path)
        table = read.read(path, kb, TODAY, read.Problems())
        t = time.perf_counter()
        pol = screen.run(kb, table, list(kb.drugs), ["FDA"], TODAY)
        pt = time.perf_counter() - t
        t = time.perf_counter()
        spk = screen.run(kb, table, list(kb.drugs), ["FDA"], TODAY, engine="spark")
        st = time.perf_counter() - t
    print(f"spark local[*]: {n:,} patients x {len(kb.drugs)} drugs in {st:.1f} s; polars {pt:.1f} s ({st / pt:.1f}x); "
          f"identical rows: {spk.equals(pol)}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "flat"
    default = {"flat": 1_000_000, "bulk": 1_000_000, "cql": 2000, "spark": 100_000}[what]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else default
    {"flat": bench_flat, "bulk": bench_bulk, "cql": bench_cql, "spark": bench_spark}[what](count)
