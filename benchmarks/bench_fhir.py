"""Reading a real 2-4 MB Synthea bundle: jakinib's FHIR reader vs json.loads of the same text, median of N runs.

    python benchmarks/bench_fhir.py [BUNDLE.json] [--runs 15]

Prints both medians and their ratio (target: reading < 100 ms). Uses ../shared/fhir/synthea when no file is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import jakinib
from jakinib.interop import fhir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", nargs="?")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    if args.bundle:
        path = Path(args.bundle)
    else:
        folder = Path(__file__).parents[1].parent / "shared" / "fhir" / "synthea"
        sized = [p for p in sorted(folder.glob("*.json")) if 2_000_000 <= p.stat().st_size <= 4_000_000]
        if not sized:
            raise SystemExit(f"no 2-4 MB bundle in {folder}")
        path = sized[0]
    text = path.read_text()
    kb = jakinib.load()
    today = dt.date(2021, 4, 1)
    fhir.patient_from_bundle(json.loads(text), kb, today)  # warm caches (unit registry, indexes)
    loads, reads, alone = [], [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        payload = json.loads(text)
        loads.append(time.perf_counter() - t)
        t = time.perf_counter()
        fhir.patient_from_bundle(json.loads(text), kb, today)
        reads.append(time.perf_counter() - t)
        t = time.perf_counter()
        fhir.patient_from_bundle(payload, kb, today)
        alone.append(time.perf_counter() - t)
    ml, mr, ma = (statistics.median(x) * 1000 for x in (loads, reads, alone))
    print(f"bundle {path.name} ({path.stat().st_size / 1e6:.1f} MB, {len(payload['entry'])} resources)")
    print(f"json.loads median {ml:.1f} ms; json.loads + read_bundle + Patient median {mr:.1f} ms; ratio {mr / ml:.2f}x; "
          f"target < 100 ms: {'ok' if mr < 100 else 'MISSED'}; the reader alone (parsed JSON in) median {ma:.1f} ms")


if __name__ == "__main__":
    main()
