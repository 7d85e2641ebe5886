"""The checker: a patient, a regulator and drugs in; one assessment per drug out.

All clinical content comes from the knowledge base (labels and rules); this module only
combines it: approval and age check, rule evaluation (three-valued), screening still missing,
the dose for the indication with rule-driven adjustments, and the monitoring plan with dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from jakinib.errors import InputError
from jakinib.knowledge import schema as s
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety import renal
from jakinib.safety.patient import Patient
from jakinib.safety.predicates import evaluate
from jakinib.safety.renal import NAMES
from jakinib.safety.report import (
    Assessment,
    DoseCandidate,
    DoseRecommendation,
    Finding,
    MonitoringEntry,
    Report,
    worst,
)


def choose_product(kb: KnowledgeBase, drug: s.DrugFile, regulator: str, indication: str | None) -> s.Product:
    """The product to assess: one approved by the regulator for the indication, else one it approved, else the first."""
    approved = [r.approval for r in kb.approved_rows(drug.name, regulator)]
    for p in drug.products:
        if indication and any(a.product == p.id and a.indication == indication for a in approved):
            return p
    for p in drug.products:
        if any(a.product == p.id for a in approved):
            return p
    return drug.products[0]


def _approval_findings(kb: KnowledgeBase, drug: s.DrugFile, product: s.Product, regulator: str,
                       indication: str | None, age: float | None) -> tuple[bool | None, list[Finding]]:
    rows = [r.approval for r in kb.approved_rows(drug.name, regulator) if r.product == product.id]
    if not rows:
        return False, [Finding(rule="approval.none", severity="avoid", sources=["seed"],
                               message=f"No {regulator} approval of {drug.name} ({product.route}) is recorded in jakinib.")]
    if indication is None:
        return None, [Finding(rule="approval.indication-unknown", severity="caution", sources=sorted({c for a in rows for c in a.sources})[:3],
                              needs=["indication"],
                              message="No indication given: approval, age limit and dose for the indication were not checked.")]
    matching = [a for a in rows if a.indication == indication]
    if not matching:
        return False, [Finding(rule="approval.off-label", severity="avoid", sources=sorted({c for a in rows for c in a.sources})[:3],
                               message=f"{drug.name} ({product.route}) is not approved by {regulator} for {indication} (approved for: "
                                       f"{', '.join(sorted({a.indication for a in rows}))}).")]
    ages = [a.min_age_years for a in matching]
    min_age = None if None in ages else min(a for a in ages if a is not None)
    if min_age is not None and age is None:
        return True, [Finding(rule="approval.age-unknown", severity="caution", needs=["age"],
                              sources=list(matching[0].sources), message=f"Age unknown: approved from {min_age:g} years.")]
    if min_age is not None and age is not None and age < min_age:
        return False, [Finding(rule="approval.below-min-age", severity="avoid",
                               sources=sorted({c for a in matching for c in a.sources}),
                               message=f"{regulator} approval for {indication} starts at {min_age:g} years; patient is {age:g}.")]
    return True, []


def _contradicting(kb: KnowledgeBase, patient: Patient, test: str) -> list[s.Term]:
    """Recorded conditions that imply a positive ``test`` (e.g. latent TB implies a positive TB screen)."""
    terms = [kb.conditions.get(c) for c in patient.conditions]
    return [t for t in terms if t is not None and t.implies_screening.get(test) == "positive"]


def _stale(kb: KnowledgeBase, test: str, when: dt.date | None, today: dt.date) -> str | None:
    """Why a dated screening result is too old to count before starting (``labs.yaml`` screening windows), or None."""
    window = kb.screening_windows.get(test)
    if when is None or window is None or window.max_age_days is None or (today - when).days <= window.max_age_days:
        return None
    return f"the result recorded is from {when.isoformat()}, {(today - when).days} days ago (older than {window.max_age_days} days)"


def stale_screening(kb: KnowledgeBase, patient: Patient, today: dt.date) -> set[str]:
    """The screening tests whose recorded result is too old to count before starting (a positive never is)."""
    return {t for t, scr in patient.screening.items() if scr.result not in ("not-done", "positive") and _stale(kb, t, scr.date, today)}


def current_screening(kb: KnowledgeBase, patient: Patient, today: dt.date) -> Patient:
    """The patient with each stale screening result as not done: what the rules read (a stale negative rules nothing out)."""
    stale = stale_screening(kb, patient, today)
    if not stale:
        return patient
    return patient.model_copy(update={"screening": {t: scr for t, scr in patient.screening.items() if t not in stale}})


def _screening(kb: KnowledgeBase, label: s.Label | None, patient: Patient, today: dt.date) -> tuple[list[str], list[Finding]]:
    missing, findings = [], []
    if label is None:
        return missing, findings
    for item in label.screening:
        scr = patient.screening.get(item.test)
        result = scr.result if scr else "not-done"
        stale = _stale(kb, item.test, scr.date, today) if scr and result not in ("not-done", "positive") else None  # a positive stays informative
        if stale:
            missing.append(item.test)
            findings.append(Finding(
                rule=f"screening.{item.test}", severity="do-not-start" if item.blocking else "caution",
                needs=[f"screening.{item.test}"], sources=list(item.sources),
                message=f"{kb.display_name(item.test)} screening not current: {stale}. {item.text}"))
            continue
        implied = _contradicting(kb, patient, item.test) if result == "negative" else []
        if implied:
            # The safer reading: the condition stands (its rules fire); the negative screen is reported, not trusted.
            findings.append(Finding(
                rule=f"screening.{item.test}.contradiction", severity="caution", needs=[f"screening.{item.test}"],
                sources=sorted({*item.sources, *(c for t in implied for c in t.sources)}),
                message=(f"Contradictory record: {', '.join(t.label.lower() for t in implied)} is recorded but the "
                         f"{kb.display_name(item.test, start=False)} screen is negative; jakinib keeps the condition. "
                         f"Check the record before starting. {item.text}")))
            continue
        if result in ("not-done", "indeterminate"):
            missing.append(item.test)
            findings.append(Finding(
                rule=f"screening.{item.test}", severity="do-not-start" if item.blocking else "caution",
                needs=[f"screening.{item.test}"], sources=list(item.sources),
                message=(f"{kb.display_name(item.test)} screening {'indeterminate' if result == 'indeterminate' else 'not recorded'}: "
                         f"{item.text}")))
        elif result == "positive":
            findings.append(Finding(rule=f"screening.{item.test}.positive", severity="caution", sources=list(item.sources),
                                    message=f"Positive {kb.display_name(item.test, start=False)} screen: {item.text}"))
    return missing, findings


def _base_dose(label: s.Label | None, indication: str | None, patient: Patient) -> s.Dose | None:
    """The label's dose for the indication whose age/weight band fits (an unknown banded value matches none)."""
    if label is None or indication is None:
        return None
    return next((d for d in label.doses if d.indication == indication and d.fits(patient.age, patient.weight_kg) is True), None)


def _dose_not_recorded(label: s.Label | None, indication: str, regulator: str, patient: Patient,
                       product: s.Product) -> Finding:
    """Why there is no dose: no label, a recorded gap (with its reason), no band that fits, or nothing recorded."""
    gap = next((g for g in label.doses_not_recorded if g.indication == indication), None) if label else None
    banded = [d for d in label.doses if d.indication == indication] if label else []
    if label is None:
        why, sources = f"no {regulator} label for {product.id} is recorded", list(product.sources)
    elif gap is not None:
        why, sources = gap.reason, list(gap.sources)
    elif banded:
        unknown = [f for f, v in (("age", patient.age), ("weight_kg", patient.weight_kg)) if v is None]
        why = (f"the recorded doses are banded by age/weight and {' and '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} "
               "not known" if unknown else "no recorded age/weight band fits this patient")
        sources = sorted({c for d in banded for c in d.sources})
    else:
        why, sources = "no dose is recorded for it", list(label.sources)
    return Finding(rule="dose.not-recorded", severity="caution", sources=sources,
                   needs=[f for f, v in (("age", patient.age), ("weight_kg", patient.weight_kg)) if v is None] if banded and gap is None else None,
                   message=f"Dose for this indication not recorded in jakinib ({why}): read the {regulator} label's dosage "
                           f"section for {indication} before prescribing.")


def _mg_day(mg: float | None, every_h: float | None) -> float | None:
    return mg * 24 / every_h if mg and every_h else None


NOT_RECOMMENDED = ("contraindicated", "do-not-start", "avoid")


def _dose_for(base: s.Dose | None, fired: list[s.Rule]) -> DoseRecommendation | None:
    """The dose once the fired rules are applied: a renal 'not recommended' or a renal adjustment the data
    states only in words wins (never the normal-function dose), else the lowest structured dose action when it is at
    most the usual dose."""
    renal_stop = [r for r in fired if r.renal is not None and r.dose is None and r.status in NOT_RECOMMENDED]
    if renal_stop:
        return DoseRecommendation(mg=None, every_h=None, text=f"Not recommended: {renal_stop[0].message}", adjusted=True,
                                  reason=renal_stop[0].message, sources=sorted({c for r in renal_stop for c in r.sources}))
    renal_words = [r for r in fired if r.renal is not None and r.dose is None]
    if renal_words:
        return DoseRecommendation(mg=None, every_h=None, text=f"Dose adjustment required: {renal_words[0].message}", adjusted=True,
                                  reason=renal_words[0].message, sources=sorted({c for r in renal_words for c in r.sources}))
    actions = [r for r in fired if r.dose is not None]
    if actions:
        chosen = min(actions, key=lambda r: r.dose.mg * 24 / r.dose.every_h)  # type: ignore[union-attr]
        assert chosen.dose is not None
        base_mg_day = _mg_day(base.mg, base.every_h) if base else None
        # equal to the usual daily dose still wins: the rule's dose is a ceiling (the usual text may offer an escalation,
        # "15 mg once daily; 30 mg may be considered", which the rule rules out)
        if base_mg_day is None or chosen.dose.mg * 24 / chosen.dose.every_h <= base_mg_day:
            return DoseRecommendation(mg=chosen.dose.mg, every_h=chosen.dose.every_h, text=chosen.dose.text,
                                      adjusted=True, reason=chosen.message, sources=list(chosen.sources))
    if base is None:
        return None
    return DoseRecommendation(mg=base.mg, every_h=base.every_h, text=base.text, adjusted=False, reason=None,
                              sources=list(base.sources))


def _dose(base: s.Dose | None, fired: list[s.Rule], outcome: renal.Outcome) -> DoseRecommendation | None:
    """The recommended dose; withheld while renal function is unknown, with both candidates near a cut-off."""
    chosen = _dose_for(base, fired)
    if outcome.unresolved:
        measures = sorted({NAMES[r.renal.measure] for r, _ in outcome.unknown if r.renal})
        unknown = f"renal function unknown ({' / '.join(measures)} or creatinine with age and sex needed)"
        if chosen is not None and chosen.adjusted:
            # already lowered (or stopped) for another reason: keep it, as an upper limit only
            limit = "" if chosen.mg is None else " - an upper limit: renal function is not known and may lower it or make the drug not recommended"
            return chosen.model_copy(update={"text": chosen.text + limit, "reason": f"{chosen.reason}; {unknown}"})
        normal = f" For normal renal function the label's dose is {base.text}." if base else ""
        return DoseRecommendation(
            mg=None, every_h=None, adjusted=False, withheld=True, sources=sorted({c for r, _ in outcome.unknown for c in r.sources}),
            reason=unknown, text=f"Withheld: the dose depends on renal function, which is not known.{normal}")
    if outcome.face_fired is None or chosen is None:
        return chosen
    face = _dose_for(base, [r for r in fired if r.renal is None] + outcome.face_fired)
    readings = {r.text for r in outcome.readings.values() if r.near}
    low = "; ".join(sorted(f"{r.text}, read at the conservative {r.applied:.0f}" for r in outcome.readings.values() if r.near))
    candidates = [DoseCandidate(reading=f"conservative band ({low})", mg=chosen.mg, every_h=chosen.every_h, text=chosen.text)]
    if face is not None:
        candidates.append(DoseCandidate(reading=f"face value ({'; '.join(sorted(readings))})", mg=face.mg, every_h=face.every_h, text=face.text))
    return chosen.model_copy(update={"candidates": candidates})


def _monitoring(label: s.Label | None, today: dt.date) -> list[MonitoringEntry]:
    out: list[MonitoringEntry] = []
    if label is None:
        return out
    for m in label.monitoring:
        weeks = list(m.at_weeks)
        dates = [today + dt.timedelta(weeks=w) for w in weeks]
        if m.then_every_weeks:
            start = weeks[-1] if weeks else 0
            dates.append(today + dt.timedelta(weeks=start + m.then_every_weeks))
        if not dates:
            out.append(MonitoringEntry(test=m.test, when=m.text, date=None, sources=list(m.sources)))
        for d in dates:
            out.append(MonitoringEntry(test=m.test, when=m.text, date=d.isoformat(), sources=list(m.sources)))
    return sorted(out, key=lambda e: (e.date or "9999", e.test))


def assess(kb: KnowledgeBase, patient: Patient, drug: s.DrugFile, regulator: str,
           indication: str | None, today: dt.date, product: s.Product | None = None) -> Assessment:
    """One drug for one patient under one regulator's labels (``product``: the one ordered, when known)."""
    product = product or choose_product(kb, drug, regulator, indication)
    label = kb.label(product.id, regulator)
    approved, findings = _approval_findings(kb, drug, product, regulator, indication, patient.age)
    if label is None:
        findings.append(Finding(rule="label.none", severity="caution", sources=list(product.sources),
                                message=f"No {regulator} label for {product.id} is recorded in jakinib: safety rules from that label were not checked."))
    elif label.partial:
        findings.append(Finding(rule="label.partial", severity="caution", sources=list(label.sources), message=label.partial))
    facts = current_screening(kb, patient, today).facts()  # a stale negative screen rules nothing out
    rules = [r for r in kb.rules_for(product.id, regulator) if not r.indications or indication in r.indications]
    outcome = renal.decide([r for r in rules if r.renal], facts, patient.labs, renal.bsa_du_bois(patient.weight_kg, patient.height_cm),
                           patient.lab_comparators)
    unknown_renal = {r.id: m for r, m in outcome.unknown}
    fired_renal = {r.id for r in outcome.fired}
    fired: list[s.Rule] = []
    for rule in rules:
        if rule.renal is not None:
            reading = outcome.readings[rule.id]
            if rule.id in fired_renal:
                fired.append(rule)
                findings.append(Finding(rule=rule.id, severity=rule.status, message=rule.message, sources=list(rule.sources),
                                        surrogate=reading.surrogate and f"{reading.text} ({renal.describe(rule.renal)} is the label's measure)"))
            elif rule.id in unknown_renal:
                missing = unknown_renal[rule.id]
                hint = " (or creatinine with age and sex; weight too for CrCl)" if missing & set(renal.RENAL_FIELDS) else ""
                findings.append(Finding(rule=rule.id, severity="caution", needs=sorted(missing), sources=list(rule.sources),
                                        message=f"Unknown: needs {', '.join(sorted(missing))}{hint}. If it applies: {rule.message}"))
            continue
        value, missing = evaluate(rule.when, facts)
        if value:
            fired.append(rule)
            findings.append(Finding(rule=rule.id, severity=rule.status, message=rule.message, sources=list(rule.sources)))
        elif value is None:
            findings.append(Finding(rule=rule.id, severity="caution", needs=sorted(missing), sources=list(rule.sources),
                                    message=f"Unknown: needs {', '.join(sorted(missing))}. If it applies: {rule.message}"))
    findings.extend(_surrogate_findings(outcome, rules))
    findings.extend(_not_encoded(label, patient))
    base = _base_dose(label, indication, patient)
    if approved and indication is not None and base is None:
        findings.append(_dose_not_recorded(label, indication, regulator, patient, product))
    screening_missing, scr_findings = _screening(kb, label, patient, today)
    findings.extend(scr_findings)
    if patient.unmapped_medications:
        findings.append(_unmapped_medications(patient.unmapped_medications))
    status = worst([x.severity for x in findings])
    return Assessment(drug=drug.name, product=product.id, route=product.route, status=status, approved=approved,
                      dose=_dose(base, fired, outcome), findings=_graded(kb, _sorted(findings)),
                      screening_missing=screening_missing, monitoring=_monitoring(label, today))


NOT_ENCODED_APPLIES = {"live-vaccines": ("vaccines_planned", "live", "A live vaccine is planned"),
                       "latent-tuberculosis": ("conditions", "latent-tuberculosis", "The patient has latent tuberculosis")}
"""Label.not_encoded topic -> (patient list, value, what the patient has): when it holds, the gap is a finding."""


def _not_encoded(label: s.Label | None, patient: Patient) -> list[Finding]:
    """A class clause this label has no rule for, said when the patient is concerned (never silence)."""
    out = []
    for gap in label.not_encoded if label else []:
        field, value, what = NOT_ENCODED_APPLIES[gap.topic]
        if value in getattr(patient, field):
            out.append(Finding(rule=f"label.not-encoded.{gap.topic}", severity="caution", sources=list(gap.sources),
                               message=f"{what}, and jakinib has no {gap.topic.replace('-', ' ')} rule for this label: "
                                       f"{gap.reason} Check the label before going ahead."))
    return out


def _surrogate_findings(outcome: renal.Outcome, rules: list[s.Rule]) -> list[Finding]:
    """One finding per label measure read through a surrogate: what was substituted, and how near a cut-off."""
    out, seen = [], set()
    for rule in rules:
        reading = outcome.readings.get(rule.id)
        if reading is None or reading.surrogate is None or reading.basis.measure in seen:
            continue
        seen.add(reading.basis.measure)
        basis = reading.basis
        if reading.near:
            how = (f"a cut-off ({', '.join(f'{t:g}' for t in reading.near)}) lies within {renal.SURROGATE_MARGIN:.0%} of it, so the more "
                   f"conservative band is applied (read at {reading.applied:.0f}) and the dose at face value is shown beside it")
        else:
            how = f"no cut-off lies within {renal.SURROGATE_MARGIN:.0%} of it, so it is applied as it stands"
        note = f" Label caveat: {basis.note}" if basis.note else ""
        out.append(Finding(rule=f"renal.surrogate.{basis.measure}", severity="caution", surrogate=reading.surrogate,
                           sources=sorted({c for r in rules if r.renal is not None and r.renal.measure == basis.measure
                                           for c in r.renal.sources}),
                           message=f"Renal function read through a surrogate: {reading.surrogate}; {how}. "
                                   f"Measure {NAMES[basis.measure]} to confirm.{note}"))
    return out


SHOWN_NAMES = 10
"""Unmapped medication names quoted in one finding; the report's ``unmapped`` lists them all once."""


def _unmapped_medications(names: tuple[str, ...]) -> Finding:
    """One finding per patient for every medicine jakinib cannot map (not one per medicine per drug)."""
    shown = ", ".join(repr(n) for n in names[:SHOWN_NAMES])
    more = f" and {len(names) - SHOWN_NAMES} more (listed in the report's unmapped)" if len(names) > SHOWN_NAMES else ""
    what = "Medication" if len(names) == 1 else f"{len(names)} medications"
    verb = "is" if len(names) == 1 else "are"
    return Finding(rule="medication.unmapped", severity="caution", sources=["seed"],
                   message=f"{what} {shown}{more} {verb} not in jakinib's interaction table: check interactions against the label.")


def _graded(kb: KnowledgeBase, findings: list[Finding]) -> list[Finding]:
    """Each finding with the verification grade of what it rests on (the best grade among its sources)."""
    return [f.model_copy(update={"grade": kb.grade(f.sources)}) for f in findings]


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda x: (s.STATUS_ORDER.index(x.severity), x.rule))


TODAY_RANGE = (dt.date(1900, 1, 1), dt.date(2999, 12, 31))
"""Accepted values of "today": a guard against typos and date overflow (monitoring adds weeks), not a clinical rule."""


def valid_today(day: dt.date) -> dt.date:
    """``day`` if it is a usable "today", else one-line InputError."""
    lo, hi = TODAY_RANGE
    if not lo <= day <= hi:
        raise InputError(f"today {day.isoformat()} is outside {lo.isoformat()}..{hi.isoformat()}")
    return day


def check(kb: KnowledgeBase, patient: Patient, drugs: Iterable[str] | None = None, regulator: str = "FDA",
          indication: str | None = None, today: dt.date | None = None) -> Report:
    """Assess ``drugs`` (all when None) for ``patient`` under ``regulator``'s labels."""
    reg = kb.regulator(regulator)
    ind = kb.indication(indication).id if indication else patient.indication
    names = [kb.drug(d).name for d in drugs] if drugs else list(kb.drugs)
    day = valid_today(today or dt.date.today())
    assessments = [assess(kb, patient, kb.drugs[n], reg, ind, day) for n in dict.fromkeys(names)]
    return Report(regulator=reg, indication=ind, today=day.isoformat(), assessments=assessments,
                  unmapped=list(dict.fromkeys([*patient.unmapped, *(f"medication {m}" for m in patient.unmapped_medications)])),
                  derived=list(patient.derived))
