"""Start-up costs: `jakinib --help`, `jakinib drug NAME`, `jakinib check PATIENT`, knowledge-base load, one check.

Run: python benchmarks/bench_startup.py [--repeat N] [--no-bytecode]
Prints medians (wall time, and the child's CPU time, which a busy machine inflates less) and ratios against
baselines measured in the same run, with the load average beside them. The commands run as an installed jakinib
does: with its bytecode cached (``pip install`` compiles it; here a warm-up run writes it to a temporary
PYTHONPYCACHEPREFIX, even where PYTHONDONTWRITEBYTECODE is set) and the knowledge-base cache warm.
``--no-bytecode`` measures a start-up that compiles jakinib's own modules every time instead.
  --help        vs `python -c pass`                      (target: --help < 0.5 s)
  drug NAME     vs `python -c pass`                      (target: < 300 ms wall, the knowledge-base cache warm)
  check PATIENT vs `python -c pass`  (one patient, all drugs; target: < 300 ms wall)
  both again with stdout a terminal (a pseudo-terminal, 200 columns), where Rich draws them in colour
  kb load       vs bare YAML parsing of the same files   (target: load < 200 ms)
  check (all)   vs evaluating nothing (patient parse only) (target: < 5 ms for all drugs)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
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


def median_run(cmd: list[str], repeat: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of a command run ``repeat`` times."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def median_run_tty(cmd: list[str], repeat: int, env: dict[str, str]) -> float:
    """Median wall time of a command whose stdout is a 200x50 terminal (a pseudo-terminal): Rich draws in colour."""
    import fcntl
    import pty
    import struct
    import termios

    walls = []
    for _ in range(repeat):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.DEVNULL, env=env)
        os.close(slave)
        while True:  # drain, or the child blocks on a full terminal buffer
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        proc.wait()
        walls.append(time.perf_counter() - t0)
        os.close(master)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode} on a terminal")
    return statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-bytecode", action="store_true", help="compile jakinib's modules on every start-up")
    args = ap.parse_args()
    n = args.repeat
    script = Path(sys.executable).with_name("jakinib")
    patient = Path(__file__).parents[1] / "examples" / "patient.json"

    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; nice {os.nice(0)}")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="jakinib-pycache-") as pycache:
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env["PYTHONPYCACHEPREFIX"] = pycache  # empty: nothing cached is found
            print("bytecode: not cached (jakinib's modules are compiled on every start-up)")
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pycache
            print("bytecode: cached, as after pip install (written by the warm-up runs to a temporary folder)")
        for warm in (["drug", "tofacitinib"], ["check", str(patient)], ["--help"]):  # KB cache and bytecode written
            subprocess.run([str(script), *warm], check=True, capture_output=True, env=env)
        py, py_cpu = median_run([sys.executable, "-c", "pass"], n, env)
        helps, _ = median_run([str(script), "--help"], n, env)
        print(f"python -c pass      {py * 1000:8.1f} ms   (cpu {py_cpu * 1000:6.1f} ms)")
        print(f"jakinib --help      {helps * 1000:8.1f} ms   ratio {helps / py:5.1f}x   target < 500 ms: {'PASS' if helps < 0.5 else 'FAIL'}")
        hot = (("jakinib drug NAME", [str(script), "drug", "tofacitinib"]),
               ("jakinib check (all)", [str(script), "check", str(patient)]))
        for label, cmd in hot:
            wall, cpu = median_run(cmd, n, env)
            print(f"{label:<19} {wall * 1000:8.1f} ms   ratio {wall / py:5.1f}x   (cpu {cpu * 1000:6.1f} ms)   "
                  f"target < 300 ms: {'PASS' if wall < 0.3 else 'FAIL'}   (output to a pipe, as above)")
        for label, cmd in hot:
            wall = median_run_tty(cmd, n, env)
            print(f"{label:<19} {wall * 1000:8.1f} ms   ratio {wall / py:5.1f}x   at a terminal (Rich draws in colour)")

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
