"""jakinib.textout prints what Rich prints without a terminal: checked against Rich itself, on random tables and
lines (hypothesis) and on every table the CLI draws for every drug and a patient check."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from jakinib import textout

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789-—–…µ≥≤×·(),.;:/%'\"®™αβ→成人既存治療、（）", max_size=40)
TEXT = st.lists(WORD, max_size=12).map(" ".join) | st.sampled_from(["", " ", "  x  ", "a" * 260, "[bold]b[/bold] c",
                                                                       "[dim]x[/]", "[seed; 4.1]", ":smile: y", "\\[x]"])


def _rich_table(title, columns, rows, ends, width):
    buf = io.StringIO()
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r, e in zip(rows, ends, strict=True):
        table.add_row(*r, end_section=e)
    Console(file=buf, width=width).print(table)
    return buf.getvalue()


def _rich_line(text, width):
    buf = io.StringIO()
    Console(file=buf, width=width).print(text)
    return buf.getvalue()


@settings(max_examples=300, deadline=None)
@given(data=st.data(), ncols=st.integers(1, 9), nrows=st.integers(0, 6), width=st.sampled_from([200, 120, 60, 30, 12]))
def test_a_table_is_what_rich_prints(data, ncols, nrows, width):
    title = data.draw(st.none() | TEXT)
    columns = data.draw(st.lists(TEXT.filter(bool), min_size=ncols, max_size=ncols))
    rows = data.draw(st.lists(st.lists(TEXT, min_size=ncols, max_size=ncols), min_size=nrows, max_size=nrows))
    ends = data.draw(st.lists(st.booleans(), min_size=nrows, max_size=nrows))
    mine = textout.table(title, columns, rows, ends, width=width)
    if mine is not None:  # None: the caller prints through Rich
        assert mine == _rich_table(title, columns, rows, ends, width)


@settings(max_examples=300, deadline=None)
@given(text=TEXT, width=st.sampled_from([200, 80, 20, 5]))
def test_a_line_is_what_rich_prints(text, width):
    mine = textout.line(text, width)
    if mine is not None:
        assert mine == _rich_line(text, width)


@pytest.mark.parametrize("text", ["[seed; 4.1] x", "a :smile: b", "tab\there", "two\nlines", "emoji 😀", "\\[bold]x", "control \x1b[0m"])
def test_what_it_does_not_lay_out_is_left_to_rich(text):
    assert textout.line(text) is None
    assert textout.table(None, ["h"], [[text]]) is None


def test_it_lays_out_the_common_cases_itself():
    assert textout.line("[bold]tofacitinib[/bold] (Xeljanz) — pan-jak, ≥50 µg") == "tofacitinib (Xeljanz) — pan-jak, ≥50 µg\n"
    assert textout.table("T", ["a", "b"], [["1", "2"]]) == _rich_table("T", ["a", "b"], [["1", "2"]], [False], 200)


def _cli_output(monkeypatch, capsys, argv, plain):
    import sys

    from jakinib import cli

    monkeypatch.setattr(sys, "argv", ["jakinib", *argv])
    monkeypatch.delenv("JAKINIB_REGULATOR", raising=False)
    monkeypatch.setattr(cli, "_plain_output", lambda: plain)
    capsys.readouterr()
    try:
        cli.main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return capsys.readouterr().out


def _all_drugs():
    import jakinib

    return sorted(jakinib.load().drugs)


PATIENT = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "patient.json")


@pytest.mark.parametrize("argv", [
    *(["drug", name] for name in _all_drugs()),
    ["check", PATIENT], ["check", PATIENT, "--details"], ["check", PATIENT, "--regulator", "EMA", "--details"],
    ["check", PATIENT, "--drug", "upadacitinib"], ["drugs"], ["approvals", "--regulator", "TGA"], ["search", "zoster"],
    ["compare", "tofacitinib", "baricitinib"], ["sources", "seed"], ["kb", "stats"], ["pathways"],
], ids=" ".join)
def test_every_cli_table_is_what_rich_prints(monkeypatch, capsys, argv):
    """The CLI's own output, drawn by textout, is byte for byte what Rich drew (and textout drew it: no fallback)."""
    from jakinib import textout

    rich_out = _cli_output(monkeypatch, capsys, argv, plain=False)
    fallbacks = []
    real_table, real_line = textout.table, textout.line
    monkeypatch.setattr(textout, "table", lambda *a, **k: fallbacks.append(a[0]) if (r := real_table(*a, **k)) is None else r)
    monkeypatch.setattr(textout, "line", lambda *a, **k: fallbacks.append(a[0]) if (r := real_line(*a, **k)) is None else r)
    assert _cli_output(monkeypatch, capsys, argv, plain=True) == rich_out
    if argv[0] in ("drug", "check"):
        assert fallbacks == [], f"left to Rich: {fallbacks}"
