"""Full-text search over the knowledge base: an in-memory SQLite FTS5 index, ranked by BM25.

One document per drug, indication, label section (boxed warning, warning, contraindication,
screening, pregnancy), adverse effect and class fact. Names (generic, brand, research code,
synonym) weigh most, then keywords (approved indications, targets), then the body text.
A query term that is a synonym of a vocabulary term ("shingles", "TB", "AD") is expanded to it;
a term that matches nothing is corrected to the closest indexed word (typo tolerance); words of
three or more letters also match as prefixes. Snippets are cut at word boundaries by FTS5.
"""

from __future__ import annotations

import difflib
import functools
import html
import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jakinib.knowledge.base import KnowledgeBase

OPEN, CLOSE = "\ue000", "\ue001"  # match markers inside snippets (private-use code points)
WEIGHTS = (10.0, 4.0, 1.0)  # bm25 column weights: names, keywords, body
KIND_BOOST = {"drug": 1.6, "indication": 1.5, "class-fact": 1.2, "boxed-warning": 1.1, "warning": 1.0,
              "contraindication": 1.0, "screening": 1.0, "pregnancy": 1.0, "adverse-effect": 0.9, "rule": 0.8}
WORD = re.compile(r"\w+", re.UNICODE)  # the same word boundaries as the unicode61 tokenizer


@dataclass(frozen=True)
class Doc:
    kind: str
    id: str
    label: str
    url: str
    names: str
    keywords: str
    body: str


def _leaves(p: Any) -> list[tuple[str, str]]:
    """(field, value) of every membership test in a rule's predicate tree."""
    if p.field is not None:
        return [(p.field, p.has)] if p.has is not None else [(p.field, v) for v in p.in_ or []]
    return [x for c in [*(p.all or []), *(p.any or []), *([p.not_] if p.not_ else [])] for x in _leaves(c)]


Sections = dict[tuple[str, str], tuple[str, list[str], list[str]]]


def _add_section(sections: Sections, kind: str, topic: str, title: str, regulator: str, text: str) -> None:
    _, regs, texts = sections.setdefault((kind, topic), (title, [], []))
    regs.append(regulator)
    if text and text not in texts:
        texts.append(text)


def _docs(kb: KnowledgeBase) -> list[Doc]:
    docs: list[Doc] = []
    approved: dict[str, set[str]] = {}
    by_indication: dict[str, list[str]] = {}
    for row in kb.all_approvals():
        if row.approval.decision == "approved":
            approved.setdefault(row.drug, set()).add(row.approval.indication)
            brands = {b.name for p in kb.drugs[row.drug].products if p.id == row.product for b in p.brands}
            by_indication.setdefault(row.approval.indication, []).append(
                f"{row.drug} ({', '.join(sorted(brands))}) {row.approval.regulator}")
    members: dict[str, list[str]] = {}
    for m in kb.medications.values():
        for c in m.classes:
            members.setdefault(c, []).extend([m.name, *m.synonyms])
    for d in kb.drugs.values():
        brands = sorted({b.name for p in d.products for b in p.brands})
        tag = f"{d.name} {' '.join(brands)}"
        indications = [kb.indications[i] for i in sorted(approved.get(d.name, ())) if i in kb.indications]
        keywords = " ".join([d.drug_class, *(t.kinase for t in d.targets), *(p.formulation for p in d.products),
                             *(t.label for t in indications), *(s for t in indications for s in t.synonyms)])
        docs.append(Doc("drug", d.name, d.name, f"/drugs/{d.name}", " ".join([d.name, *d.synonyms, *brands]), keywords,
                        " ".join([d.mechanism, d.selectivity or ""])))
        # label sections, one document per drug x section x topic across regulators
        sections: Sections = {}
        add = functools.partial(_add_section, sections)

        for lab in d.labels:
            if lab.boxed_warning:
                bw = lab.boxed_warning
                topics = ", ".join(kb.display_name(t, start=False) for t in bw.topics)
                add("boxed-warning", "boxed", f"Boxed warning: {topics}", lab.regulator, bw.text or "")
            for w in lab.warnings:
                add("warning", w.topic, kb.display_name(w.topic), lab.regulator, w.text)
            for c in lab.contraindications:
                add("contraindication", "contraindications", "Contraindications", lab.regulator, c.text)
            for item in lab.screening:
                add("screening", item.test, f"{kb.display_name(item.test)} screening", lab.regulator, item.text)
            if lab.pregnancy:
                add("pregnancy", "pregnancy", "Pregnancy", lab.regulator, lab.pregnancy.text)
            if lab.breastfeeding:
                add("pregnancy", "breastfeeding", "Breastfeeding", lab.regulator, lab.breastfeeding.text)
            for ae in lab.adverse_effects:
                add("adverse-effect", ae.term.lower(), ae.term, lab.regulator, "")
        for (kind, topic), (title, regs, texts) in sections.items():
            where = ", ".join(sorted(set(regs)))
            anchor = "#adverse-effects" if kind == "adverse-effect" else ""
            body = " ".join(texts) if texts else f"{title}: listed in the {where} label of {d.name}."
            docs.append(Doc(kind, f"{d.name}:{topic}", f"{title} — {d.name} ({where})", f"/drugs/{d.name}{anchor}",
                            title, tag, body))
        for r in d.rules:
            related = [x for fld, v in _leaves(r.when) for x in ([v.replace("-", " ")] + (members.get(v, []) if fld == "medication_classes" else []))]
            docs.append(Doc("rule", r.id, f"Checker rule {r.id} — {d.name} ({', '.join(r.regulators)})", f"/drugs/{d.name}#rules",
                            r.id.replace(".", " ").replace("-", " "), f"{tag} {' '.join(related)}",
                            r.message + (f" Dose: {r.dose.text}" if r.dose else "")))
    for t in kb.indications.values():
        docs.append(Doc("indication", t.id, t.label, f"/approvals?indication={t.id}", " ".join([t.label, t.id.replace("-", " "), *t.synonyms]),
                        "", "Approved: " + "; ".join(sorted(by_indication[t.id])) if t.id in by_indication else ""))
    for cf in kb.class_facts:
        syn = cf.data.get("synonyms") if isinstance(cf.data.get("synonyms"), list) else []
        docs.append(Doc("class-fact", cf.id, f"JAK inhibitors: {cf.id.replace('-', ' ')}", f"/jak-inhibitors#fact-{cf.id}",
                        " ".join(map(str, syn)), cf.topic.replace("-", " ") + " " + cf.id.replace("-", " "), cf.text))
    return docs


def _exact(kb: KnowledgeBase) -> dict[str, tuple[str, str]]:
    """Normalised name -> (kind, id) for names a user types to go somewhere: drugs, brands, codes, indications."""
    out: dict[str, tuple[str, str]] = {}
    for d in kb.drugs.values():
        for name in [d.name, *d.synonyms, *(b.name for p in d.products for b in p.brands)]:
            out.setdefault(_norm(name), ("drug", d.name))
    for t in kb.indications.values():
        for name in [t.id, t.label, *t.synonyms]:
            out.setdefault(_norm(name), ("indication", t.id))
    return out


def _norm(text: str) -> str:
    return " ".join(WORD.findall(text.lower()))


def _expansions(kb: KnowledgeBase) -> dict[str, str]:
    """Lower-case synonym -> the vocabulary label it stands for (indications and conditions)."""
    out: dict[str, str] = {}
    for term in [*kb.indications.values(), *kb.conditions.values()]:
        for name in [term.label, *term.synonyms]:
            out.setdefault(name.lower(), term.label)
    return out


class SearchIndex:
    """The FTS5 index of one knowledge base; build once with :func:`build`, query with :meth:`search`."""

    def __init__(self, docs: list[Doc], expansions: dict[str, str], exact: dict[str, tuple[str, str]]) -> None:
        self.docs = docs
        self.expansions = expansions
        self.exact = exact
        self._rowid = {(d.kind, d.id): i for i, d in enumerate(docs)}
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute("CREATE VIRTUAL TABLE doc USING fts5(names, keywords, body, tokenize='unicode61 remove_diacritics 2')")
        self.db.executemany("INSERT INTO doc(rowid, names, keywords, body) VALUES (?, ?, ?, ?)",
                            [(i, d.names, d.keywords, d.body) for i, d in enumerate(docs)])
        self.db.execute("CREATE VIRTUAL TABLE vocab USING fts5vocab(doc, row)")
        self.vocabulary = [t for (t,) in self.db.execute("SELECT term FROM vocab")]
        self._known = set(self.vocabulary)

    def _term(self, word: str) -> str | None:
        """One query word as an FTS5 expression: exact, prefix (3+ letters) or the closest indexed word."""
        w = word.lower()
        if w in self._known:
            return f'"{w}"' + ("*" if len(w) >= 3 else "")
        if len(w) >= 3 and any(t.startswith(w) for t in self.vocabulary):
            return f'"{w}"*'
        close = difflib.get_close_matches(w, self.vocabulary, n=1, cutoff=0.75) if len(w) >= 4 else []
        return f'"{close[0]}"' if close else None

    def _query(self, text: str) -> str | None:
        words = WORD.findall(text.lower())
        if not words:
            return None
        phrase = " ".join(words)
        parts = [e for e in (self._term(w) for w in words) if e]
        base = " AND ".join(parts) if len(parts) == len(words) else (" OR ".join(parts) if parts else None)
        alternatives = [base] if base else []
        expansion = self.expansions.get(phrase)
        if expansion and expansion.lower() != phrase:
            alternatives.append(" AND ".join(f'"{w}"' for w in WORD.findall(expansion.lower())))
        if len(words) > 1:
            alternatives.append('"' + phrase + '"')
        return " OR ".join(f"({a})" for a in alternatives) if alternatives else None

    def search(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Ranked hits: kind, id, label, url, match (what matched), snippet (plain) and snippet_html."""
        query = self._query(text)
        if not query:
            return []
        rows = self.db.execute(
            "SELECT rowid, bm25(doc, ?, ?, ?), snippet(doc, 2, ?, ?, '…', 16), snippet(doc, -1, ?, ?, '…', 16) FROM doc WHERE doc MATCH ?",
            (*WEIGHTS, OPEN, CLOSE, OPEN, CLOSE, query)).fetchall()
        rows = [(i, score, body if OPEN in body else best) for i, score, body, best in rows]
        corrected = " ".join(t.strip('"*') for t in (self._term(w) or w for w in WORD.findall(text.lower())))
        target = self.exact.get(_norm(text)) or self.exact.get(corrected)
        pinned = self._rowid.get(target) if target else None
        scored = sorted(((score * KIND_BOOST.get(self.docs[i].kind, 1.0) - (1e6 if i == pinned else 0), i, snip)
                         for i, score, snip in rows))
        hits = []
        for score, i, snip in scored[:limit]:
            d = self.docs[i]
            plain = snip.replace(OPEN, "").replace(CLOSE, "")
            marked = html.escape(snip).replace(OPEN, "<mark>").replace(CLOSE, "</mark>")
            hits.append({"kind": d.kind, "id": d.id, "label": d.label, "url": d.url, "match": plain,
                         "snippet": plain, "snippet_html": marked, "score": round(-score % 1e6 if i == pinned else -score, 3),
                         "exact": i == pinned})
        return hits


def build(kb: KnowledgeBase) -> SearchIndex:
    """Index ``kb`` (about 20 ms for the bundled data)."""
    return SearchIndex(_docs(kb), _expansions(kb), _exact(kb))
