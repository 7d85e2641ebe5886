"""No working notes in user-facing text: the data's clinical copy, source titles, rendered pages and CLI output.

A reference cites the publication, never how jakinib found it (no "stored copy", "code corpus", "file id",
"mirror"), and the DermNet article is "DermNet", never "the seed". How a source was read (which copy, which
sections were readable) belongs in the fields the schema marks as provenance (``Source.note``,
``Disagreement.note``, ``SignOff.note``), which are for reviewers and are not scanned here.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from jakinib.cli import app

WORKING_NOTES = re.compile("|".join([
    r"\bseed\b", r"stored[- ](cop|code|excerpt|material|file|public|text)", r"\bcorpus\b", r"code-corpus",
    r"\bfile id\b", r"\bsources read\b", r"\bCST table\b", r"\bwe (read|found|checked|could)\b", r"\bcopy read\b",
    r"\bmirror(ed|s)?\b", r"\breadable\b", r"\bsearch tools?\b", r"exact-string", r"\btranscribed by\b",
    r"\bmaterial found\b", r"\bas stored in\b", r"\bfind_string\b", r"\bread_file\b", r"\bcould not be read\b",
]), re.IGNORECASE)


def _provenance(model: type[BaseModel], name: str) -> bool:
    extra = model.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("provenance"))


def user_facing_strings(obj: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a model tree except ids/slugs-by-name and the fields marked provenance."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            if name in ("id", "kind", "sources", "confirmed_by") or _provenance(type(obj), name):
                continue
            yield from user_facing_strings(getattr(obj, name), f"{where}.{name}")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from user_facing_strings(v, f"{where}[{k}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from user_facing_strings(v, f"{where}[{i}]")
    elif isinstance(obj, str):
        yield where, obj


def test_the_scanner_catches_working_notes():
    for phrase in ("The seed notes herpesvirus reactivation", "The sources read list JAK1",
                   "The CST table also lists TYK2", "(stored code corpus)", "code-corpus file id 1",
                   "not readable in the stored copy", "as mirrored by fda.report"):
        assert WORKING_NOTES.search(phrase), phrase
    for clean in ("DermNet notes herpesvirus reactivation", "The cited sources list JAK1", "Seedling",
                  "not verified by jakinib; read the label", "EU package leaflet (EMA ePI, English)"):
        assert not WORKING_NOTES.search(clean), clean


def test_provenance_fields_are_marked():
    from jakinib.knowledge import schema as s
    assert _provenance(s.Source, "note") and _provenance(s.Disagreement, "note") and _provenance(s.SignOff, "note")
    assert not _provenance(s.Source, "title") and not _provenance(s.Rule, "note")


def test_no_working_notes_in_the_knowledge_base(kb):
    hits = [f"{where}: {text[:160]}" for f in dataclasses.fields(kb) if f.name != "data_dir"
            for where, text in user_facing_strings(getattr(kb, f.name), f.name) if WORKING_NOTES.search(text)]
    assert not hits, "working notes in user-facing data:\n" + "\n".join(hits)


SOURCE_ID_CELL = re.compile(r"[│|]\s*seed\s*(?=[│|])|\[seed[;\]]")  # the DermNet source's id and kind, not prose


def _scan(where: str, text: str) -> list[str]:
    text = SOURCE_ID_CELL.sub(" ", text)
    return [f"{where}: {text[max(0, m.start() - 60):m.end() + 60]!r}" for m in WORKING_NOTES.finditer(text)]


def test_no_working_notes_in_cli_output(kb):
    runner = CliRunner()
    outputs = [["drugs"], ["approvals"], ["sources"], ["simulate"]] + [["drug", name] for name in kb.drugs]
    hits = []
    for args in outputs:
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (args, r.output)
        hits += _scan("jakinib " + " ".join(args), r.output)
    assert not hits, "\n".join(hits)


def _text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_no_working_notes_on_any_page(server, kb):
    paths = ["/", "/jak-inhibitors", "/approvals", "/pathways", "/simulate", "/check", "/compare",
             "/search?q=vitiligo", "/search?q=herpes+zoster"] + [f"/drugs/{name}" for name in kb.drugs]
    hits = []
    for path in paths:
        r = httpx.get(server.url + path, timeout=30)
        if r.status_code == 404:
            pytest.fail(f"{path} is gone; update the page list")
        assert r.status_code == 200, path
        hits += _scan(path, _text(r.text))
    assert not hits, "\n".join(hits)
