"""Drive the CDS Hooks endpoint with concurrent clients on loopback, paced, for a bounded time.

Run: python benchmarks/bench_cds.py [--rate 100] [--seconds 10] [--clients 8]
Starts `jakinib serve` on a free loopback port, sends order-sign requests at --rate requests/s
spread over --clients threads for --seconds, then prints throughput and p50/p95/p99 latency,
and a baseline in the same run: GET /api/v1/health at the same rate (ratio = CDS / baseline).
Target: p99 < 50 ms at 100 requests/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BODY = json.loads((ROOT / "tests" / "fixtures" / "cds" / "order-sign-upadacitinib.json").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "JAKINIB_DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("jakinib")), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def drive(url: str, method: str, path: str, rate: float, seconds: float, clients: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    interval = clients / rate
    deadline = time.perf_counter() + seconds

    def worker(offset: float) -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            next_at = time.perf_counter() + offset
            while next_at < deadline:
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                t0 = time.perf_counter()
                r = client.post(path, json=BODY) if method == "POST" else client.get(path)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if r.status_code != 200:
                        errors[0] += 1
                next_at += interval

    threads = [threading.Thread(target=worker, args=(i * interval / clients,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args()
    proc, url = start_server()
    try:
        drive(url, "POST", "/cds-services/jakinib-order-sign", a.rate, 1.0, a.clients)  # warm-up
        base, _ = drive(url, "GET", "/api/v1/health", a.rate, a.seconds, a.clients)
        cds, errors = drive(url, "POST", "/cds-services/jakinib-order-sign", a.rate, a.seconds, a.clients)
    finally:
        proc.terminate()
    for name, lat in (("health (baseline)", base), ("cds order-sign", cds)):
        print(f"{name:18s} n={len(lat):5d}  {len(lat) / a.seconds:6.1f} req/s  p50 {pct(lat, 50) * 1000:6.1f} ms  "
              f"p95 {pct(lat, 95) * 1000:6.1f} ms  p99 {pct(lat, 99) * 1000:6.1f} ms")
    print(f"ratio p99 cds/baseline: {pct(cds, 99) / pct(base, 99):.1f}x   errors: {errors}   "
          f"target p99 < 50 ms at {a.rate:g} req/s: {'PASS' if pct(cds, 99) < 0.05 else 'FAIL'}")


if __name__ == "__main__":
    main()
