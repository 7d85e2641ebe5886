"""The common battery over every drug, every rule and every fact of the bundled knowledge base."""

from __future__ import annotations

from pathlib import Path

import pytest

import jakinib
from jakinib.knowledge import fields, loader, schema
from jakinib.safety.predicates import evaluate

KB = jakinib.load()
DESIGN_DRUGS = ["tofacitinib", "baricitinib", "upadacitinib", "abrocitinib", "ruxolitinib", "delgocitinib",
                "ritlecitinib", "deucravacitinib", "deuruxolitinib", "filgotinib", "peficitinib", "fedratinib",
                "pacritinib", "momelotinib"]


def test_every_design_drug_is_present():
    assert sorted(DESIGN_DRUGS) == sorted(set(DESIGN_DRUGS) & set(KB.drugs))


@pytest.mark.parametrize("name", sorted(KB.drugs))
def test_drug_battery(name):
    d = KB.drug(name)
    assert d.targets, "has targets"
    assert {t.kinase for t in d.targets} <= set(schema.KINASES)
    assert d.approvals, "at least one regulatory decision"
    assert all(a.sources for a in d.approvals)
    for p in d.products:
        for brand in p.brands:
            assert KB.drug(brand.name).name == name, f"brand {brand.name} resolves"
            assert KB.drug(brand.name.upper()).name == name, "case-insensitive"
    assert KB.drug(name.upper()).name == name


@pytest.mark.parametrize("rule", KB.rules, ids=lambda r: r.id)
def test_rule_battery(rule):
    assert rule.sources and all(KB.sources.get(c.partition("#")[0]) for c in rule.sources)
    used = [p.field for p in loader.iter_predicates(rule.when) if p.field]
    assert used, "reads at least one patient field"
    assert all(fields.kind_of(f) for f in used), used
    # Missing data is never 'ok': with no facts at all, the rule is unknown or (for list-only rules) false.
    value, missing = evaluate(rule.when, {})
    non_list = [f for f in used if fields.kind_of(f) != "list"]
    if non_list:
        assert value is not True
        if value is None:
            assert missing <= set(used)
    # Deterministic.
    assert evaluate(rule.when, {}) == (value, missing)
    assert len(rule.message) < 400 and rule.message.strip()
    for product in rule.products:
        KB.product(product)


def test_every_citation_resolves_and_labels_name_a_section():
    n = 0
    for cite, where in KB._all_citations():
        sid, _, section = cite.partition("#")
        src = KB.sources[sid]
        if src.kind == "label":
            assert section, where
        n += 1
    assert n > 100


def test_stats_report_zero_uncited_and_a_review_date():
    stats = KB.stats()
    assert stats["uncited_facts"] == 0
    assert stats["review_date"] and stats["drugs"] >= 14


def test_approval_dates_are_iso_and_regulators_known():
    for row in KB.all_approvals():
        a = row.approval
        assert a.regulator in schema.REGULATORS
        assert a.date is None or schema.PARTIAL_DATE.match(a.date)


def test_every_label_source_names_regulator_product_and_date():
    for src in KB.sources.values():
        if src.kind == "label":
            assert src.regulator and src.product and src.date, src.id
        if src.kind == "paper":
            assert src.doi, src.id


def test_names_resolve_by_synonym_and_case():
    assert KB.indication("AD").id == "atopic-dermatitis"
    assert KB.indication("eczema").id == "atopic-dermatitis"
    assert KB.regulator("eu") == "EMA"
    assert KB.regulator("Health Canada") == "HealthCanada"


def test_unknown_name_suggests():
    with pytest.raises(jakinib.InputError, match="did you mean upadacitinib"):
        KB.drug("upadacitinb")


def test_cache_is_keyed_by_content(tmp_path, monkeypatch):
    import shutil

    from jakinib.knowledge import base

    monkeypatch.setenv("JAKINIB_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    shutil.copytree(loader.DATA_DIR, data)
    first = base.build(data)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [base.cache_file(data).name]
    again = base.build(data)
    assert again.stats() == first.stats()
    path = data / "drugs" / "ritlecitinib.yaml"
    path.write_text(path.read_text().replace("name: ritlecitinib", "name: ritlecitinib\nnot_a_field: 1", 1))
    with pytest.raises(jakinib.KnowledgeError, match="not_a_field"):
        base.build(data)


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("JAKINIB_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir(mode=0o700)
    return tmp_path / "cache"


def _same(a, b, where):
    """``a`` and ``b`` hold equal values of the very same types, fields set and field order, all the way down."""
    from pydantic import BaseModel

    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, BaseModel):
        assert a.model_fields_set == b.model_fields_set, where
        assert list(a.__dict__) == list(b.__dict__), where
        for name in type(a).model_fields:
            _same(getattr(a, name), getattr(b, name), f"{where}.{name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_cached_knowledge_base_equals_a_fresh_build(cache_home):
    import dataclasses

    from jakinib.knowledge import base

    kept = {f.name for f in dataclasses.fields(base.KnowledgeBase)} - {"data_dir", "_names"}
    assert set(base.snapshot_fields()) == kept, "the cache must hold every field of the knowledge base"

    fresh = base.build(loader.DATA_DIR, cache=False)
    base.build(loader.DATA_DIR)
    cached = base.build(loader.DATA_DIR)
    assert base.cache_file(loader.DATA_DIR).exists()
    for name in base.snapshot_fields():
        assert getattr(cached, name) == getattr(fresh, name), name
        _same(getattr(cached, name), getattr(fresh, name), name)  # built without validation, yet the same objects
    assert cached._names == fresh._names
    assert [r.to_json() for r in cached.all_approvals()] == [r.to_json() for r in fresh.all_approvals()]


def test_to_json_is_model_dump_for_every_object_of_the_knowledge_base():
    from pydantic import BaseModel

    from jakinib.knowledge import base, construct

    seen = []

    def walk(x):
        if isinstance(x, BaseModel):
            expected = x.model_dump(mode="json", by_alias=True, exclude_none=True)
            got = construct.to_json(x)
            assert got == expected and repr(got) == repr(expected), type(x).__name__  # same keys, order and types
            seen.append(type(x))
            for name in type(x).model_fields:
                walk(getattr(x, name))
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)

    for name in base.snapshot_fields():
        walk(getattr(KB, name))
    assert len(seen) > 3000 and len(set(seen)) > 30


def _rehash(target, edit):
    """Rewrite a cache file with ``edit`` applied to its content and a matching hash: a well-formed forgery."""
    import hashlib
    import json

    header, _, payload = target.read_bytes().partition(b"\n")
    content = json.loads(payload)
    edit(content)
    payload = json.dumps(content).encode()
    meta = json.loads(header)
    meta["sha256"] = hashlib.sha256(payload).hexdigest()
    target.write_bytes(json.dumps(meta).encode() + b"\n" + payload)
    target.chmod(0o600)


def _drug(content):
    return content["drugs"]["upadacitinib"]


@pytest.mark.parametrize(("edit", "why"), [
    pytest.param(lambda c: _drug(c).update(not_a_field=1), "unknown field(s) ['not_a_field']", id="unknown-field"),
    pytest.param(lambda c: _drug(c).pop("mechanism"), "missing field(s) ['mechanism']", id="missing-required-field"),
    pytest.param(lambda c: _drug(c).update(mechanism=42), "expected str, got int", id="number-for-text"),
    pytest.param(lambda c: _drug(c)["targets"][0].update(kinase="JAK9"), "expected one of", id="outside-a-literal"),
    pytest.param(lambda c: _drug(c).update(products={"id": "x"}), "expected list, got dict", id="mapping-for-a-list"),
    pytest.param(lambda c: c["sources"][next(iter(c["sources"]))].update(as_of="yesterday"), "expected an ISO date", id="bad-date"),
    pytest.param(lambda c: c.pop("rxnorm"), "sections are not those", id="missing-section"),
    pytest.param(lambda c: c.update(extra_section=[]), "sections are not those", id="extra-section"),
    pytest.param(lambda c: c.update(drugs=[]), "expected dict, got list", id="list-for-a-mapping"),
])
def test_a_hash_valid_cache_of_the_wrong_shape_is_rebuilt(cache_home, capsys, edit, why):
    """The cache is read without re-validation, so its shape is checked as it is read: a file whose hash matches
    but whose content is not the knowledge base's shape is refused and rebuilt, never half-used."""
    from jakinib.knowledge import base

    base.build(loader.DATA_DIR)
    target = base.cache_file(loader.DATA_DIR)
    _rehash(target, edit)
    kb = base.build(loader.DATA_DIR)
    err = capsys.readouterr().err
    assert "rebuilt it from the YAML files" in err and str(target) in err and why in err, err
    assert kb.drug("Rinvoq").mechanism and "upadacitinib" in kb.drugs
    _same(kb.drugs, base.build(loader.DATA_DIR, cache=False).drugs, "drugs")
    assert capsys.readouterr().err == ""


class _Payload:
    """Unpickling this creates a marker file: proof that a loader executed code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _pickled(marker):
    import pickle

    data = pickle.dumps(_Payload(marker))
    pickle.loads(data)  # the payload is live: unpickling it does create the marker
    assert Path(marker).exists()
    Path(marker).unlink()
    return data


@pytest.mark.parametrize("plant", [
    pytest.param(_pickled, id="pickle-payload"),
    pytest.param(lambda marker: b'{"format": 1, "key": "x", "sha256": "y"}\n{}', id="wrong-key"),
    pytest.param(lambda marker: b"\x80\x04\x95" + b"\xff" * 64, id="garbage"),
    pytest.param(lambda marker: b"", id="empty"),
])
def test_planted_or_corrupt_cache_executes_nothing_and_is_rebuilt(cache_home, tmp_path, capsys, plant):
    from jakinib.knowledge import base

    marker = tmp_path / "code-ran"
    target = base.cache_file(loader.DATA_DIR)
    payload = plant(str(marker))
    for path in (target, target.with_suffix(".pickle")):  # where it is read now, and where the pickle used to be
        path.write_bytes(payload)
        path.chmod(0o600)
    kb = base.build(loader.DATA_DIR)
    assert not marker.exists()
    assert kb.drug("Rinvoq").name == "upadacitinib"
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "rebuilt it from the YAML files" in err and str(target) in err
    assert base.build(loader.DATA_DIR).stats() == kb.stats()
    assert capsys.readouterr().err == ""  # said once: the rewritten file is good


def test_cache_with_a_changed_byte_is_rebuilt(cache_home, capsys):
    from jakinib.knowledge import base

    base.build(loader.DATA_DIR)
    target = base.cache_file(loader.DATA_DIR)
    raw = bytearray(target.read_bytes())
    at = raw.index(b'"upadacitinib"') + 1
    raw[at] = ord("U")  # still valid JSON, different content
    target.write_bytes(bytes(raw))
    kb = base.build(loader.DATA_DIR)
    assert "upadacitinib" in kb.drugs
    assert "content hash does not match" in capsys.readouterr().err


def test_cache_writable_by_others_is_not_trusted(cache_home, capsys):
    from jakinib.knowledge import base

    base.build(loader.DATA_DIR)
    target = base.cache_file(loader.DATA_DIR)
    target.chmod(0o666)
    base.build(loader.DATA_DIR)
    assert "writable by others" in capsys.readouterr().err
    assert target.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("rule", KB.rules, ids=lambda r: r.id)
def test_rule_makes_a_valid_cds_card(rule):
    from jakinib.safety.report import Assessment, Finding
    from jakinib.web.cdshooks import cards_for

    drug, product = KB.product(rule.products[0])
    finding = Finding(rule=rule.id, severity=rule.status, message=rule.message, sources=list(rule.sources))
    a = Assessment(drug=drug.name, product=product.id, route=product.route, status=rule.status, approved=True, dose=None,
                   findings=[finding], screening_missing=[], monitoring=[])
    (card,) = cards_for(a, rule.regulators[0], {"resourceType": "MedicationRequest"})
    assert 0 < len(card["summary"]) < 140
    assert card["indicator"] == ("critical" if rule.status in ("contraindicated", "do-not-start") else "warning")
    assert rule.message in card["detail"] and card["source"]["label"]
