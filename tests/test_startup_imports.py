"""Start-up guard: the CLI's hot paths (``drug NAME``, ``check PATIENT``) import no heavy library.

Deterministic (which modules are loaded), not a timing test; the timings are in ``benchmarks/bench_startup.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
PATIENT = ROOT / "examples" / "patient.json"

HEAVY = ("typer", "click", "rich", "numpy", "scipy", "pint", "polars", "pyarrow", "matplotlib", "fastapi", "starlette", "uvicorn", "sqlalchemy",
         "httpx", "jinja2", "fhir", "jwt", "cryptography", "platformdirs", "pyspark", "yaml")
"""Libraries a warm ``drug`` or ``check`` never needs (PyYAML: the validated cache is read instead of the YAML; Rich:
its output to a pipe is drawn by ``jakinib.textout``; Typer and its click: plain arguments are read by ``cli._run_direct``)."""

_RUN = """
import json, sys
sys.argv = ["jakinib", *json.loads(sys.argv[1])]
from jakinib import cli
try:
    cli.main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + " EXIT " + json.dumps(code) + "\\n")
"""


def _modules_after(args: list[str], cache: Path) -> tuple[set[str], str]:
    env = {**os.environ, "JAKINIB_CACHE_DIR": str(cache)}
    env.pop("JAKINIB_REGULATOR", None)
    run = subprocess.run([sys.executable, "-c", _RUN, json.dumps(args)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    tail = run.stderr.rsplit("\nMODULES ", 1)
    assert len(tail) == 2, run.stderr
    names, _, code = tail[1].partition(" EXIT ")
    assert json.loads(code) == 0, run.stderr
    return set(json.loads(names)), run.stdout


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("kb-cache")
    _modules_after(["drug", "tofacitinib"], cache)  # the first run validates the YAML and writes the cache
    return cache


@pytest.mark.parametrize("args", [
    ["drug", "tofacitinib"],
    ["drug", "Rinvoq", "--json"],
    ["check", str(PATIENT)],
    ["check", str(PATIENT), "--details", "--regulator", "EMA"],
    ["check", str(PATIENT), "--drug", "baricitinib", "--json"],
], ids=" ".join)
def test_the_hot_cli_paths_import_no_heavy_library(warm_cache, args):
    modules, out = _modules_after(args, warm_cache)
    assert out.strip(), "the command printed nothing: the guard would pass vacuously"
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY or m == "importlib.metadata")
    assert loaded == [], f"jakinib {' '.join(args)} imported {loaded}"


def test_pydantic_plugins_are_discovered_when_the_user_enables_them(warm_cache, monkeypatch):
    """The plugin loader's stand-in is used only while plugins are disabled: enabled, the real loader runs."""
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "")
    modules, _ = _modules_after(["check", str(PATIENT)], warm_cache)
    assert "importlib.metadata" in modules


def test_the_guard_sees_a_heavy_import(warm_cache):
    """The guard can fail: a command that does use a heavy library shows it (``simulate`` needs numpy)."""
    modules, _ = _modules_after(["simulate", "tofacitinib", "--json"], warm_cache)
    assert "numpy" in modules


# ---- the direct route for drug / check reads arguments exactly as Typer does -----------------------------------

def _run_main(monkeypatch, capsys, argv: list[str], direct: bool) -> tuple[str, str, int]:
    from jakinib import cli

    monkeypatch.setattr(sys, "argv", ["jakinib", *argv])
    monkeypatch.delenv("JAKINIB_REGULATOR", raising=False)
    ran_direct = []
    real = cli._run_direct
    monkeypatch.setattr(cli, "_run_direct", (lambda a: ran_direct.append(real(a)) or ran_direct[-1]) if direct else (lambda a: False))
    capsys.readouterr()
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return out, err, code


ARGVS = [
    ["drug", "tofacitinib"], ["drug", "Rinvoq", "--json"], ["drug", "--json", "olumiant"], ["drug", "upadacitnib"],
    ["drug", "nosuchdrug", "--json"], ["drug"], ["drug", "a", "b"], ["drug", "x", "--jsn"], ["drug", "--help"],
    ["drug", "tofacitinib", "--json", "--json"], ["drug", "--", "tofacitinib"], ["drug", ""],
    ["check", str(PATIENT)], ["check", str(PATIENT), "--details"], ["check", "--regulator", "EMA", str(PATIENT)],
    ["check", str(PATIENT), "--drug", "baricitinib", "--drug", "Xeljanz"], ["check", str(PATIENT), "--today", "2026-01-01"],
    ["check", str(PATIENT), "--today", "01/01/2026"], ["check", str(PATIENT), "--regulator", "Narnia"],
    ["check", str(PATIENT), "--indication", "AD", "--json"], ["check", "no-such-patient.json"], ["check"],
    ["check", str(PATIENT), "--drug"], ["check", str(PATIENT), "--regulator", "EMA", "--regulator", "FDA"],
    ["check", str(PATIENT), "--drug=baricitinib"], ["check", str(PATIENT), "--drug", "--json"],
    ["check", str(PATIENT), str(PATIENT)], ["check", str(PATIENT), "--details", "--drug", "nosuch"],
]


@pytest.mark.parametrize("argv", ARGVS, ids=" ".join)
def test_the_direct_route_prints_what_typer_prints(monkeypatch, capsys, argv):
    direct = _run_main(monkeypatch, capsys, argv, direct=True)
    typer_route = _run_main(monkeypatch, capsys, argv, direct=False)
    assert direct == typer_route


def test_the_direct_route_is_taken_for_the_plain_forms():
    from jakinib import cli

    assert cli._direct_call(["drug", "Rinvoq", "--json"]) == (cli.drug, {"name": "Rinvoq", "as_json": True})
    assert cli._direct_call(["check", "p.json", "--drug", "a", "--drug", "b", "--regulator", "EMA", "--details"]) == (
        cli.check, {"patient": Path("p.json"), "drug": ["a", "b"], "regulator": "EMA", "details": True})
    for typer_parses in (["drug", "--help"], ["check", "p.json", "--drug=a"], ["approvals", "--drug", "a"], ["drug"],
                         ["--version"], ["check", "p.json", "--today"], ["drug", "-h"], []):
        assert cli._direct_call(typer_parses) is None, typer_parses


WORDS = ["tofacitinib", "Rinvoq", "nosuch", str(PATIENT), "missing.json", "--json", "--details", "--drug", "--regulator",
         "EMA", "uk", "--today", "2026-01-01", "2026-13-01", "--indication", "AD", "--help", "--", "-x", ""]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["drug", "check"]), words=st.lists(st.sampled_from(WORDS), max_size=6))
def test_any_command_line_reads_the_same_by_either_route(monkeypatch, capsys, command, words):
    argv = [command, *words]
    assert _run_main(monkeypatch, capsys, argv, direct=True) == _run_main(monkeypatch, capsys, argv, direct=False)


@pytest.mark.parametrize("args", [["drug", "upadacitinib"], ["check", str(PATIENT), "--details"]], ids=" ".join)
def test_a_closed_pipe_ends_the_command_quietly(warm_cache, args):
    """``jakinib drug X | head -1``: the reader goes away; the command stops with exit 1 and nothing on stderr (as when
    Rich drew the output), never an 'internal error'."""
    env = {**os.environ, "JAKINIB_CACHE_DIR": str(warm_cache)}
    proc = subprocess.Popen([sys.executable, "-c", "from jakinib.cli import main; main()", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (1, b"")
