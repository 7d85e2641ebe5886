"""The ``jakinib`` command line: every capability from the terminal, ``--json`` everywhere.

Heavy modules are imported inside the commands so ``jakinib --help`` stays fast. The commonest queries,
``drug NAME`` and ``check PATIENT``, start without Typer (:func:`_run_direct`) and, printing to a pipe or a file,
without Rich (:mod:`jakinib.textout` draws the same bytes): see ``benchmarks/bench_startup.py``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from jakinib.errors import JakinibError

if TYPE_CHECKING:
    import typer


def _readable_metavars() -> None:
    """Help that reads ``--drug NAME``, ``--json`` (a flag takes no value) and ``PATIENT``, not Typer's Python
    types (``--drug <list[str]>``, ``--json <bool>``, ``{patient}``): each option shows its ``metavar``, else its
    name in capitals."""
    from typer import core

    def option_type(self: Any, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return self.metavar or (self.name or "value").upper().replace("_", "-")

    def argument_name(self: Any) -> str:
        name = (self.metavar or self.name or "value").upper().replace("_", "-")
        return name + ("..." if self.nargs != 1 else "")

    def argument_usage(self: Any) -> str:
        name = (self.metavar or self.name or "value").upper().replace("_", "-")
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")

    core.TyperOption.display_type_rich = option_type  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    core.TyperArgument._rich_display_name = argument_name  # type: ignore[attr-defined]
    core.TyperArgument._usage_display_name = argument_usage  # type: ignore[attr-defined]
    core.TyperArgument.display_name_raw = property(  # type: ignore[method-assign,assignment]
        lambda self: (self.metavar or self.name or "value").upper().replace("_", "-"))


def _json_opt(typer: Any) -> Any:
    return Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]


if TYPE_CHECKING:
    JsonOpt = _json_opt(typer)

_COMMANDS: list[tuple[str, str | None, Any]] = []
"""(group, name, function) of every command, registered by :func:`_command` and given to Typer by :func:`_typer_app`."""


def _command(name: str | None = None, group: str = "app") -> Any:
    """Register a command of the ``jakinib`` app (``group="kb"``: of ``jakinib kb``)."""
    def register(fn: Any) -> Any:
        _COMMANDS.append((group, name, fn))
        return fn
    return register


def _typer_app() -> Any:
    """The Typer app, built on first use: ``drug`` and ``check`` with plain arguments run without importing Typer
    (:func:`_run_direct`), and everything else (help, usage errors, every other command) through it. The commands'
    annotations name ``typer`` and ``JsonOpt``, which are put in this module's namespace here, before Typer reads
    them."""
    if "app" in globals():
        return globals()["app"]
    import typer

    _readable_metavars()
    globals().update(typer=typer, JsonOpt=_json_opt(typer))
    main_app = typer.Typer(help="jakinib: the cited reference system for JAK inhibitors.", no_args_is_help=True,
                           add_completion=False, pretty_exceptions_enable=False)
    main_app.callback()(_root)
    kb = typer.Typer(help="Validate and describe the knowledge base.", no_args_is_help=True)
    main_app.add_typer(kb, name="kb")
    for group, name, fn in _COMMANDS:
        (kb if group == "kb" else main_app).command(name)(fn)
    globals().update(app=main_app, kb_app=kb)
    return main_app


def __getattr__(name: str) -> Any:
    """``jakinib.cli.app`` and ``jakinib.cli.kb_app`` (built on first use)."""
    if name in ("app", "kb_app"):
        _typer_app()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        from typer import Exit

        sys.stdout.write(f"jakinib {version('jakinib')}\n")
        raise Exit()


def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """jakinib: the cited reference system for JAK inhibitors."""


def _kb() -> Any:
    import jakinib

    return jakinib.load()


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _console() -> Any:
    """Where the commands print: Rich at a terminal; to a pipe or a file, :class:`_PlainConsole` (the same bytes)."""
    if _plain_output():
        return _PlainConsole()
    return _rich_console()


def _rich_console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def _plain_output() -> bool:
    """True when Rich would print plain text (no colour, 200 columns): stdout is not a terminal, writes UTF-8 (else
    Rich draws ASCII boxes), and neither FORCE_COLOR nor TTY_COMPATIBLE asks for colour."""
    import os

    out = sys.stdout
    try:
        if out.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    if os.environ.get("FORCE_COLOR") is not None or os.environ.get("TTY_COMPATIBLE"):
        return False
    return (getattr(out, "encoding", None) or "").lower().startswith("utf")


class _PlainConsole:
    """``Console.print`` for plain output, by :mod:`jakinib.textout`; what it does not lay out itself goes to Rich."""

    def print(self, *objects: Any, **options: Any) -> None:
        from jakinib import textout

        if not objects:
            sys.stdout.write("\n")
            return
        plain = len(objects) == 1 and isinstance(objects[0], str) and set(options) <= {"highlight"}
        text = textout.line(objects[0]) if plain else None
        if text is None:
            _rich_console().print(*objects, **options)
        else:
            sys.stdout.write(text)


def _cell(value: Any) -> str:
    """A table cell: nothing for None, ``12`` for 12.0 (integral data is printed as an integer), ``0.5`` as is."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _table(title: str | None, columns: list[str], rows: list[list[Any]], group: bool = False) -> None:
    """A Rich table; ``group=True`` prints the first column only where it changes, with a line between groups.

    To a pipe or a file, :func:`jakinib.textout.table` draws it (the same bytes, without Rich's cost)."""
    cells, ends = [], []
    for i, r in enumerate(rows):
        row = [_cell(v) for v in r]
        ends.append(group and i + 1 < len(rows) and rows[i + 1][0] != r[0])
        if group and i > 0 and rows[i - 1][0] == r[0]:
            row[0] = ""
        cells.append(row)
    if _plain_output():
        from jakinib import textout

        text = textout.table(title, columns, cells, ends)
        if text is not None:
            sys.stdout.write(text)
            return
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for row, end in zip(cells, ends, strict=True):
        table.add_row(*row, end_section=end)
    _rich_console().print(table)


@_command()
def drugs(as_json: JsonOpt = False) -> None:
    """List every JAK inhibitor with class, targets, routes and where it is approved."""
    from jakinib.knowledge import views

    kb = _kb()
    rows = [views.drug_summary(kb, d) for d in kb.drugs.values()]
    if as_json:
        return _emit_json(rows)
    _table("JAK inhibitors", ["drug", "class", "targets", "routes", "brands", "approved by"],
           [[r["name"], r["class"], ", ".join(r["targets"]), ", ".join(r["routes"]), ", ".join(r["brands"]),
             ", ".join(r["regulators"])] for r in rows])


@_command()
def drug(name: str, as_json: JsonOpt = False) -> None:
    """One drug: identity, targets, products, boxed warnings and approvals (by generic, brand or synonym)."""
    from jakinib.knowledge import views

    kb = _kb()
    d = kb.drug(name)
    data = views.drug_json(kb, d)
    if as_json:
        return _emit_json(data)
    con = _console()
    con.print(f"[bold]{d.name}[/bold] ({', '.join(data['brands'])}) — {d.drug_class}, {d.generation} generation")
    con.print(d.mechanism)
    if d.selectivity:
        con.print(f"Selectivity: {d.selectivity}")
    _table("Enzyme IC50", ["kinase", "IC50 nM", "ATP µM", "sources", "grade"],
           [[t.kinase, t.ic50_nM, t.atp_uM, ", ".join(t.sources), kb.grade(t.sources)] for t in d.targets])
    _table("Products", ["product", "route", "formulation", "strengths", "boxed warning"],
           [[p["name"], p["route"], p["formulation"], ", ".join(p["strengths"]),
             "; ".join(f"{b['regulator']}: {', '.join(kb.display_name(x, start=False) for x in b['topics'])}"
                       for b in p["boxed_warnings"]) or "none recorded"]
            for p in data["products"]])
    _print_approvals(data["approvals"])


def _print_approvals(rows: list[dict[str, Any]]) -> None:
    """Approvals grouped by drug (the name once per group), each product by its brand under that regulator."""
    rows = sorted(rows, key=lambda r: r["drug"])  # stable: each drug's rows keep their order
    _table("Approvals", ["drug", "brand", "regulator", "indication", "decision", "date", "min age", "population", "grade"],
           [[r["drug"], _product_brand(r["product"], r["regulator"]), r["regulator"], r["indication"], r["decision"],
             r["date"], r["min_age_years"], r["population"], r["grade"]] for r in rows], group=True)


@_command()
def approvals(
    drug: Annotated[str | None, typer.Option(help="Generic, brand or synonym.", metavar="NAME")] = None,
    regulator: Annotated[str | None, typer.Option(help="FDA, EMA, TGA, PMDA, MHRA, Medsafe, HealthCanada, NMPA.")] = None,
    indication: Annotated[str | None, typer.Option(help="Indication slug or synonym (e.g. AD, eczema).")] = None,
    age: Annotated[float | None, typer.Option(help="Only approvals that include this age (years).", metavar="YEARS")] = None,
    all_decisions: Annotated[bool, typer.Option("--all", help="Include rejections and withdrawals.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Approvals filtered by drug, regulator, indication and age."""
    if age is not None and not 0 <= age <= 130:
        raise JakinibError(f"--age {age:g} is not a plausible age in years (0-130)")
    kb = _kb()
    rows = [r.to_json() for r in kb.approvals(drug, regulator, indication, age, None if all_decisions else "approved")]
    if as_json:
        return _emit_json(rows)
    _print_approvals(rows)
    if not rows:
        _console().print("No recorded approval matches. (Absence here is not proof of absence: see `jakinib kb stats`.)")


@_command()
def compare(names: Annotated[list[str], typer.Argument(help="Two or more drugs.")], as_json: JsonOpt = False) -> None:
    """Drugs side by side: class, enzyme IC50s, routes, approvals by regulator, boxed warnings."""
    from jakinib.knowledge import schema, views

    kb = _kb()
    data = views.compare_json(kb, [kb.drug(n) for n in names])
    if as_json:
        return _emit_json(data)
    _table("Comparison", ["drug", "class", *[f"{k} IC50 nM" for k in schema.KINASES], "routes", "approved by", "boxed (by)"],
           [[r["name"], r["class"], *[r["ic50_nM"].get(k) for k in schema.KINASES], ", ".join(r["routes"]),
             ", ".join(sorted(r["approved"])), ", ".join(r["boxed_warning_regulators"])] for r in data["drugs"]])


@_command()
def search(text: str, as_json: JsonOpt = False) -> None:
    """Search drugs, brands, research codes, indications, label sections, rules, adverse effects and class facts."""
    hits = _kb().search(text)
    if as_json:
        return _emit_json(hits)
    if not hits:
        return _console().print(f"Nothing found for {text!r}.")
    _table(f"Search: {text}", ["kind", "result", "where it matched"], [[h["kind"], h["label"], h["snippet"]] for h in hits])


@_command()
def sources(source_id: Annotated[str | None, typer.Argument(help="One source id.")] = None, as_json: JsonOpt = False) -> None:
    """The source registry (labels, regulator records, papers, the seed), or one source."""
    from jakinib.errors import UnknownNameError
    from jakinib.knowledge import views

    kb = _kb()
    if source_id:
        sid = source_id.partition("#")[0]
        if sid not in kb.sources:
            raise UnknownNameError("source", sid, kb.sources)
        chosen = [kb.sources[sid]]
    else:
        chosen = list(kb.sources.values())
    data = [views.source_json(x) for x in chosen]
    if as_json:
        return _emit_json(data if not source_id else data[0])
    _table("Sources", ["id", "kind", "grade", "title", "regulator", "date", "as of", "url / doi"],
           [[x.id, x.kind, x.grade, x.title, x.regulator, x.date, x.as_of, x.url or x.doi] for x in chosen])


@_command()
def check(
    patient: Annotated[Path, typer.Argument(help="Patient JSON (simple form) or a FHIR R4 Bundle JSON.")],
    drug: Annotated[list[str] | None, typer.Option("--drug", help="Drug to assess (repeatable); default all.", metavar="NAME")] = None,
    regulator: Annotated[str | None, typer.Option(
        help="Whose labels: FDA, EMA, TGA, PMDA, MHRA, Medsafe, HealthCanada, NMPA "
             "(or $JAKINIB_REGULATOR); default FDA.")] = None,
    indication: Annotated[str | None, typer.Option(help="Indication (overrides the patient's).")] = None,
    today: Annotated[str | None, typer.Option(help="Date to count monitoring from; default today.",
                                              metavar="YYYY-MM-DD")] = None,
    details: Annotated[bool, typer.Option("--details", help="Every finding, screening and monitoring per drug.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Can this patient start these JAK inhibitors here? A summary per drug first; --details for the findings."""
    import datetime as dt

    import jakinib
    from jakinib.safety.engine import valid_today

    day = None
    if today:
        try:
            day = valid_today(dt.date.fromisoformat(today))
        except ValueError:
            raise JakinibError(f"--today {today!r} is not a date (YYYY-MM-DD)") from None
        except JakinibError as exc:
            raise JakinibError(f"--today: {exc}") from None
    regulator, regulator_from = _chosen_regulator(regulator)
    report = jakinib.check(patient, drugs=drug or None, regulator=regulator, indication=indication, today=day)
    if as_json:
        return _emit_json(report.to_json())
    _print_summary(report, regulator_from)
    if details or len(report.assessments) == 1:
        _print_report(report)
    else:
        _console().print("[dim]Every finding, screening and monitoring per drug: add --details "
                         "(or --drug NAME for one drug).[/dim]")


REGULATOR_ENV = "JAKINIB_REGULATOR"


def _chosen_regulator(option: str | None) -> tuple[str, str]:
    """The regulator slug and where it came from: --regulator, $JAKINIB_REGULATOR, or the default (FDA)."""
    import os

    if option:
        return _kb().regulator(option), "--regulator"
    env = os.environ.get(REGULATOR_ENV, "").strip()
    if env:
        try:
            return _kb().regulator(env), f"${REGULATOR_ENV}"
        except JakinibError as exc:
            raise JakinibError(f"{REGULATOR_ENV}={env!r}: {exc}") from None
    return "FDA", f"default; set --regulator or ${REGULATOR_ENV}"


def _shorten(text: str, width: int = 90) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0].rstrip(" ,;:(—-")
    return cut + "…"


def _deciding_reason(assessment: Any) -> str:
    """The message of the worst finding (the one that sets the status), or a plain word when nothing was found."""
    worst_first = [f for f in assessment.findings if f.severity == assessment.status]
    return _shorten(worst_first[0].message) if worst_first else "no finding against starting"


def _product_brand(product_id: str, regulator: str) -> str:
    """The brand a product is marketed as under ``regulator`` (its first brand when none is tied to it)."""
    try:
        _, product = _kb().product(product_id)
    except JakinibError:
        return product_id
    here = [b.name for b in product.brands if regulator in b.regulators]
    return (here or [b.name for b in product.brands] or ["no brand recorded"])[0]


def _print_summary(report: Any, regulator_from: str) -> None:
    """One row per drug, worst status first: drug (brand), status, dose, the one reason that decides it."""
    from jakinib.knowledge.schema import STATUS_ORDER

    con = _console()
    con.print(f"[bold]Regulator: {report.regulator}[/bold] ({regulator_from}) · indication: "
              f"{report.indication or 'not given'} · today: {report.today}", highlight=False)
    rows = []
    for a in sorted(report.assessments, key=lambda a: (STATUS_ORDER.index(a.status), a.drug)):
        dose = "—" if a.dose is None else (("withheld: " if a.dose.withheld else "") + _shorten(a.dose.text, 40))
        rows.append([f"{a.drug} ({_product_brand(a.product, report.regulator)})",
                     f"[{STATUS_STYLE[a.status]}]{a.status}[/]", dose, _deciding_reason(a)])
    _table(None, ["drug (brand)", "status", "dose", "deciding reason"], rows)


STATUS_STYLE = {"contraindicated": "bold white on red", "do-not-start": "bold red", "avoid": "bold yellow",
                "caution": "yellow", "ok": "bold green"}


def _print_report(report: Any) -> None:
    kb = _kb()
    con = _console()
    for a in report.assessments:
        con.print()
        con.print(f"[bold]{a.drug}[/bold] ({a.product}, {a.route}): [{STATUS_STYLE[a.status]}]{a.status}[/]")
        if a.dose:
            adj = f" — adjusted: {a.dose.reason}" if a.dose.adjusted else ""
            con.print(f"  dose: {a.dose.text}{adj}")
        for fnd in a.findings:
            grade = f" · {fnd.grade}" if fnd.grade else ""
            con.print(f"  [{STATUS_STYLE[fnd.severity]}]{fnd.severity:>15}[/] {fnd.message} [dim]({', '.join(fnd.sources)}{grade})[/dim]",
                      highlight=False)
        if a.screening_missing:
            con.print(f"  screen before starting: {', '.join(kb.display_name(x) for x in a.screening_missing)}")
        if a.monitoring:
            con.print("  monitoring: " + "; ".join(f"{kb.display_name(m.test)} {m.date or m.when}" for m in a.monitoring[:8]))


@_command()
def simulate(
    drug: Annotated[str | None, typer.Argument(help="The drug (omit to list which drugs can be simulated, and why not).")] = None,
    dose: Annotated[float | None, typer.Option("--dose", help="Dose in mg (default: the product's reference dose).", metavar="MG")] = None,
    every: Annotated[float | None, typer.Option("--every", help="Dosing interval in hours (24 = once daily).", metavar="HOURS")] = None,
    route: Annotated[str | None, typer.Option(help="oral or topical.", metavar="oral|topical")] = None,
    population: Annotated[int, typer.Option(help="Virtual patients (0 = typical subject only).", metavar="N")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed for the population.", metavar="N")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Write the concentration plot (.svg or .png).", metavar="FILE")] = None,
    params: Annotated[Path | None, typer.Option("--params", help="Your own PK and potency parameters (YAML; see docs/pharmacology.md).",
                                                metavar="FILE.yaml")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What a dosing day does to each JAK-STAT cytokine pathway (steady state, optionally a population)."""
    from jakinib.pharmacology import plots
    from jakinib.pharmacology import simulate as simulation
    from jakinib.pharmacology.simulate import simulate as run

    if drug is None and params is None:
        rows = simulation.reach(_kb())
        if as_json:
            return _emit_json(rows)
        _table("Which drugs can be simulated", ["drug", "simulable", "pathways with an IC50", "what is missing"],
               [[r["drug"], r["simulable"], f"{r['pathways_with_potency']} of {r['of_pathways']}",
                 "; ".join(r["missing"]) or "-"] for r in rows])
        return _console().print("Simulate another drug from your own published parameters: jakinib simulate --params FILE.yaml")
    user = None
    if params is not None:
        from jakinib.pharmacology import params as user_params

        user = user_params.read(params)

    if route is not None and route not in ("oral", "topical"):
        raise JakinibError(f"--route {route!r}: use oral or topical")
    fmt = _plot_format(plot)
    progress = None
    if population >= 20_000 and not as_json:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task("virtual patients", total=population)
        bar.start()

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done)
    try:
        sim = run(_kb(), drug, dose, every, route, population, seed, progress=progress, with_curve=plot is not None, params=user)
    finally:
        if progress is not None:
            bar.stop()
    if plot and fmt:
        _write_plot(plot, plots.concentration_figure(sim, fmt))
    if as_json:
        return _emit_json(sim.to_json())
    con = _console()
    p = sim.pk
    if sim.user_supplied:
        con.print(f"[bold yellow]User-supplied parameters ({params}): not reviewed by jakinib.[/bold yellow]")
    con.print(f"[bold]{sim.drug}[/bold] {sim.product} {sim.dose_mg:g} mg every {sim.every_h:g} h (steady state): "
              f"Cavg {p['cavg_nM']:.1f} nM ({p['cavg_ng_ml']:.1f} ng/mL), Cmax {p['cmax_nM']:.1f} nM, Cmin {p['cmin_nM']:.1f} nM, "
              f"t1/2 {p['half_life_h']:.1f} h")
    _table("Pathways", ["cytokine", "JAKs", "IC50 nM", "kind", "avg inhibition %", "h > 50%", "peak %", "trough %"],
           [[r.cytokine, "/".join(r.jaks), r.ic50_nM, r.ic50_kind, r.avg_inhibition_pct, r.time_above_50_h,
             r.peak_inhibition_pct, r.trough_inhibition_pct] for r in sim.pathways])
    if sim.population:
        pop = sim.population
        con.print(f"population n={pop['n']} (seed {pop['seed']}): Cavg nM p5/p50/p95 = "
                  f"{pop['cavg_nM']['p5']:.1f}/{pop['cavg_nM']['p50']:.1f}/{pop['cavg_nM']['p95']:.1f}")
    for a in sim.assumptions:
        con.print(f"[dim]assumption: {a}[/dim]")


def _plot_format(plot: Path | None) -> str | None:
    """The figure format for ``--plot``, checked before any work: a folder that is not there fails at once."""
    if plot is None:
        return None
    from jakinib.pharmacology import plots

    fmt = plots.figure_format(plot)
    folder = plot.parent if str(plot.parent) else Path(".")
    if not folder.is_dir():
        raise JakinibError(f"--plot {plot}: folder {folder} does not exist")
    if plot.is_dir():
        raise JakinibError(f"--plot {plot}: is a folder")
    return fmt


def _write_plot(plot: Path, data: bytes) -> None:
    try:
        plot.write_bytes(data)
    except OSError as exc:
        raise JakinibError(f"--plot {plot}: cannot write: {exc.strerror or exc}") from None


@_command()
def pathways(as_json: JsonOpt = False) -> None:
    """The JAK-STAT map: cytokine -> receptor -> JAKs -> STATs -> cells -> clinical meaning."""
    kb = _kb()
    rows = [p.model_dump(mode="json") for p in kb.pathways]
    if as_json:
        return _emit_json(rows)
    _table("JAK-STAT pathways", ["cytokine", "receptor", "JAKs", "STATs", "cells", "clinical meaning"],
           [[p.cytokine, p.receptor, "/".join(p.jaks), ", ".join(p.stats), ", ".join(p.cells), p.clinical] for p in kb.pathways])


@_command("compare-pathways")
def compare_pathways(
    specs: Annotated[list[str], typer.Argument(help="DRUG or DRUG:MG:HOURS, two or more.")],
    plot: Annotated[Path | None, typer.Option(help="Write the heat map (.svg or .png).", metavar="FILE")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drug x pathway table of average inhibition over a day (and a heat map)."""
    from jakinib.pharmacology import plots
    from jakinib.pharmacology.simulate import simulate as run

    fmt = _plot_format(plot)
    kb = _kb()
    rows = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (1, 3):
            raise JakinibError(f"{spec!r}: use DRUG or DRUG:MG:HOURS (e.g. tofacitinib:5:12)")
        try:
            dose, every = (float(parts[1]), float(parts[2])) if len(parts) == 3 else (None, None)
        except ValueError:
            raise JakinibError(f"{spec!r}: dose and hours must be numbers") from None
        rows.append(run(kb, parts[0], dose, every).to_json())
    if plot and fmt:
        _write_plot(plot, plots.heatmap_figure(rows, fmt))
    if as_json:
        return _emit_json(rows)
    cytokines = [p["cytokine"] for p in rows[0]["pathways"]]
    _table("Average inhibition over 24 h (%)", ["drug", *cytokines],
           [[f"{r['drug']} {r['dose_mg']:g}/{r['every_h']:g}h",
             *[("—" if p["avg_inhibition_pct"] is None else f"{p['avg_inhibition_pct']:.0f}") for p in r["pathways"]]] for r in rows])


@_command()
def screen(
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="Bulk export folder, Bundle-per-line .ndjson[.gz], .csv or .parquet.")],
    drug: Annotated[list[str] | None, typer.Option("--drug", help="Drug to assess (repeatable); default all.", metavar="NAME")] = None,
    regulator: Annotated[list[str] | None, typer.Option("--regulator", help="Whose labels (repeatable); default FDA.", metavar="REGULATOR")] = None,
    today: Annotated[str | None, typer.Option(help="Date care gaps are counted to; default today.",
                                              metavar="YYYY-MM-DD")] = None,
    out: Annotated[Path | None, typer.Option(help="Write one row per patient x drug (.parquet or .csv).", metavar="FILE")] = None,
    report: Annotated[Path | None, typer.Option(help="Write a standalone HTML report with charts.", metavar="FILE.html")] = None,
    engine: Annotated[str, typer.Option(help="polars (one machine) or spark.", metavar="polars|spark")] = "polars",
    master: Annotated[str | None, typer.Option(help="Spark master URL (default local[*]).", metavar="URL")] = None,
    on_error: Annotated[str, typer.Option("--on-error", help="stop at the first bad record, or skip and count them.", metavar="stop|skip")] = "stop",
    as_json: JsonOpt = False,
) -> None:
    """Screen a cohort for care gaps with the checker's rules: status, findings, dose and gaps per patient x drug."""
    from jakinib.cohort import cli_view

    cli_view.run(_kb(), source, drug, regulator, _date_option("--today", today), out, report, engine, master, on_error, as_json)


def _date_option(name: str, value: str | None) -> Any:
    import datetime as dt

    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise JakinibError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


@_command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", metavar="PORT")] = 8000,
    config: Annotated[Path | None, typer.Option(help="Settings TOML (or $JAKINIB_CONFIG).", metavar="FILE.toml")] = None,
) -> None:
    """Serve the JSON API, the CDS Hooks service and the pages (Uvicorn)."""
    from jakinib.web import serving
    from jakinib.web.app import create_app
    from jakinib.web.settings import load_settings

    if not 1 <= port <= 65535:
        raise JakinibError(f"--port {port}: use a port from 1 to 65535")
    settings = load_settings(config)
    if settings.local_mode and host not in ("127.0.0.1", "localhost", "::1"):
        raise JakinibError(f"local mode (no CDS clients configured) binds to loopback only, not {host!r}; "
                           "configure [[clients]] to serve other hosts")
    with _database_errors(settings.database_url):
        application = create_app(settings)
    sock = _listen(host, port)  # before saying "serving on": a busy port is one line, not a traceback
    if settings.local_mode:
        sys.stderr.write("jakinib: local mode: no CDS clients configured, unauthenticated calls accepted on loopback only\n")
    sys.stderr.write(f"jakinib: serving on http://{host}:{port}/ (API docs at /docs, CDS Hooks at /cds-services)\n")
    serving.serve(application, sock)


def _listen(host: str, port: int) -> Any:
    """A socket bound to ``host:port`` (Uvicorn listens on it), or one line saying why not."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise JakinibError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


@contextlib.contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """Turn a database that cannot be opened into one line naming it (password hidden)."""
    try:
        yield
    except Exception as exc:
        if not type(exc).__module__.startswith("sqlalchemy"):
            raise
        from sqlalchemy.engine import make_url

        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except Exception:
            shown = "(unparseable URL)"
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        raise JakinibError(f"cannot open the database {shown}: {reason}") from None


@_command()
def feedback(
    config: Annotated[Path | None, typer.Option(help="Settings TOML (or $JAKINIB_CONFIG).", metavar="FILE.toml")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Summarise CDS Hooks feedback: acceptance and override reasons per card type."""
    from jakinib.web.settings import load_settings
    from jakinib.web.store import Store

    settings = load_settings(config)
    with _database_errors(settings.database_url):
        rows = Store(settings.database_url).summary()
    if as_json:
        return _emit_json(rows)
    if not rows:
        return _console().print("No CDS Hooks feedback recorded yet: an EHR sends it to /cds-services/{id}/feedback "
                                "after a card is accepted or overridden.", highlight=False)
    _table("CDS Hooks feedback", ["card", "drug", "accepted", "overridden", "override reasons"],
           [[r["indicator"], r["drug"], r["accepted"], r["overridden"],
             "; ".join(f"{k}: {v}" for k, v in r["override_reasons"].items())] for r in rows])


@_command("validate", group="kb")
def kb_validate(
    data_dir: Annotated[Path | None, typer.Option(help="Validate this data folder instead of the bundled one.",
                                                  metavar="DIR")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load and cross-check every data file; exit 2 with one line naming file, record and field."""
    from jakinib.knowledge import base, loader

    kb = base.build(data_dir or loader.DATA_DIR, cache=False)
    stats = kb.stats()
    if as_json:
        return _emit_json({"valid": True, **stats})
    _console().print(f"valid: {stats['drugs']} drugs, {stats['approvals']} approvals, {stats['rules']} rules, "
                     f"{stats['sources']} sources, {stats['citations']} citations")


@_command("export", group="kb")
def kb_export(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="New (or empty) folder to write the data files into.")],
    as_json: JsonOpt = False,
) -> None:
    """Write the bundled data files (YAML) into DIR for editing; check the edit with kb validate --data-dir DIR."""
    import shutil

    from jakinib.knowledge import loader

    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise JakinibError(f"{folder}: exists and is not an empty folder; choose a new folder (nothing was written)")
    files = sorted(p.relative_to(loader.DATA_DIR) for p in loader.DATA_DIR.rglob("*.yaml"))
    try:
        for rel in files:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(loader.DATA_DIR / rel, folder / rel)
    except OSError as exc:
        raise JakinibError(f"{folder}: cannot write: {exc.strerror or exc}") from None
    if as_json:
        return _emit_json({"folder": str(folder), "files": [str(r) for r in files]})
    _console().print(f"wrote {len(files)} data files to {folder}; after editing: jakinib kb validate --data-dir {folder}",
                     highlight=False)


@_command("stats", group="kb")
def kb_stats(as_json: JsonOpt = False) -> None:
    """Counts, uncited facts (always 0: the schema refuses them), verification grades and the review date."""
    stats = _kb().stats()
    if as_json:
        return _emit_json(stats)
    rows = [[k, v] for k, v in stats.items() if k != "grades"]
    rows += [[f"{what} graded {g}", n] for what, counts in stats["grades"].items() for g, n in counts.items()]
    _table("Knowledge base", ["what", "count"], rows)


# ---- kb review: what rests on what (provenance, sign-offs) -----------------------------------------------
@_command("review", group="kb")
def kb_review(
    drug: Annotated[str | None, typer.Option(help="Generic, brand or synonym; default every drug.", metavar="NAME")] = None,
    regulator: Annotated[str | None, typer.Option(help="FDA, EMA, TGA, PMDA, MHRA, Medsafe, HealthCanada, NMPA.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Review this data folder (e.g. with a new sign-off) instead.",
                                                  metavar="DIR")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Per drug x regulator: facts by grade, sources and label sections read, oldest check, partial labels, sign-offs."""
    from jakinib.knowledge import base

    rows = (base.build(data_dir, cache=False) if data_dir else _kb()).review(drug, regulator)
    if as_json:
        return _emit_json(rows)
    con = _console()
    for r in rows:
        g = r["grades"]
        con.print(f"[bold]{r['drug']} × {r['regulator']}[/bold]: {r['facts']} facts — primary {g['primary']}, "
                  f"transcription {g['transcription']}, secondary {g['secondary']}; confirmed {r['confirmed']}; "
                  f"oldest source check {r['as_of']}", highlight=False)
        for p in r["partial"]:
            con.print(f"  [yellow]partial[/yellow] {p['product']}: {p['partial']}", highlight=False)
        for x in r["sources"]:
            extra = f" §{', '.join(x['sections'])}" if x["sections"] else ""
            agree = f" confirmed by {', '.join(x['confirmed_by'])}" if x["confirmed_by"] else ""
            con.print(f"  {x['grade']:>13} {x['id']}{extra} (checked {x['as_of']}){agree}", highlight=False)
            for dis in x["disagrees_with"]:
                con.print(f"                disagrees with {dis['source']}: followed {dis['followed']} — {dis['note']}",
                          highlight=False)
        if r["secondary_only"]:
            con.print(f"  re-check (secondary sources only): {'; '.join(r['secondary_only'])}", highlight=False)
        signed = "; ".join(f"{so['reviewer']} {so['date']} ({so['scope']})" for so in r["signoffs"])
        con.print(f"  sign-off: {signed or 'none recorded (see data/signoffs.yaml)'}", highlight=False)
    if not rows:
        con.print("No recorded facts for this drug under this regulator.")


def main() -> None:
    """Console-script entry: run the app; bad input of any kind is one line on stderr and exit 2."""
    import os

    # jakinib uses no pydantic plugins; discovering them scans every installed package's metadata at start-up.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _no_plugin_discovery()
    import gc

    gc.disable()  # start-up creates ~10^5 objects and no garbage worth collecting: a query runs without collections
    try:
        if not _run_direct(sys.argv[1:]):
            gc.enable()  # every other command (a cohort screen, the server) collects as usual
            _typer_app()(standalone_mode=False)
    except JakinibError as exc:
        _fail(str(exc), error_kind=exc)
    except SystemExit:
        raise
    except BrokenPipeError:  # the reader closed the pipe (`jakinib drug X | head`): stop quietly, exit 1, as Rich does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        raise SystemExit(1) from None
    except Exception as exc:  # usage errors (Typer's click) and anything unexpected
        import os

        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(2) from None
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            _fail(exc.format_message() + hint)
        if type(exc).__name__ == "Abort":
            raise SystemExit(130) from None
        if os.environ.get("JAKINIB_DEBUG"):
            raise
        sys.stderr.write(f"error: internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
                         "set JAKINIB_DEBUG=1 for details\n")
        raise SystemExit(1) from None


def _no_plugin_discovery() -> None:
    """With pydantic's plugins disabled (``PYDANTIC_DISABLE_PLUGINS=__all__``, which :func:`main` sets unless the
    user chose otherwise), its plugin loader finds none; but importing the loader imports ``importlib.metadata``
    first (email, zipfile, csv, ...: about a sixth of a patient check's start-up). Then a stand-in that gives the
    same answer, no plugins, takes the loader's place; with plugins enabled the real loader runs."""
    import os
    import types

    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in ("__all__", "1", "true") or "pydantic.plugin._loader" in sys.modules:
        return
    stand_in = types.ModuleType("pydantic.plugin._loader", "pydantic plugins disabled (PYDANTIC_DISABLE_PLUGINS): none to load")
    stand_in.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules["pydantic.plugin._loader"] = stand_in


DIRECT_COMMANDS = ("drug", "check")
"""The queries a clinician types most, run by :func:`_run_direct` when their arguments are plain."""


def _run_direct(argv: list[str]) -> bool:
    """Run ``drug`` or ``check`` straight from ``argv`` and return True; False for anything else (Typer runs it).

    Importing Typer, building every command's parameters and a pydantic validator for each one it converts
    cost about a quarter of ``jakinib drug NAME``'s start-up. For the commonest queries the arguments are read
    here instead, by :func:`_direct_call`, from the same annotations Typer reads (:func:`_direct_spec`)."""
    call = _direct_call(argv)
    if call is None:
        return False
    command, kwargs = call
    command(**kwargs)
    return True


def _direct_call(argv: list[str]) -> tuple[Any, dict[str, Any]] | None:
    """The command and its keyword arguments for a plain ``drug`` / ``check`` command line, else None.

    Only plain forms are taken: the command first, its positional argument(s), ``--option VALUE`` and flags, each
    at most once (``--drug`` repeatable). Anything else (``--help``, ``--opt=value``, an unknown or repeated option,
    a missing value, a value that looks like an option, ``--``, an empty word) gives None, and Typer parses it, so
    help and usage errors read exactly as before."""
    if not argv or argv[0] not in DIRECT_COMMANDS:
        return None
    command = globals()[argv[0]]
    spec = _direct_spec(command)
    if spec is None:
        return None
    positional, options = spec
    kwargs: dict[str, Any] = {}
    given: list[str] = []
    words = iter(argv[1:])
    for word in words:
        if word == "":
            return None
        if not word.startswith("-"):
            given.append(word)
            continue
        if word not in options:
            return None
        name, convert, takes_value, multiple = options[word]
        if not takes_value:
            if name in kwargs:
                return None
            kwargs[name] = True
            continue
        value = next(words, None)
        if value is None or value == "" or value.startswith("-") or (name in kwargs and not multiple):
            return None
        if multiple:
            kwargs.setdefault(name, []).append(convert(value))
        else:
            kwargs[name] = convert(value)
    if len(given) != len(positional):
        return None
    for (name, convert), value in zip(positional, given, strict=True):
        kwargs[name] = convert(value)
    return command, kwargs


class _Declared:
    """What a command's ``typer.Option(...)`` / ``typer.Argument(...)`` annotation says, read without Typer."""

    def __init__(self, kind: str, *decls: str, **settings: Any) -> None:
        self.kind, self.decls, self.settings = kind, decls, settings


class _ReadTyper:
    """Stands in for ``typer`` while :func:`_direct_spec` evaluates a command's annotations."""

    @staticmethod
    def Option(*decls: str, **settings: Any) -> _Declared:
        return _Declared("option", *decls, **settings)

    @staticmethod
    def Argument(*decls: str, **settings: Any) -> _Declared:
        return _Declared("argument", *decls, **settings)


def _direct_spec(command: Any) -> tuple[list[tuple[str, Any]], dict[str, tuple[str, Any, bool, bool]]] | None:
    """The command's positional arguments and options as its annotations declare them for Typer (in ``Annotated``,
    an Option's positional arguments are its names; without any, ``--name``), or None when any parameter is of a
    kind :func:`_run_direct` does not take (then Typer runs the command). ``tests/test_startup_imports.py`` holds
    this reading to Typer's: both routes print the same for every command line tried."""
    import inspect
    import types
    import typing

    hints = typing.get_type_hints(command, globalns={**globals(), "typer": _ReadTyper, "JsonOpt": _json_opt(_ReadTyper)},
                                  include_extras=True)
    converters = {str: str, Path: Path}
    positional: list[tuple[str, Any]] = []
    options: dict[str, tuple[str, Any, bool, bool]] = {}
    for name, param in inspect.signature(command).parameters.items():
        hint = hints[name]
        declared = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, _Declared)]
        kind = typing.get_args(hint)[0] if declared else hint
        info = declared[0] if len(declared) == 1 else None
        if len(declared) > 1 or (info and set(info.settings) - {"help", "metavar"}):
            return None
        is_option = info.kind == "option" if info else param.default is not param.empty
        if not is_option:
            if kind not in converters or param.kind is not param.POSITIONAL_OR_KEYWORD:
                return None
            positional.append((name, converters[kind]))
            continue
        decls = list(info.decls) if info else []
        if not decls:
            if kind is bool:
                return None  # Typer makes it --name/--no-name
            decls = [f"--{name.replace('_', '-')}"]
        if any("/" in d or not d.startswith("--") for d in decls):
            return None  # on/off pairs and short names: left to Typer
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if kind is bool:
            entry: tuple[str, Any, bool, bool] = (name, None, False, False)
        elif typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
            inner = args[0]
            if typing.get_origin(inner) is list and typing.get_args(inner)[0] in converters:
                entry = (name, converters[typing.get_args(inner)[0]], True, True)
            elif inner in converters:
                entry = (name, converters[inner], True, False)
            else:
                return None
        else:
            return None
        for d in decls:
            options[d] = entry
    return positional, options


def _fail(message: str, error_kind: JakinibError | None = None) -> None:
    """One line on stderr (and the JSON error body with --json), exit 2."""
    from jakinib.errors import InputError, error_body

    line = " ".join(message.split())
    if "--json" in sys.argv:
        _emit_json(error_body(error_kind or InputError(line)))
    sys.stderr.write(f"error: {line}\n")
    raise SystemExit(2) from None


if __name__ == "__main__":
    main()
