"""One CDS Hooks call with a real-sized prefetch: the largest Synthea bundle split into the five prefetch searches.

Run: python benchmarks/bench_cds_prefetch.py [--runs 20]
Times, in process, the work one call does off the event loop (strict parse + validation + read, then the check
and the cards: ``cdshooks.read_call`` + ``cdshooks.assess_call``) and prints the median with ``json.loads`` of
the same body as the baseline measured in the same run (ratio = call / json.loads). Needs ../shared/fhir/synthea.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT.parent / "shared" / "fhir" / "synthea"


def call_body() -> bytes:
    bundle_path = max(SYNTHEA.glob("*.json"), key=lambda p: p.stat().st_size)
    resources = [e["resource"] for e in json.loads(bundle_path.read_text())["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")

    def search(kind: str) -> dict:
        return {"resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": r} for r in resources if r["resourceType"] == kind]}

    body = copy.deepcopy(json.loads((ROOT / "tests" / "fixtures" / "cds" / "order-sign-upadacitinib.json").read_text()))
    body["context"]["patientId"] = patient["id"]
    body["prefetch"] = {"patient": patient, "conditions": search("Condition"), "observations": search("Observation"),
                        "medications": search("MedicationRequest"), "immunizations": search("Immunization")}
    return json.dumps(body).encode()


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    if not SYNTHEA.is_dir():
        sys.exit(f"needs {SYNTHEA}")
    from jakinib.jsonio import loads_strict
    from jakinib.web import cdshooks

    raw = call_body()

    def one_call() -> None:
        cdshooks.assess_call(cdshooks.read_call("jakinib-order-sign", loads_strict(raw)), "FDA")

    one_call()  # warm the knowledge base and the indexes
    call = median_ms(one_call, a.runs)
    base = median_ms(lambda: json.loads(raw), a.runs)
    print(f"body {len(raw) / 1e3:.0f} kB: CDS call work {call:.1f} ms median, json.loads {base:.2f} ms, ratio {call / base:.0f}x")


if __name__ == "__main__":
    main()
