"""The loaded, cross-checked, indexed knowledge base and its queries."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from jakinib.errors import KnowledgeError, UnknownNameError
from jakinib.knowledge import fields as f
from jakinib.knowledge import loader
from jakinib.knowledge import schema as s

REGULATOR_SYNONYMS = {
    "fda": "FDA", "us": "FDA", "usa": "FDA",
    "ema": "EMA", "eu": "EMA", "europe": "EMA", "ec": "EMA",
    "tga": "TGA", "au": "TGA", "australia": "TGA",
    "pmda": "PMDA", "jp": "PMDA", "japan": "PMDA", "mhlw": "PMDA",
    "mhra": "MHRA", "uk": "MHRA", "gb": "MHRA",
    "medsafe": "Medsafe", "nz": "Medsafe", "new zealand": "Medsafe",
    "healthcanada": "HealthCanada", "health canada": "HealthCanada", "health-canada": "HealthCanada",
    "hc": "HealthCanada", "ca": "HealthCanada", "canada": "HealthCanada",
    "nmpa": "NMPA", "cn": "NMPA", "china": "NMPA", "cfda": "NMPA",
}


def _key(name: str) -> str:
    return re.sub(r"[\s_®™]+", " ", name.strip().lower()).replace(" ", "-")


@dataclass(frozen=True)
class ApprovalRow:
    """An approval joined with its drug and product (the flat public JSON shape)."""

    drug: str
    product: str
    route: str
    approval: s.Approval
    grade: str = "secondary"

    @property
    def sort_key(self) -> str:
        """Chronological order; undated decisions last."""
        return self.approval.date or "9999"

    def to_json(self) -> dict[str, Any]:
        a = self.approval
        return {
            "drug": self.drug, "product": self.product, "route": self.route,
            "regulator": a.regulator, "indication": a.indication, "decision": a.decision,
            "date": a.date, "kind": a.kind, "min_age_years": a.min_age_years,
            "population": a.population, "dose": a.dose, "sources": list(a.sources), "grade": self.grade,
        }


@dataclass
class KnowledgeBase:
    """Validated data plus indexes. Build it with :func:`jakinib.load`."""

    drugs: dict[str, s.DrugFile]
    sources: dict[str, s.Source]
    indications: dict[str, s.Term]
    evidence: list[s.Evidence]
    conditions: dict[str, s.Term]
    medications: dict[str, s.MedicationEntry]
    labs: dict[str, s.LabDef]
    class_facts: list[s.ClassFact]
    codes: list[s.CodeMapping]
    pathways: list[s.Pathway]
    potency: list[s.MeasuredPotency]
    data_dir: Path
    rxnorm: list[s.RxNormConcept] = field(default_factory=list)
    signoffs: list[s.SignOff] = field(default_factory=list)
    screening_windows: dict[str, s.ScreeningWindow] = field(default_factory=dict)
    display_names: dict[str, str] = field(default_factory=dict)
    monitoring_tests: dict[str, s.MonitoringTest] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (f"KnowledgeBase({len(self.drugs)} drugs, {len(self.all_approvals())} approvals, "
                f"{len(self.rules)} rules, {len(self.sources)} sources, reviewed {self.review_date})")

    # ---- names ------------------------------------------------------------------------
    def _index_names(self) -> None:
        for name, d in self.drugs.items():
            keys = [name, *d.synonyms] + [b.name for p in d.products for b in p.brands]
            for k in keys:
                self._names.setdefault(_key(k), name)

    def display_name(self, slug: str, *, start: bool = True) -> str:
        """How ``slug`` is written for people (``display_names.yaml``; a lab's ``label``; else its words capitalised).

        ``start=False`` gives the mid-sentence form: "hepatitis C", but "ECG" and "HIV" stay as they are.
        """
        name = self.display_names.get(slug) or (self.labs[slug].label if slug in self.labs else None) \
            or slug.replace("-", " ").capitalize()
        if not start and len(name) > 1 and name[1].islower():
            name = name[0].lower() + name[1:]
        return name

    def drug(self, name: str) -> s.DrugFile:
        """A drug by generic name, brand or synonym (case-insensitive)."""
        key = _key(name)
        if key in self._names:
            return self.drugs[self._names[key]]
        raise UnknownNameError("drug", name, self._names)

    def product(self, product_id: str) -> tuple[s.DrugFile, s.Product]:
        for d in self.drugs.values():
            for p in d.products:
                if p.id == product_id:
                    return d, p
        raise UnknownNameError("product", product_id, [p.id for d in self.drugs.values() for p in d.products])

    def regulator(self, name: str) -> str:
        """A regulator slug from a slug, country or common name."""
        if name in s.REGULATORS:
            return name
        key = name.strip().lower()
        if key in REGULATOR_SYNONYMS:
            return REGULATOR_SYNONYMS[key]
        raise UnknownNameError("regulator", name, [*s.REGULATORS, *REGULATOR_SYNONYMS])

    @cached_property
    def _indication_names(self) -> dict[str, str]:
        return _term_index(self.indications)

    @cached_property
    def _condition_names(self) -> dict[str, str]:
        return _term_index(self.conditions, codes=True)

    @cached_property
    def _medication_names(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for m in self.medications.values():
            for k in [m.name, *m.synonyms, *m.rxnorm]:
                out.setdefault(_key(k), m.name)
        return out

    @cached_property
    def code_index(self) -> dict[tuple[str, str], s.CodeMapping]:
        """(system, code) -> mapping, for FHIR input."""
        return {(c.system, c.code): c for c in self.codes}

    def indication(self, name: str) -> s.Term:
        key = _key(name)
        if key in self._indication_names:
            return self.indications[self._indication_names[key]]
        raise UnknownNameError("indication", name, self._indication_names)

    def condition(self, name: str) -> s.Term:
        key = _key(name)
        if key in self._condition_names:
            return self.conditions[self._condition_names[key]]
        raise UnknownNameError("condition", name, self._condition_names)

    def medication(self, name: str) -> s.MedicationEntry | None:
        """A non-JAK medicine by name, brand or RxNorm code; None when unknown (no interaction class)."""
        key = _key(name)
        return self.medications[self._medication_names[key]] if key in self._medication_names else None

    # ---- queries ------------------------------------------------------------------------
    def grade(self, citations: Iterable[str]) -> str:
        """A fact's verification grade, derived from the sources it cites (see ``knowledge/provenance.py``)."""
        from jakinib.knowledge import provenance

        return provenance.grade_of(self.sources, citations)

    def all_approvals(self) -> list[ApprovalRow]:
        rows = []
        for d in self.drugs.values():
            routes = {p.id: p.route for p in d.products}
            for a in d.approvals:
                rows.append(ApprovalRow(d.name, a.product, routes[a.product], a, self.grade(a.sources)))
        return rows

    def review(self, drug: str | None = None, regulator: str | None = None) -> list[dict[str, Any]]:
        """What each drug × regulator rests on: grades, sections read, oldest check, partial labels, sign-offs."""
        from jakinib.knowledge import provenance

        return provenance.review(self, drug, regulator)

    def approvals(
        self,
        drug: str | None = None,
        regulator: str | None = None,
        indication: str | None = None,
        age: float | None = None,
        decision: str | None = "approved",
    ) -> list[ApprovalRow]:
        """Approvals filtered by drug, regulator, indication and the patient's age (min age <= age)."""
        d = self.drug(drug).name if drug else None
        r = self.regulator(regulator) if regulator else None
        i = self.indication(indication).id if indication else None
        out = []
        for row in self.all_approvals():
            a = row.approval
            if (d and row.drug != d) or (r and a.regulator != r) or (i and a.indication != i):
                continue
            if decision and a.decision != decision:
                continue
            if age is not None and a.min_age_years is not None and age < a.min_age_years:
                continue
            out.append(row)
        return sorted(out, key=lambda x: (x.drug, x.approval.regulator, x.approval.date or "", x.approval.indication))

    @cached_property
    def _approved_by(self) -> dict[tuple[str, str], list[ApprovalRow]]:
        index: dict[tuple[str, str], list[ApprovalRow]] = {}
        for row in self.all_approvals():
            if row.approval.decision == "approved":
                index.setdefault((row.drug, row.approval.regulator), []).append(row)
        return index

    def approved_rows(self, drug: str, regulator: str) -> list[ApprovalRow]:
        """Approved decisions for one drug under one regulator (indexed; for the checker's hot path)."""
        return self._approved_by.get((drug, regulator), [])

    def label(self, product: str, regulator: str) -> s.Label | None:
        d, _ = self.product(product)
        for lab in d.labels:
            if lab.product == product and lab.regulator == regulator:
                return lab
        return None

    @cached_property
    def rules(self) -> list[s.Rule]:
        return [r for d in self.drugs.values() for r in d.rules]

    @cached_property
    def _rules_index(self) -> dict[tuple[str, str], tuple[s.Rule, ...]]:
        index: dict[tuple[str, str], list[s.Rule]] = {}
        for r in self.rules:
            for p in r.products:
                for reg in r.regulators:
                    index.setdefault((p, reg), []).append(r)
        return {k: tuple(v) for k, v in index.items()}

    def rules_for(self, product: str, regulator: str) -> tuple[s.Rule, ...]:
        """The rules scoped to one product under one regulator."""
        return self._rules_index.get((product, regulator), ())

    @cached_property
    def _search_index(self) -> Any:
        from jakinib.knowledge import search

        return search.build(self)

    def search(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Ranked full-text search over drugs, brands, research codes, indications, label sections,
        adverse effects and class facts (see :mod:`jakinib.knowledge.search`)."""
        return self._search_index.search(text, limit=limit)

    @property
    def review_date(self) -> str | None:
        """The knowledge base's review date: the oldest ``as_of`` among its sources."""
        dates = [src.as_of for src in self.sources.values()]
        return min(dates).isoformat() if dates else None

    def stats(self) -> dict[str, Any]:
        from jakinib.knowledge import provenance

        cites = list(self._all_citations())
        return {
            "drugs": len(self.drugs),
            "products": sum(len(d.products) for d in self.drugs.values()),
            "approvals": len(self.all_approvals()),
            "labels": sum(len(d.labels) for d in self.drugs.values()),
            "rules": len(self.rules),
            "sources": len(self.sources),
            "citations": len(cites),
            "uncited_facts": 0,  # the schema refuses a fact without sources; kept for the report
            "indications": len(self.indications),
            "conditions": len(self.conditions),
            "medications": len(self.medications),
            "class_facts": len(self.class_facts),
            "review_date": self.review_date,
            "newest_source": max((x.as_of for x in self.sources.values()), default=date.min).isoformat(),
            "grades": provenance.grade_counts(self),
            "signoffs": len(self.signoffs),
        }

    def _all_citations(self) -> Iterable[tuple[str, str]]:
        for d in self.drugs.values():
            yield from loader.iter_citations(d, d.name)
        for group in (self.indications.values(), self.conditions.values(), self.medications.values(),
                      self.labs.values(), self.class_facts, self.evidence, self.codes,
                      self.pathways, self.potency, self.rxnorm):
            for item in group:
                yield from loader.iter_citations(item, getattr(item, "id", "") or getattr(item, "name", ""))

    # ---- validation across files ----------------------------------------------------------
    def check(self) -> None:
        """Cross-file checks; raise KnowledgeError naming the record and field."""
        for cite, where in self._all_citations():
            sid, _, section = cite.partition("#")
            src = self.sources.get(sid)
            if src is None:
                raise KnowledgeError(f"{where}: cites unknown source {sid!r}")
            if src.kind == "label" and not section:
                raise KnowledgeError(f"{where}: cites label {sid!r} without a section (use {sid}#<section>)")
        for ev in self.evidence:
            if ev.indication not in self.indications:
                raise KnowledgeError(f"evidence.yaml: unknown indication {ev.indication!r}")
            if ev.drug is not None and ev.drug not in self.drugs:
                raise KnowledgeError(f"evidence.yaml: {ev.indication}: unknown drug {ev.drug!r}")
        for d in self.drugs.values():
            for a in d.approvals:
                if a.indication not in self.indications:
                    raise KnowledgeError(f"drugs/{d.name}.yaml: approval {a.product}/{a.regulator}: unknown indication {a.indication!r}")
            for lab in d.labels:
                for dose in lab.doses:
                    if dose.indication not in self.indications:
                        raise KnowledgeError(f"drugs/{d.name}.yaml: label {lab.product}/{lab.regulator}: dose for unknown indication {dose.indication!r}")
        for lab_id in f.LAB_UNITS:
            if lab_id not in self.labs:
                raise KnowledgeError(f"labs.yaml: no entry for lab {lab_id!r} (its plausible range refuses impossible values)")
        for test in f.SCREENING_TESTS:
            if test not in self.screening_windows:
                raise KnowledgeError(f"labs.yaml: screening: no entry for test {test!r} (how old a result may be; null if never stale)")
        for test in self.screening_windows:
            if test not in f.SCREENING_TESTS:
                raise KnowledgeError(f"labs.yaml: screening: unknown test {test!r} (known: {', '.join(f.SCREENING_TESTS)})")
        from jakinib.knowledge.fields import SCREENING_TESTS

        for mt in self.monitoring_tests.values():
            for rec in mt.records:
                kind, _, name = rec.rpartition(":")
                if (kind == "screening" and name not in SCREENING_TESTS) or (not kind and rec not in f.LAB_UNITS) or kind not in ("", "screening"):
                    raise KnowledgeError(f"labs.yaml: monitoring test {mt.id}: record {rec!r} is not a lab of the patient "
                                         "(labs) nor screening:<test>")
        for d in self.drugs.values():
            for lab in d.labels:
                for m in lab.monitoring:
                    if m.test not in self.monitoring_tests:
                        raise KnowledgeError(f"drugs/{d.name}.yaml: label {lab.product}/{lab.regulator}: monitoring test "
                                             f"{m.test!r} is not in labs.yaml monitoring_tests (list it, with no records if "
                                             "jakinib reads none)")
        for lab in self.labs.values():
            lo, hi = lab.plausible
            if not lo < hi:
                raise KnowledgeError(f"labs.yaml: {lab.id}: field plausible: [{lo:g}, {hi:g}] is reversed or empty (low must be below high)")
        for sid, src in self.sources.items():
            for other in [*src.confirmed_by, *(x.source for x in src.disagrees_with)]:
                if other not in self.sources:
                    raise KnowledgeError(f"sources: {sid}: names unknown source {other!r}")
        for i, so in enumerate(self.signoffs):
            if so.drug not in self.drugs:
                raise KnowledgeError(f"signoffs.yaml: signoffs record {i}: unknown drug {so.drug!r}")
        cytokines = {p.cytokine for p in self.pathways}
        for m in self.potency:
            if m.drug not in self.drugs or m.cytokine not in cytokines:
                raise KnowledgeError(f"pathways.yaml: potency {m.drug}/{m.cytokine}: unknown drug or cytokine")
        for c in self.codes:
            if f.kind_of(c.field) is None and not c.field.startswith("conditions"):
                raise KnowledgeError(f"codes.yaml: {c.system} {c.code}: unknown patient field {c.field!r}")
        products = {p.id for d in self.drugs.values() for p in d.products}
        seen_codes: set[str] = set()
        for c in self.rxnorm:
            if c.ingredient not in self.drugs and c.ingredient not in self.medications:
                raise KnowledgeError(f"codes.yaml: rxnorm {c.code}: unknown ingredient {c.ingredient!r} (a drug or a medications.yaml name)")
            if c.product is not None and c.product not in products:
                raise KnowledgeError(f"codes.yaml: rxnorm {c.code}: unknown product {c.product!r}")
            if c.code in seen_codes:
                raise KnowledgeError(f"codes.yaml: rxnorm {c.code}: listed twice")
            seen_codes.add(c.code)
        ids: set[str] = set()
        for m in self.medications.values():
            bad = set(m.classes) - set(f.INTERACTION_CLASSES)
            if bad:
                raise KnowledgeError(f"medications.yaml: {m.name}: unknown interaction class(es) {sorted(bad)}")
        for rule in self.rules:
            if rule.id in ids:
                raise KnowledgeError(f"rule {rule.id}: duplicate id")
            ids.add(rule.id)
            for ind in rule.indications or []:
                if ind not in self.indications:
                    raise KnowledgeError(f"rule {rule.id}: unknown indication {ind!r}")
            for p in loader.iter_predicates(rule.when):
                if p.field is None:
                    continue
                kind = f.kind_of(p.field)
                if kind is None:
                    raise KnowledgeError(f"rule {rule.id}: field {p.field!r} is not a patient field (known: {', '.join(f.known_fields())})")
                if p.has is not None:
                    if kind != "list":
                        raise KnowledgeError(f"rule {rule.id}: 'has' needs a list field, not {p.field!r}")
                    vocab = {"conditions": self.conditions, "history": self.conditions, "allergies": self.drugs,
                             "medication_classes": f.INTERACTION_CLASSES}.get(p.field)
                    if vocab is not None and p.has not in vocab:
                        raise KnowledgeError(f"rule {rule.id}: {p.field} has unknown value {p.has!r}")
                if p.op is not None and kind != "number" and p.op not in ("==", "!="):
                    raise KnowledgeError(f"rule {rule.id}: op {p.op!r} needs a numeric field, not {p.field!r}")
                if p.in_ is not None and kind == "list":
                    raise KnowledgeError(f"rule {rule.id}: 'in' tests one value; use any/has for the list field {p.field!r}")
                if p.is_ is not None and kind != "bool":
                    raise KnowledgeError(f"rule {rule.id}: 'is' needs a true/false field, not {p.field!r}")
                if p.in_ is not None and kind == "screening":
                    bad = set(p.in_) - set(f.SCREENING_RESULTS)
                    if bad:
                        raise KnowledgeError(f"rule {rule.id}: {p.field} has unknown result(s) {sorted(bad)}")


def _term_index(terms: dict[str, s.Term], codes: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in terms.values():
        keys = [t.id, t.label, *t.synonyms]
        if codes:
            keys += t.snomed + t.icd10
        for k in keys:
            out.setdefault(_key(k), t.id)
    return out


CACHE_FORMAT = 3
"""Bump when the cache layout changes (the jakinib version and the data files are in the key already)."""


def snapshot_fields() -> dict[str, Any]:
    """What the cache stores: every :class:`KnowledgeBase` field but the folder and the derived indexes, with its
    type (derived from the dataclass itself, so the two cannot drift apart)."""
    import typing

    hints = typing.get_type_hints(KnowledgeBase, globalns={**globals(), "s": s})
    return {f_.name: hints[f_.name] for f_ in dataclasses.fields(KnowledgeBase)
            if not f_.name.startswith("_") and f_.name != "data_dir"}


def cache_dir() -> Path:
    """Where validated knowledge bases are cached: ``$JAKINIB_CACHE_DIR`` or ``~/.cache/jakinib``."""
    import os

    return Path(os.environ.get("JAKINIB_CACHE_DIR") or Path.home() / ".cache" / "jakinib")


def _content_key(data_dir: Path) -> str:
    import hashlib

    from jakinib import __version__

    digest = hashlib.sha256(f"{__version__}\0{CACHE_FORMAT}\0".encode())
    for path in sorted(data_dir.rglob("*.yaml")):
        digest.update(str(path.relative_to(data_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class _BadCache(Exception):
    """A cache file that must not be used (the message says why)."""


def cache_file(data_dir: Path, key: str | None = None) -> Path:
    """The cache file for the current content of ``data_dir``."""
    return cache_dir() / f"kb-{(key or _content_key(data_dir))[:24]}.json"


def _read_cache(target: Path, key: str, data_dir: Path) -> KnowledgeBase:
    """A cached knowledge base; any exception means the file must be rebuilt.

    The models are rebuilt by :mod:`jakinib.knowledge.construct` (shape-checked, not re-validated): they were
    validated when the file was written, its SHA-256 says the bytes are those written, and only its owner can
    write it. Data, never code: JSON in, the schema's own classes out."""
    import hashlib
    import json
    import os

    from jakinib.knowledge import construct

    st = target.stat()
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        raise _BadCache("not owned by you, or writable by others")
    header, sep, payload = target.read_bytes().partition(b"\n")
    if not sep:
        raise _BadCache("truncated")
    meta = json.loads(header)
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        raise _BadCache("written for other data or another jakinib version")
    if meta.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise _BadCache("corrupt: its content hash does not match")
    content = json.loads(payload)
    fields = snapshot_fields()
    if not isinstance(content, dict) or content.keys() != fields.keys():
        raise _BadCache("its sections are not those of this jakinib version")
    try:
        kb = KnowledgeBase(**{name: construct.construct(kind, content[name]) for name, kind in fields.items()},
                           data_dir=data_dir)
    except construct.ShapeError as exc:
        raise _BadCache(f"malformed: {exc}") from None
    kb._index_names()
    return kb


def _write_cache(target: Path, key: str, kb: KnowledgeBase) -> None:
    import hashlib
    import json
    import os

    from jakinib.knowledge import construct

    content = {name: construct.dump(getattr(kb, name)) for name in snapshot_fields()}
    payload = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    header = json.dumps({"format": CACHE_FORMAT, "key": key, "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(header + b"\n" + payload)
    tmp.replace(target)


def build(data_dir: Path = loader.DATA_DIR, cache: bool = True) -> KnowledgeBase:
    """The knowledge base for ``data_dir``: validated once, then loaded from a cache keyed by the files' content.

    The cache (:func:`cache_dir`) is JSON of the validated models with a SHA-256 of its content inside, so it
    holds data and never code. A file that is corrupt, foreign or stale is ignored: the YAML is validated
    again, the file rewritten, and one line on stderr says so. Any edit changes the key.
    """
    if not data_dir.is_dir():
        raise KnowledgeError(f"{data_dir}: knowledge data folder not found")
    if not cache:
        return _build(data_dir)
    import sys

    key = _content_key(data_dir)
    target = cache_file(data_dir, key)
    problem = None
    try:
        return _read_cache(target, key, data_dir)
    except FileNotFoundError:
        pass
    except _BadCache as exc:
        problem = str(exc)
    except Exception as exc:  # any other defect in a cache file means: rebuild it
        problem = f"unreadable: {type(exc).__name__}"
    kb = _build(data_dir)
    with contextlib.suppress(OSError):  # a read-only home is fine: validate every time
        _write_cache(target, key, kb)
    if problem:
        sys.stderr.write(f"jakinib: ignored the knowledge-base cache {target} ({problem}); rebuilt it from the YAML files\n")
    return kb


REQUIRED_FILES = ("indications.yaml", "conditions.yaml", "medications.yaml", "labs.yaml", "codes.yaml",
                  "pathways.yaml", "class_facts.yaml", "evidence.yaml")
"""Data files every knowledge folder needs (besides ``sources/`` and ``drugs/``): without labs.yaml, say,
no lab value could be refused as implausible."""


def _build(data_dir: Path) -> KnowledgeBase:
    """Parse every data file under ``data_dir``, validate and cross-check."""
    missing = [name for name in REQUIRED_FILES if not (data_dir / name).is_file()]
    missing += [f"{folder}/*.yaml" for folder in ("sources", "drugs") if not any((data_dir / folder).glob("*.yaml"))]
    if missing:
        raise KnowledgeError(f"{data_dir}: not a complete knowledge data folder: missing {', '.join(missing)}")
    sources: dict[str, s.Source] = {}
    for path in sorted((data_dir / "sources").glob("*.yaml")):
        for src in loader.parse_list(path, s.Source):
            if src.id in sources:
                raise KnowledgeError(f"{path.name}: source {src.id!r} is defined twice")
            sources[src.id] = src
    drugs: dict[str, s.DrugFile] = {}
    for path in sorted((data_dir / "drugs").glob("*.yaml")):
        d = loader.parse_one(path, s.DrugFile)
        if d.name != path.stem:
            raise KnowledgeError(f"{path.name}: name {d.name!r} does not match the file name")
        drugs[d.name] = d

    def sections(name: str, models: dict[str, type]) -> dict[str, list[Any]]:
        return loader.parse_sections(data_dir / name, models)

    ind = sections("indications.yaml", {"indications": s.Term})
    evidence = sections("evidence.yaml", {"evidence": s.Evidence})
    cond = sections("conditions.yaml", {"conditions": s.Term})
    meds = sections("medications.yaml", {"medications": s.MedicationEntry})
    labs = sections("labs.yaml", {"labs": s.LabDef, "screening": s.ScreeningWindow, "monitoring_tests": s.MonitoringTest})
    facts = sections("class_facts.yaml", {"facts": s.ClassFact})
    codes = sections("codes.yaml", {"codes": s.CodeMapping, "rxnorm": s.RxNormConcept})
    pathways = sections("pathways.yaml", {"pathways": s.Pathway, "potency": s.MeasuredPotency})
    signoffs = (sections("signoffs.yaml", {"signoffs": s.SignOff}) if (data_dir / "signoffs.yaml").is_file()
                else {"signoffs": []})
    names = (sections("display_names.yaml", {"names": s.DisplayName}) if (data_dir / "display_names.yaml").is_file()
             else {"names": []})
    seen_names: set[str] = set()
    for n in names["names"]:
        if n.id in seen_names:
            raise KnowledgeError(f"display_names.yaml: {n.id!r} is named twice")
        seen_names.add(n.id)
    kb = KnowledgeBase(
        drugs=drugs,
        sources=sources,
        indications={t.id: t for t in ind["indications"]},
        evidence=evidence["evidence"],
        conditions={t.id: t for t in cond["conditions"]},
        medications={m.name: m for m in meds["medications"]},
        labs={x.id: x for x in labs["labs"]},
        screening_windows={w.test: w for w in labs["screening"]},
        class_facts=facts["facts"],
        codes=codes["codes"],
        rxnorm=codes["rxnorm"],
        pathways=pathways["pathways"],
        potency=pathways["potency"],
        data_dir=data_dir,
        signoffs=signoffs["signoffs"],
        display_names={n.id: n.name for n in names["names"]},
        monitoring_tests={x.id: x for x in labs["monitoring_tests"]},
    )
    kb._index_names()
    kb.check()
    return kb
