"""Page times and weights on a live `jakinib serve` (loopback).

Run: python benchmarks/bench_pages.py [--repeat 15]
For each page: median and worst time over --repeat requests, the HTML weight and the weight with its
stylesheet and icon; a baseline in the same run (GET /api/v1/health) and the ratio. Targets: < 200 ms, < 300 KB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_cds import start_server

PAGES = ["/", "/search?q=zoster", "/jak-inhibitors", "/jak-inhibitors?region=EMA", "/drugs/upadacitinib", "/drugs/tofacitinib",
         "/approvals", "/compare", "/check", "/pathways", "/simulate?drug=tofacitinib"]


def timed(client: httpx.Client, url: str, n: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t0)
        size = len(r.content)
    return times, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    n = ap.parse_args().repeat
    proc, url = start_server()
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            assets = sum(len(c.get(a).content) for a in ("/static/style.css", "/static/favicon.svg"))
            for p in PAGES:
                c.get(p)  # warm
            base, _ = timed(c, "/api/v1/health", n)
            b = statistics.median(base)
            print(f"{'baseline /api/v1/health':32s} median {b * 1000:6.1f} ms")
            worst = 0.0
            for p in PAGES:
                times, size = timed(c, p, n)
                med, mx = statistics.median(times), max(times)
                worst = max(worst, mx)
                ok = mx < 0.2 and size + assets < 300_000
                print(f"{p:32s} median {med * 1000:6.1f} ms  max {mx * 1000:6.1f} ms  ratio {med / b:5.1f}x  "
                      f"html {size / 1024:6.1f} KB  with assets {(size + assets) / 1024:6.1f} KB  {'PASS' if ok else 'FAIL'}")
            print(f"worst page time {worst * 1000:.1f} ms (target < 200 ms)")
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
