"""What ``jakinib screen`` shows: a Rich progress bar with rows per second on stderr, the summary as tables (or JSON
only, with ``--json``), and the files it writes."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from jakinib.errors import InputError


def run(kb: Any, source: Path, drugs: list[str] | None, regulators: list[str] | None, today: dt.date | None,
        out: Path | None, report: Path | None, engine: str, master: str | None, on_error: str, as_json: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from jakinib.cohort import screen

    for path, ends in ((out, (".parquet", ".csv")), (report, (".html", ".htm"))):
        if path is not None and not path.name.lower().endswith(ends):
            raise InputError(f"{path}: use a file name ending in {' or '.join(ends)}")
    err = Console(stderr=True)
    started = time.perf_counter()
    bar = Progress(TextColumn("screening"), BarColumn(), TextColumn("{task.completed:,} patients"),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err, transient=True,
                   disable=not err.is_terminal)
    task = bar.add_task("read", total=None, rate="")

    def progress(done: int) -> None:
        elapsed = max(time.perf_counter() - started, 1e-9)
        bar.update(task, completed=done, rate=f"{done / elapsed:,.0f} rows/s")

    with bar:
        result = screen.screen(source, kb, drugs, regulators or ["FDA"], today, on_error, engine, master, progress)
    elapsed = time.perf_counter() - started
    s = result.summary
    err.print(f"screened {s['patients']:,} patients x {len(s['drugs'])} drugs x {len(s['regulators'])} regulator(s) = "
              f"{s['rows']:,} rows in {elapsed:.1f} s ({s['rows'] / max(elapsed, 1e-9):,.0f} rows/s)", highlight=False)
    skipped = result.problems
    if skipped.count:
        err.print(f"skipped {skipped.count} bad record(s); first: " + " | ".join(skipped.first), highlight=False)
    if out is not None:
        result.write(out)
    if report is not None:
        from jakinib.cohort import report as html

        report.write_text(html.render(result), encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps(s, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    _print(s)


def _print(s: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=None if sys.stdout.isatty() else 200)
    con.print(f"[bold]Cohort screen[/bold] {s['patients']:,} patients, {s['on_a_jak_inhibitor']:,} on a JAK inhibitor, "
              f"today {s['today']}, labels: {', '.join(s['regulators'])}")
    statuses = ["contraindicated", "do-not-start", "avoid", "caution", "ok"]
    t = Table(title="Status by drug (all patients, as candidates or on it)")
    for c in ["drug", "on it", "with gaps", *statuses]:
        t.add_column(c)
    for drug, d in s["per_drug"].items():
        t.add_row(drug, str(d["on_it"]), str(d["with_gaps"]), *[str(d["statuses"].get(x, 0)) for x in statuses])
    con.print(t)
    g = Table(title="Care gaps (patients on the drug)")
    g.add_column("gap")
    g.add_column("count")
    for gap, n in s["gaps"].items():
        g.add_row(gap, str(n))
    con.print(g)
    r = Table(title="Most at risk")
    for c in ["patient", "drug", "regulator", "status", "overdue days", "gaps"]:
        r.add_column(c, overflow="fold")
    for x in s["most_at_risk"]:
        r.add_row(x["id"], x["drug"], x["regulator"], x["status"], "" if x["max_overdue_days"] is None else str(x["max_overdue_days"]),
                  ", ".join(x["gaps"]))
    con.print(r)
