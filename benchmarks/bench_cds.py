"""CDS Hooks latency and overload on loopback: an open-loop rate ladder against a baseline in the same run.

The load generator is a lean keep-alive client on raw asyncio streams (uvloop when installed), so that the
client's own CPU does not decide the result on a machine where client and server share the cores.
Run: python benchmarks/bench_cds.py [--rates 50,100,200,300,350,400,600,800] [--seconds 5] [--timeout 2]
Starts `jakinib serve` on a free loopback port (local mode). For each rate, requests are sent on a fixed
schedule whatever the server does (open loop: a slow answer does not slow the sender, as with real EHRs),
for --seconds, first to GET /api/v1/health (the baseline), then as CDS order-sign calls. Latency is counted
from the scheduled send time, so queueing in the client counts against the server. Per rate it prints
p50/p99 of the answers, the 503s (overload refusals) and how fast they came, client time-outs, and the
ratio of CDS p99 to the health p99 at the same rate, and the client's own lag (scheduled send to the actual
write, p99): when that is large, the load generator was starved of CPU and the rung says little about the server.
The rungs past 400 req/s are past one process's capacity on a 2-core machine (about 600 calls/s): they show the refusals.
Targets: p99 < 100 ms at 300 req/s; past capacity, 503s in < 50 ms and no client time-outs.
Bounded: at most rate x seconds requests per step, each with a --timeout, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps(json.loads((ROOT / "tests" / "fixtures" / "cds" / "order-sign-upadacitinib.json").read_text())).encode()


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


class Pool:
    """A lean HTTP/1.1 keep-alive client (raw asyncio streams): the load generator must cost far less CPU than the
    server it measures, and httpx costs about as much per request as the server does (both share these cores)."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit, self.open = host, port, limit, 0
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.freed = asyncio.Condition()

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            if self.idle:
                return self.idle.pop()
            if self.open < self.limit:
                self.open += 1
                try:
                    return await asyncio.open_connection(self.host, self.port)
                except OSError:
                    self.open -= 1
                    raise
            async with self.freed:
                await self.freed.wait()

    async def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if conn is None:
            self.open -= 1
        else:
            self.idle.append(conn)
        async with self.freed:
            self.freed.notify()

    async def request(self, raw: bytes) -> tuple[int, float]:
        """(status, when the request was written): the time from schedule to write is the client's own lag."""
        conn = await self.get()
        try:
            written = time.perf_counter()
            conn[1].write(raw)
            head = await conn[0].readuntil(b"\r\n\r\n")
            length = int(next((line.split(b":", 1)[1] for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), b"0"))
            await conn[0].readexactly(length)
            status = int(head[9:12])
            keep = b"connection: close" not in head.lower()
        except BaseException:
            conn[1].close()
            await self.put(None)
            raise
        if keep:
            await self.put(conn)
        else:
            conn[1].close()
            await self.put(None)
        return status, written


def raw_request(host: str, port: int, cds: bool) -> bytes:
    if cds:
        return (f"POST /cds-services/jakinib-order-sign HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    return f"GET /api/v1/health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


async def ladder_step(url: str, cds: bool, rate: float, seconds: float, timeout: float) -> dict:
    """Send rate x seconds requests on schedule; return latencies by outcome."""
    host, port = url.removeprefix("http://").split(":")
    raw = raw_request(host, int(port), cds)
    n = int(rate * seconds)
    out: dict[str, list[float]] = {"ok": [], "503": [], "other": [], "timeout": [], "lag": []}
    pool = Pool(host, int(port), limit=500)
    t0 = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        at = t0 + i / rate
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        try:
            async with asyncio.timeout(timeout):
                status, written = await pool.request(raw)
            kind = "ok" if status == 200 else ("503" if status == 503 else "other")
            out["lag"].append(written - at)
        except TimeoutError:
            kind = "timeout"
        except (OSError, asyncio.IncompleteReadError, ValueError):
            kind = "other"
        out[kind].append(time.perf_counter() - at)

    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    _done, pending = await asyncio.wait(tasks, timeout=seconds + timeout + 5)  # bounded in time, whatever happens
    for task in pending:
        task.cancel()
    out["timeout"] += [timeout] * len(pending)
    for _reader, writer in pool.idle:
        writer.close()
    return out


def run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100)[q - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="50,100,200,300,350,400,600,800")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--timeout", type=float, default=2)
    ap.add_argument("--url", help="measure a server already running here (loopback) instead of starting one")
    a = ap.parse_args()
    rates = [float(r) for r in a.rates.split(",")]
    proc, url = (None, a.url.rstrip("/")) if a.url else start_server()
    rows = []
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    try:
        t = time.perf_counter()
        first = httpx.post(url + "/cds-services/jakinib-order-sign", content=BODY, headers={"content-type": "application/json"})
        first_ms = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        httpx.post(url + "/cds-services/jakinib-order-sign", content=BODY, headers={"content-type": "application/json"})
        second_ms = (time.perf_counter() - t) * 1e3
        print(f"first CDS call after start: {first_ms:.0f} ms (status {first.status_code}); second: {second_ms:.0f} ms")
        run(ladder_step(url, True, 20, 1, a.timeout))  # settle
        for rate in rates:
            base = run(ladder_step(url, False, rate, a.seconds, a.timeout))
            cds = run(ladder_step(url, True, rate, a.seconds, a.timeout))
            rows.append((rate, base, cds))
            time.sleep(1)  # let the server drain between steps
    finally:
        if proc is not None:
            proc.terminate()
    print(f"{'rate':>5} | {'health p50':>10} {'p99':>7} | {'cds ok':>6} {'p50':>7} {'p99':>7} | {'503':>5} {'503 p99':>8} | "
          f"{'timeouts':>8} {'other':>5} | {'p99 ratio':>9} | {'client lag p99':>14}")
    for rate, base, cds in rows:
        answered = cds["ok"] + cds["503"]
        ratio = pct(answered, 99) / pct(base["ok"], 99) if base["ok"] and answered else float("nan")
        print(f"{rate:5.0f} | {pct(base['ok'], 50) * 1e3:8.1f}ms {pct(base['ok'], 99) * 1e3:5.1f}ms | {len(cds['ok']):6d} "
              f"{pct(cds['ok'], 50) * 1e3:5.1f}ms {pct(cds['ok'], 99) * 1e3:5.1f}ms | {len(cds['503']):5d} "
              f"{pct(cds['503'], 99) * 1e3:6.1f}ms | {len(cds['timeout']):8d} {len(cds['other']):5d} | {ratio:8.1f}x | {pct(cds['lag'], 99) * 1e3:12.1f}ms")
    at300 = next((c for r, _, c in rows if r == 300), None)
    if at300 is not None:
        p99 = pct(at300["ok"], 99)
        print(f"target p99 < 100 ms at 300 req/s: {'PASS' if p99 < 0.1 else 'FAIL'} ({p99 * 1e3:.1f} ms)")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    over = [c for _, _, c in rows if c["503"]]
    if over:
        worst = max(pct(c["503"], 99) for c in over)
        timeouts = sum(len(c["timeout"]) for _, _, c in rows)
        print(f"target 503 p99 < 50 ms and no time-outs past capacity: {'PASS' if worst < 0.05 and not timeouts else 'FAIL'} "
              f"(503 p99 {worst * 1e3:.1f} ms, {timeouts} time-outs)")


if __name__ == "__main__":
    main()
