"""The console script as a user runs it: tables for people, only JSON with --json, exit 2 on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import free_port
from jakinib.knowledge import loader


def test_help_lists_every_command(cli):
    r = cli("--help")
    assert r.code == 0
    for cmd in ("drugs", "drug", "approvals", "compare", "search", "sources", "kb", "check"):
        assert cmd in r.out


def test_drugs_json(cli):
    r = cli("drugs", "--json")
    assert r.code == 0
    rows = r.json()
    names = {row["name"] for row in rows}
    assert {"upadacitinib", "ruxolitinib", "deucravacitinib"} <= names


def test_drug_json_shape_by_brand(cli):
    r = cli("drug", "Rinvoq", "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["name"] == "upadacitinib"
    assert {"name", "synonyms", "class", "targets", "products", "approvals"} <= set(d)
    assert "JAK1" in d["targets"] and {"ic50_nM", "sources"} <= set(d["targets"]["JAK1"])
    prod = d["products"][0]
    assert {"name", "route", "boxed_warning"} <= set(prod)
    assert prod["boxed_warning"] is None or {"regulator", "topics", "sources"} <= set(prod["boxed_warning"])


def test_approvals_json_shape_and_filters(cli):
    r = cli("approvals", "--drug", "upadacitinib", "--regulator", "FDA", "--indication", "AD", "--json")
    assert r.code == 0, r.err
    rows = r.json()
    assert rows
    for row in rows:
        assert set(row) >= {"drug", "product", "route", "regulator", "indication", "decision", "date",
                            "min_age_years", "population", "dose", "sources"}
        assert row["drug"] == "upadacitinib" and row["regulator"] == "FDA" and row["indication"] == "atopic-dermatitis"


def test_approvals_age_filter(cli):
    all_rows = cli("approvals", "--indication", "atopic-dermatitis", "--json").json()
    kids = cli("approvals", "--indication", "atopic-dermatitis", "--age", "12", "--json").json()
    assert len(kids) < len(all_rows)
    assert all(r["min_age_years"] is None or r["min_age_years"] <= 12 for r in kids)


def test_compare_and_search_and_sources(cli):
    r = cli("compare", "tofacitinib", "Olumiant", "--json")
    assert r.code == 0 and [d["name"] for d in r.json()["drugs"]] == ["tofacitinib", "baricitinib"]
    hits = cli("search", "vitiligo", "--json").json()
    assert any(h["kind"] == "indication" and h["id"] == "vitiligo" for h in hits)
    src = cli("sources", "seed", "--json").json()
    assert src["kind"] == "seed"


def test_kb_stats_and_validate(cli):
    stats = cli("kb", "stats", "--json").json()
    assert stats["uncited_facts"] == 0 and stats["drugs"] >= 14 and stats["review_date"]
    v = cli("kb", "validate", "--json")
    assert v.code == 0 and v.json()["valid"] is True


def test_kb_export_then_validate_round_trip(cli, tmp_path):
    out = tmp_path / "my-edited-data"
    r = cli("kb", "export", str(out))
    assert r.code == 0, r.err
    assert "kb validate --data-dir" in r.out
    bundled = sorted(str(p.relative_to(loader.DATA_DIR)) for p in loader.DATA_DIR.rglob("*.yaml"))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml")) == bundled
    for rel in bundled:  # a byte-for-byte copy
        assert (out / rel).read_bytes() == (loader.DATA_DIR / rel).read_bytes()
    same = cli("kb", "validate", "--data-dir", str(out), "--json").json()
    assert same == cli("kb", "validate", "--json").json()
    # an edit is validated: a bad value names the file and the record
    drug = out / "drugs" / "upadacitinib.yaml"
    drug.write_text(drug.read_text().replace("generation: second", "generation: third", 1))
    bad = cli("kb", "validate", "--data-dir", str(out))
    assert bad.code == 2 and "upadacitinib.yaml" in bad.err and "generation" in bad.err
    assert len(bad.err.strip().splitlines()) == 1


def test_kb_export_refuses_a_folder_with_files(cli, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    r = cli("kb", "export", str(tmp_path))
    assert r.code == 2 and "not an empty folder" in r.err and "nothing was written" in r.err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    assert cli("kb", "export", str(tmp_path / "keep.txt")).code == 2


def test_human_output_is_a_table(cli):
    r = cli("approvals", "--drug", "ruxolitinib", "--regulator", "FDA")
    assert r.code == 0 and "ruxolitinib" in r.out and "FDA" in r.out


@pytest.mark.parametrize("args, fragment", [
    (["drug", "notadrug"], "unknown drug 'notadrug'"),
    (["drug", "upadacitinb"], "did you mean upadacitinib"),
    (["approvals", "--regulator", "ZZA"], "unknown regulator"),
    (["approvals", "--indication", "flying"], "unknown indication"),
    (["approvals", "--age", "-3"], "not a plausible age"),
    (["sources", "nope"], "unknown source"),
])
def test_bad_input_one_line_exit_2(cli, args, fragment):
    r = cli(*args)
    assert r.code == 2
    assert fragment in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err


def test_bad_input_with_json_prints_json_error(cli):
    r = cli("drug", "notadrug", "--json")
    assert r.code == 2
    assert r.json()["error"]["type"] == "unknown-name"


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(loader.DATA_DIR, dst)
    return dst


def _break(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: (d / "drugs" / "upadacitinib.yaml").write_text("name: [unclosed\n"), "upadacitinib.yaml:"),
    (lambda d: _break(d / "drugs" / "upadacitinib.yaml", "name: upadacitinib", "name: upadacitinib\nbogus_key: 1"),
     "bogus_key"),
    (lambda d: _break(d / "drugs" / "tofacitinib.yaml", "regulator: FDA", "regulator: XYZ"), "tofacitinib.yaml"),
    (lambda d: (d / "sources" / "seed.yaml").write_text("[]\n"), "unknown source 'seed'"),
    (lambda d: _break(d / "indications.yaml", "id: vitiligo", "id: vitiligo-x"), "unknown indication 'vitiligo'"),
])
def test_corrupt_data_file_is_one_line_error(cli, data_copy, mutate, fragment):
    mutate(data_copy)
    r = cli("kb", "validate", "--data-dir", str(data_copy))
    assert r.code == 2, r.out
    assert fragment in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_json_output_is_only_json(cli):
    for args in (["drugs", "--json"], ["kb", "stats", "--json"], ["search", "zoster", "--json"]):
        json.loads(cli(*args).out)


def _patient_file(tmp_path: Path, data: bytes | str) -> str:
    path = tmp_path / "patient.json"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def _data_dir(tmp_path: Path, edit=None) -> str:
    dst = tmp_path / "data"
    shutil.copytree(loader.DATA_DIR, dst)
    if edit:
        edit(dst)
    return str(dst)


def _listening_socket():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


BUSY: list = []


def _busy_port_args(tmp_path: Path) -> list[str]:
    BUSY.append(_listening_socket())
    return ["serve", "--port", str(BUSY[-1].getsockname()[1])]


BASE = '{"age": 40, "labs": {"platelets": 250}}'

# Each case: (args from tmp_path, extra environment, fragment of the one line on stderr).
BAD_INPUT = {
    "binary-file": (lambda t: ["check", _patient_file(t, bytes(range(256)) * 4)], None, "not UTF-8 text"),
    "png-file": (lambda t: ["check", _patient_file(t, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))], None, "not UTF-8 text (byte 0x89"),
    "utf16-file": (lambda t: ["check", _patient_file(t, BASE.encode("utf-16"))], None, "looks like UTF-16"),
    "utf16-no-bom": (lambda t: ["check", _patient_file(t, BASE.encode("utf-16-le"))], None, "looks like UTF-16"),
    "deep-json": (lambda t: ["check", _patient_file(t, "[" * 5000 + "]" * 5000)], None, "nested deeper than 64 levels"),
    "duplicate-key": (lambda t: ["check", _patient_file(t, '{"labs": {"platelets": 20, "platelets": 300}}')], None,
                      "duplicate key 'platelets' in labs"),
    "lone-surrogate": (lambda t: ["check", _patient_file(t, '{"medications": ["\\ud800"]}')], None, "surrogate"),
    "dev-zero": (lambda t: ["check", "/dev/zero"], None, "larger than 32 MB"),
    "directory": (lambda t: ["check", str(t)], None, "cannot read"),
    "too-many-items": (lambda t: ["check", _patient_file(t, json.dumps({"medications": ["a"] * 150000}))], None,
                       "patient.medications: 150000 items; at most 1000"),
    "today-far": (lambda t: ["check", _patient_file(t, BASE), "--today", "9999-12-31"], None, "--today: today 9999-12-31 is outside"),
    "today-not-a-date": (lambda t: ["check", _patient_file(t, BASE), "--today", "2022-13-45"], None, "is not a date"),
    "plot-no-folder": (lambda t: ["simulate", "tofacitinib", "--plot", str(t / "no-such-folder" / "x.svg")], None,
                       "no-such-folder does not exist"),
    "plot-heatmap-no-folder": (lambda t: ["compare-pathways", "tofacitinib", "baricitinib", "--plot", str(t / "no-such-folder" / "x.svg")],
                               None, "does not exist"),
    "port-out-of-range": (lambda t: ["serve", "--port", "99999"], None, "--port 99999: use a port from 1 to 65535"),
    "port-busy": (_busy_port_args, None, "cannot listen on 127.0.0.1:"),
    "database-unopenable": (lambda t: ["serve", "--port", str(free_port())], {"JAKINIB_DATABASE_URL": "sqlite:////dev/null/dir/x.db"},
                            "cannot open the database sqlite:////dev/null/dir/x.db"),  # a folder under a file: never creatable
    "config-unreadable": (lambda t: ["serve", "--config", str(t / "missing.toml")], None, "cannot read settings"),
    "usage-error": (lambda t: ["drugs", "--bogus"], None, "No such option: --bogus (see 'jakinib drugs --help')"),
    "kb-empty-folder": (lambda t: ["kb", "validate", "--data-dir", str(t)], None, "not a complete knowledge data folder"),
    "kb-no-labs": (lambda t: ["kb", "validate", "--data-dir", _data_dir(t, lambda d: (d / "labs.yaml").unlink())], None,
                   "missing labs.yaml"),
    "kb-lab-missing": (lambda t: ["kb", "validate", "--data-dir", _data_dir(t, lambda d: _break(
        d / "labs.yaml", "  - id: alc", "  - id: alc-x"))], None, "no entry for lab 'alc'"),
    "kb-reversed-range": (lambda t: ["kb", "validate", "--data-dir", _data_dir(t, lambda d: _break(
        d / "labs.yaml", "plausible: [2, 25]", "plausible: [25, 2]"))], None, "field plausible: [25, 2] is reversed"),
    "kb-impossible-date": (lambda t: ["kb", "validate", "--data-dir", _data_dir(t, lambda d: _break(
        d / "sources" / "seed.yaml", "as_of: 2026-11-25", "as_of: 2022-13-45"))], None, "seed.yaml:7: invalid YAML: '2022-13-45' is not a valid date"),
    "kb-duplicate-key": (lambda t: ["kb", "validate", "--data-dir", _data_dir(t, lambda d: _break(
        d / "labs.yaml", "plausible: [2, 25]", "plausible: [2, 25]\n    plausible: [0, 100]"))], None, "invalid YAML: duplicate key 'plausible'"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_every_bad_input_is_one_line_and_exit_2(cli, tmp_path, case):
    make_args, env, fragment = BAD_INPUT[case]
    try:
        r = cli(*make_args(tmp_path), env=env, cwd=tmp_path)  # a server's default files land in tmp_path
    finally:
        while BUSY:
            BUSY.pop().close()
    assert r.code == 2, (r.code, r.err)
    assert fragment in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert "serving on" not in r.err


def test_bad_input_with_json_is_a_json_error_body(cli, tmp_path):
    r = cli("check", _patient_file(tmp_path, '{"labs": {"platelets": 20, "platelets": 300}}'), "--json")
    assert r.code == 2 and r.json()["error"]["message"].endswith("duplicate key 'platelets' in labs")


def test_corrupt_cache_is_rebuilt_and_said_once(cli, tmp_path):
    env = {"JAKINIB_CACHE_DIR": str(tmp_path / "cache")}
    assert cli("drugs", "--json", env=env).code == 0
    (cached,) = (tmp_path / "cache").glob("kb-*.json")
    cached.write_bytes(b"\x80\x04\x95garbage")
    r = cli("drugs", "--json", env=env)
    assert r.code == 0 and len(r.json()) >= 14
    assert len(r.err.strip().splitlines()) == 1 and "rebuilt it from the YAML files" in r.err
    again = cli("drugs", "--json", env=env)
    assert again.code == 0 and again.err == ""


def test_unmapped_medications_are_one_finding_per_drug():
    import jakinib

    report = jakinib.check({"age": 40, "medications": ["a", "a", "b", "A"] * 250}, drugs=["upadacitinib", "tofacitinib"])
    for a in report.assessments:
        (finding,) = [f for f in a.findings if f.rule == "medication.unmapped"]
        assert finding.message.startswith("3 medications 'a', 'b', 'A' are not in jakinib's interaction table")
    assert report.unmapped == ["medication a", "medication b", "medication A"]


def test_many_distinct_medications_answer_in_under_a_megabyte(cli, tmp_path):
    from jakinib.safety.patient import MAX_ITEM_CHARS, MAX_LIST_ITEMS

    meds = [f"{i:04d}" + "x" * (MAX_ITEM_CHARS - 4) for i in range(MAX_LIST_ITEMS)]  # the most the limits allow
    r = cli("check", _patient_file(tmp_path, json.dumps({"age": 40, "medications": meds})), "--json")
    assert r.code == 0, r.err
    assert len(r.out.encode()) < 1_000_000
    report = r.json()
    for a in report["assessments"]:
        unmapped = [f for f in a["findings"] if f["rule"] == "medication.unmapped"]
        assert len(unmapped) == 1 and f"{MAX_LIST_ITEMS} medications" in unmapped[0]["message"]
    assert len(report["unmapped"]) == MAX_LIST_ITEMS
