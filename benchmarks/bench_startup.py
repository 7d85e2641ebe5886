"""Start-up costs: `jakinib --help`, knowledge-base load, and one full check.

Run: python benchmarks/bench_startup.py [--repeat N]
Prints medians and ratios against baselines measured in the same run:
  --help        vs `python -c pass`                      (target: --help < 0.5 s)
  kb load       vs bare YAML parsing of the same files   (target: load < 200 ms)
  check (all)   vs evaluating nothing (patient parse only) (target: < 5 ms for all drugs)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    n = ap.parse_args().repeat
    script = Path(sys.executable).with_name("jakinib")

    py = median_time(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), n)
    helps = median_time(lambda: subprocess.run([str(script), "--help"], check=True, capture_output=True), n)
    print(f"python -c pass      {py * 1000:8.1f} ms")
    print(f"jakinib --help      {helps * 1000:8.1f} ms   ratio {helps / py:5.1f}x   target < 500 ms: {'PASS' if helps < 0.5 else 'FAIL'}")

    from jakinib.knowledge import base, loader

    files = sorted(loader.DATA_DIR.rglob("*.yaml"))
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = median_time(lambda: [yaml.load(p.read_text(), Loader=loader_cls) for p in files], n)
    full = median_time(lambda: base.build(loader.DATA_DIR, cache=False), n)
    base.build(loader.DATA_DIR)  # make sure the cache is written
    cached = median_time(lambda: base.build(loader.DATA_DIR), n)
    print(f"YAML parse only     {raw * 1000:8.1f} ms   ({len(files)} files)")
    print(f"kb validate (cold)  {full * 1000:8.1f} ms   ratio {full / raw:5.1f}x   (first load after an edit)")
    print(f"kb load (cached)    {cached * 1000:8.1f} ms   ratio {cached / raw:5.1f}x   target < 200 ms: {'PASS' if cached < 0.2 else 'FAIL'}")

    import json

    import jakinib
    from jakinib.safety import engine, parse_patient

    kb = jakinib.load()
    raw_patient = json.loads((Path(__file__).parents[1] / "examples" / "patient.json").read_text())
    patient = parse_patient(raw_patient, kb)
    engine.check(kb, patient, regulator="EMA")  # warm caches
    m = max(n * 20, 100)
    parse = median_time(lambda: parse_patient(raw_patient, kb), m)
    full_check = median_time(lambda: engine.check(kb, patient, regulator="EMA"), m)
    print(f"patient parse       {parse * 1000:8.3f} ms")
    print(f"check all {len(kb.drugs):2d} drugs  {full_check * 1000:8.3f} ms   ratio {full_check / parse:5.1f}x vs parse   "
          f"target < 5 ms: {'PASS' if full_check < 0.005 else 'FAIL'}")


if __name__ == "__main__":
    main()
