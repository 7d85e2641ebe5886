"""CDS Hooks cards for one assessment: what the clinician sees inside the EHR.

- One card per assessment whose status is not ``ok``: ``critical`` for contraindicated and
  do-not-start, ``warning`` for avoid and caution. Its summary states the *worst* finding
  (status order), in under 140 characters, cut at a word boundary.
- An ``info`` card listing the screening still missing before start.
- A ``warning`` card for patient data that could not be read (missing or failed prefetch).

``detail`` is Markdown. Text that came from the EHR (medication names, condition names, server
messages) is escaped completely, so ``[x](javascript:...)`` or ``![](http://...)`` shows as text;
jakinib's own text has links, images and HTML neutralised too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

import jakinib
from jakinib.knowledge.schema import STATUS_ORDER
from jakinib.safety.report import Assessment, Finding

SUMMARY_MAX = 139
"""CDS Hooks 2.0: a card's summary is "<140 characters"."""

INDICATOR = {"contraindicated": "critical", "do-not-start": "critical", "avoid": "warning", "caution": "warning"}
HEAD = {"contraindicated": "Contraindicated", "do-not-start": "Do not start", "avoid": "Avoid", "caution": "Caution"}
OVERRIDE_REASONS = [
    {"code": "benefit-outweighs-risk", "system": "https://jakinib.org/override-reason", "display": "Benefit outweighs risk for this patient"},
    {"code": "data-out-of-date", "system": "https://jakinib.org/override-reason", "display": "Patient data shown is out of date or wrong"},
    {"code": "specialist-advice", "system": "https://jakinib.org/override-reason", "display": "Started on specialist advice"},
    {"code": "screening-done-elsewhere", "system": "https://jakinib.org/override-reason", "display": "Screening done elsewhere"},
]
DEFAULT_SOURCE = {"label": "jakinib JAK inhibitor reference", "url": "https://github.com/jakinib/jakinib"}

_ALL_PUNCT = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
_ACTIVE = re.compile(r"([\[\]`\\]|<(?=[A-Za-z/!?])|&(?=[#A-Za-z]))")
_MAY_BE_ACTIVE = re.compile(r"[\[\]`\\<&]")  # a quick scan: most of jakinib's text has none of these


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed, control characters dropped."""
    return " ".join(_CONTROL.sub("", str(text)).split())


def prepare_untrusted(strings: Iterable[str]) -> tuple[str, ...]:
    """EHR strings for :func:`markdown`: on one line, distinct, longest first (so the longest match wins)."""
    return tuple(sorted({w for w in map(one_line, strings) if w}, key=len, reverse=True))


def escape_markdown(text: str) -> str:
    """Untrusted text as literal Markdown: every ASCII punctuation character backslash-escaped.

    >>> escape_markdown("[x](javascript:alert(1))")
    '\\\\[x\\\\]\\\\(javascript\\\\:alert\\\\(1\\\\)\\\\)'
    """
    return _ALL_PUNCT.sub(r"\\\1", one_line(text))


def _neutralise(text: str) -> str:
    return _ACTIVE.sub(r"\\\1", text) if _MAY_BE_ACTIVE.search(text) else text


def markdown(text: str, untrusted: Iterable[str] = ()) -> str:
    """jakinib's own text with links, images, code and HTML neutralised; substrings in ``untrusted`` fully escaped.

    ``untrusted``: EHR strings, best given once through :func:`prepare_untrusted` for many calls."""
    text = one_line(text)
    prepared = untrusted if isinstance(untrusted, tuple) else prepare_untrusted(untrusted)
    words = [w for w in prepared if w in text]
    if not words:
        return _neutralise(text)
    parts = re.split("(" + "|".join(re.escape(w) for w in words) + ")", text)
    return "".join(escape_markdown(p) if i % 2 else _neutralise(p) for i, p in enumerate(parts))


def fit(text: str, limit: int = SUMMARY_MAX) -> str:
    """``text`` on one line in at most ``limit`` characters, cut at a word boundary with an ellipsis.

    >>> fit("Do not start tofacitinib: absolute lymphocyte count below 500 cells/mm3", 40)
    'Do not start tofacitinib: absolute…'
    """
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut and not text[limit - 1].isspace():
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:—-") + "…"


def worst_findings(a: Assessment) -> list[Finding]:
    """The findings at the assessment's worst severity (status order), in the assessment's order."""
    graded = [f for f in a.findings if f.severity in INDICATOR]
    if not graded:
        return []
    top = min((f.severity for f in graded), key=STATUS_ORDER.index)
    return [f for f in graded if f.severity == top]


def summary(a: Assessment) -> str:
    """"Do not start tofacitinib: <the worst finding> (+2 more)", under 140 characters."""
    top = worst_findings(a)
    head = f"{HEAD.get(a.status, 'OK')} {a.drug}"
    if not top:
        return fit(head)
    more = len(top) - 1
    tail = f" (+{more} more)" if more else ""
    return fit(f"{head}: {top[0].message}", SUMMARY_MAX - len(tail)) + tail


def detail(a: Assessment, regulator: str, untrusted: Iterable[str] = (), notes: Iterable[str] = ()) -> str:
    """The card's Markdown detail: status, every finding with its sources, dose, screening, notes."""
    untrusted = prepare_untrusted(untrusted) if not isinstance(untrusted, tuple) else untrusted

    def md(text: str) -> str:
        return markdown(text, untrusted)

    lines = [f"**{md(a.drug)}** ({md(a.product)}) under **{md(regulator)}** labels: **{md(a.status)}**", ""]
    for f in a.findings:
        if f.severity != "ok":
            lines.append(f"- *{f.severity}*: {md(f.message)} _(sources: {md(', '.join(f.sources))})_")
    if a.dose:
        lines += ["", f"Dose: {md(a.dose.text)}" + (f" (adjusted: {md(a.dose.reason or '')})" if a.dose.adjusted else "")]
    if a.screening_missing:
        lines += ["", "Screen before starting: " + md(", ".join(a.screening_missing))]
    for note in notes:
        lines += ["", md(note)]
    return "\n".join(lines)


def _source(a: Assessment) -> dict[str, str]:
    kb = jakinib.load()
    for f in a.findings:
        for s in f.sources:
            src = kb.sources.get(s.partition("#")[0])
            if src is not None and src.kind == "label":
                return {"label": fit(f"jakinib: {src.title}", 200), "url": src.url or DEFAULT_SOURCE["url"]}
    return dict(DEFAULT_SOURCE)


def dose_suggestion(a: Assessment, order: dict[str, Any]) -> list[dict[str, Any]]:
    """An 'update the order' suggestion when the recommended dose is adjusted."""
    if not (a.dose and a.dose.adjusted and a.dose.mg and a.dose.every_h):
        return []
    resource = dict(order)
    resource["dosageInstruction"] = [{
        "text": a.dose.text,
        "timing": {"repeat": {"frequency": 1, "period": a.dose.every_h, "periodUnit": "h"}},
        "doseAndRate": [{"doseQuantity": {"value": a.dose.mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}],
    }]
    return [{"label": fit(f"Change to {a.dose.text}", 80), "uuid": str(uuid.uuid4()), "isRecommended": True,
             "actions": [{"type": "update", "description": fit(f"Update the order to {a.dose.text}", 200), "resource": resource}]}]


def cards_for(a: Assessment, regulator: str, order: dict[str, Any], untrusted: Iterable[str] = (),
              notes: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Cards for one assessment: critical/warning for its status, info for missing screening.

    ``untrusted``: EHR-originated strings to escape wherever they appear; ``notes``: extra lines for
    the detail (the indication assumed, data that could not be read).
    """
    untrusted, notes = prepare_untrusted(untrusted) if not isinstance(untrusted, tuple) else untrusted, list(notes)
    source = _source(a)
    cards: list[dict[str, Any]] = []
    text = detail(a, regulator, untrusted, notes) if a.status in INDICATOR or a.screening_missing else ""  # once for both
    if a.status in INDICATOR:
        card: dict[str, Any] = {"uuid": str(uuid.uuid4()), "summary": summary(a), "indicator": INDICATOR[a.status],
                                "detail": text, "source": source,
                                "overrideReasons": OVERRIDE_REASONS}
        suggestions = dose_suggestion(a, order)
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        cards.append(card)
    if a.screening_missing:
        cards.append({"uuid": str(uuid.uuid4()), "summary": fit(f"Before starting {a.drug}: screen for {', '.join(a.screening_missing)}"),
                      "indicator": "info", "detail": text, "source": source,
                      "overrideReasons": OVERRIDE_REASONS})
    return cards


def missing_data_card(drug: str, what: dict[str, str], untrusted: Iterable[str] = ()) -> dict[str, Any]:
    """A warning that names patient data the check could not see, and why (``what``: label -> reason)."""
    labels = list(what)
    lines = [f"jakinib checked **{drug}** without some of the patient's record, so findings that need it are "
             "reported as unknown, not as passed:", ""]
    lines += [f"- {markdown(label)}: {markdown(reason, untrusted)}" for label, reason in what.items()]
    first = labels[0]
    text = (f"{first[0].upper()}{first[1:]} not available: {what[first]}" if len(labels) == 1
            else f"Not available: {', '.join(labels)}; findings that need them are unknown")
    return {"uuid": str(uuid.uuid4()), "indicator": "warning", "summary": fit(text),
            "detail": "\n".join(lines), "source": dict(DEFAULT_SOURCE)}
