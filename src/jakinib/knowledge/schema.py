"""The knowledge base's shape: frozen pydantic models for every YAML data file.

Every fact carries ``sources``: citations ``"<source-id>"`` or ``"<source-id>#<section>"``
into the source registry (``data/sources/*.yaml``). A fact without a source fails validation.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kinase = Literal["JAK1", "JAK2", "JAK3", "TYK2"]
Regulator = Literal["FDA", "EMA", "TGA", "PMDA", "MHRA", "Medsafe", "HealthCanada", "NMPA"]
REGULATORS: tuple[str, ...] = ("FDA", "EMA", "TGA", "PMDA", "MHRA", "Medsafe", "HealthCanada", "NMPA")
Grade = Literal["primary", "transcription", "secondary"]
GRADES: tuple[str, ...] = ("primary", "transcription", "secondary")  # best first
KINASES: tuple[str, ...] = ("JAK1", "JAK2", "JAK3", "TYK2")
Route = Literal["oral", "topical"]
Status = Literal["contraindicated", "do-not-start", "avoid", "caution", "ok"]
STATUS_ORDER: tuple[str, ...] = ("contraindicated", "do-not-start", "avoid", "caution", "ok")
Decision = Literal["approved", "rejected", "withdrawn", "refused", "designation"]
DrugClass = Literal["pan-jak", "selective", "allosteric-tyk2", "jak3-tec-covalent"]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
Citation = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*(#.+)?$")]
Sources = Annotated[list[Citation], Field(min_length=1)]
PARTIAL_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


class Model(BaseModel):
    """Base: frozen, strict about unknown keys (a typo in YAML is an error, not silence).

    ``defer_build``: each model's validator is built on first use, not at import, so a start-up that validates
    the knowledge-base cache (one snapshot model holding them all) builds each schema once."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)


class Cited(Model):
    """A piece of text with its sources."""

    text: str
    sources: Sources


def _partial_date(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    if not PARTIAL_DATE.match(text):
        raise ValueError(f"date {text!r} is not ISO 8601 (YYYY, YYYY-MM or YYYY-MM-DD)")
    return text


PROVENANCE: dict[str, Any] = {"provenance": True}
"""Marks a field that records how a fact was checked (which copy was read, its grade, the reviewer's note).
Such fields are for reviewers (``kb review``); every other text field is user-facing and free of working notes."""


class Disagreement(Model):
    """Two copies of the same text that differ: which one the data follows, and why."""

    source: Citation = Field(description="the other copy (a source id)")
    followed: Citation = Field(description="the source id whose reading the data follows (this one or the other)")
    note: str = Field(description="what differs and why that reading was followed (provenance, not shown in clinical text)",
                      json_schema_extra=PROVENANCE)


class Source(Model):
    """One entry of the source registry: a label, a regulator's record, a paper, the seed.

    ``grade`` says how the cited text was read: ``primary`` in the issuer's own document (the regulator's label or
    record, the paper itself), ``transcription`` in a verbatim copy of it, ``secondary`` in a summary or news report.
    """

    id: Citation
    kind: Literal["label", "regulator-record", "paper", "seed", "guideline", "web"]
    grade: Grade = Field(description="primary | transcription | secondary: how the cited text was read")
    title: str
    regulator: Regulator | None = None
    product: str | None = None
    date: str | None = Field(None, description="publication / label revision date, ISO 8601 partial")
    url: str | None = None
    doi: str | None = None
    as_of: dt.date = Field(description="when jakinib last checked this source")
    note: str | None = Field(None, description="how jakinib read this source: which copy, which sections were readable, "
                             "discrepancies found while checking (provenance for reviewers; never shown in clinical text "
                             "or as the reference)", json_schema_extra=PROVENANCE)
    confirmed_by: list[Citation] = Field(default_factory=list, description="independent copies read that agree with this one")
    disagrees_with: list[Disagreement] = Field(default_factory=list, description="copies that differ, and which was followed")

    _date = field_validator("date", mode="before")(_partial_date)

    @model_validator(mode="after")
    def _needs_anchor(self) -> Source:
        if self.kind == "label" and not (self.regulator and self.product and self.date):
            raise ValueError("a label source needs regulator, product and date")
        if self.kind == "paper" and not self.doi:
            raise ValueError("a paper source needs a doi")
        if self.id in self.confirmed_by:
            raise ValueError("confirmed_by names the source itself; name an independent copy")
        for d in self.disagrees_with:
            if d.followed not in (self.id, d.source):
                raise ValueError(f"disagrees_with {d.source}: followed must be {self.id!r} or {d.source!r}")
        return self


class Target(Model):
    """Enzyme potency against one kinase."""

    kinase: Kinase
    ic50_nM: float | None = Field(None, gt=0)
    atp_uM: float | None = Field(None, gt=0, description="ATP concentration of the assay, µM")
    assay: str | None = None
    binding: Literal["atp-site", "pseudokinase-jh2", "covalent"] = "atp-site"
    sources: Sources


class Brand(Model):
    name: str
    regulators: list[Regulator] = Field(default_factory=list)


class Product(Model):
    """A marketed form of a drug (tablets vs cream are different products)."""

    id: Slug
    route: Route
    formulation: str
    strengths: list[str] = Field(default_factory=list, description="marketed strengths; empty when not verified")
    brands: list[Brand] = Field(default_factory=list, description="brand names; empty when not verified")
    sources: Sources


class Approval(Model):
    """One regulatory decision: product × regulator × indication (extensions are records of their own)."""

    product: Slug
    regulator: Regulator
    indication: Slug
    decision: Decision = "approved"
    date: str | None
    min_age_years: float | None = Field(None, ge=0)
    population: str | None = None
    dose: str | None = None
    kind: Literal["initial", "new-indication", "age-extension", "new-product", "other"] = "new-indication"
    sources: Sources

    _date = field_validator("date", mode="before")(_partial_date)


class Dose(Model):
    """The standard dose of a product for one indication under one regulator's label."""

    indication: Slug
    mg: float | None = Field(None, gt=0)
    every_h: float | None = Field(None, gt=0)
    text: str
    min_age_years: float | None = Field(None, ge=0, description="band: from this age (inclusive)")
    max_age_years: float | None = Field(None, gt=0, description="band: below this age (exclusive)")
    min_weight_kg: float | None = Field(None, ge=0, description="band: from this body weight (inclusive)")
    max_weight_kg: float | None = Field(None, gt=0, description="band: below this body weight (exclusive)")
    sources: Sources

    def fits(self, age: float | None, weight_kg: float | None) -> bool | None:
        """Whether a patient falls in this dose's age/weight band (None: a banded value is unknown)."""
        checks = []
        for value, lo, hi in ((age, self.min_age_years, self.max_age_years),
                              (weight_kg, self.min_weight_kg, self.max_weight_kg)):
            if lo is None and hi is None:
                continue
            if value is None:
                checks.append(None)
            else:
                checks.append((lo is None or value >= lo) and (hi is None or value < hi))
        if False in checks:
            return False
        return None if None in checks else True


class DoseGap(Model):
    """An approved indication whose label dose jakinib could not verify: said, with the reason and its sources."""

    indication: Slug
    reason: str
    sources: Sources


class BoxedWarning(Model):
    topics: list[Slug] = Field(min_length=1)
    text: str | None = None
    sources: Sources


class Warning_(Model):
    topic: Slug
    text: str
    sources: Sources


class ScreeningItem(Model):
    """A test to do before starting; the slug is a patient screening key."""

    test: Slug
    text: str
    blocking: bool = Field(False, description="the label says to test before the first dose: missing = do-not-start")
    sources: Sources


class MonitoringItem(Model):
    """A test to repeat on treatment; dates are counted from the start (``today``)."""

    test: Slug
    text: str
    at_weeks: list[float] = Field(default_factory=list, description="weeks after start (0 = baseline)")
    then_every_weeks: float | None = Field(None, gt=0)
    sources: Sources


class NotEncoded(Model):
    """A clause the class usually carries that this label has no rule for, and why (the checker says so when it matters).

    ``topic`` names the clause: ``live-vaccines`` (the patient plans a live vaccine) or ``latent-tuberculosis`` (the
    patient has latent TB). The reason says whether the label is silent (and which sections were read) or its wording
    was not read; the data tests over every label require a rule or one of these.
    """

    topic: Literal["live-vaccines", "latent-tuberculosis"]
    reason: str = Field(min_length=1)
    sources: Sources


class AdverseEffect(Model):
    term: str
    frequency: str | None = Field(None, description="label wording, e.g. 'very common (>=1/10)' or '4.2%'")
    sources: Sources


class Label(Model):
    """What one regulator's label says about one product: safety, dosing, screening, monitoring."""

    product: Slug
    regulator: Regulator
    boxed_warning: BoxedWarning | None = None
    contraindications: list[Cited] = Field(default_factory=list)
    warnings: list[Warning_] = Field(default_factory=list)
    restrictions: list[Cited] = Field(default_factory=list)
    pregnancy: Cited | None = None
    breastfeeding: Cited | None = None
    vaccines: Cited | None = None
    screening: list[ScreeningItem] = Field(default_factory=list)
    monitoring: list[MonitoringItem] = Field(default_factory=list)
    doses: list[Dose] = Field(default_factory=list)
    doses_not_recorded: list[DoseGap] = Field(default_factory=list, description="approved indications without a verified dose")
    not_encoded: list[NotEncoded] = Field(default_factory=list, description="class clauses (live vaccines, latent TB) with no rule here, and why")
    adverse_effects: list[AdverseEffect] = Field(default_factory=list)
    partial: str | None = Field(None, description="label sections jakinib has not read; the checker reports it")
    sources: Sources


# ---- rules: structured predicates (no eval) -------------------------------------------------

Op = Literal["<", "<=", ">", ">=", "==", "!="]


class Predicate(Model):
    """One node of a rule's condition. Exactly one form:

    - ``{all: [...]}`` / ``{any: [...]}`` / ``{not: {...}}``
    - ``{field: labs.alc, op: "<", value: 0.5}`` (labs compared in their canonical unit)
    - ``{field: conditions, has: severe-hepatic-impairment}`` (list membership)
    - ``{field: smoking, in: [current, former-long-time]}`` (value in a set)
    - ``{field: pregnant, is: true}``
    """

    all: list[Predicate] | None = None
    any: list[Predicate] | None = None
    not_: Predicate | None = Field(None, alias="not")
    field: str | None = None
    op: Op | None = None
    value: float | str | None = None
    has: str | None = None
    in_: list[str] | None = Field(None, alias="in")
    is_: bool | None = Field(None, alias="is")

    @model_validator(mode="after")
    def _one_form(self) -> Predicate:
        combinators = [x for x in (self.all, self.any, self.not_) if x is not None]
        tests = [x for x in (self.op, self.has, self.in_, self.is_) if x is not None]
        if len(combinators) + (1 if self.field else 0) != 1:
            raise ValueError("a predicate is exactly one of all / any / not / field")
        if self.field and len(tests) != 1:
            raise ValueError(f"field {self.field!r} needs exactly one of op / has / in / is")
        if self.op is not None and self.value is None:
            raise ValueError(f"field {self.field!r}: op needs a value")
        return self


class DoseAction(Model):
    mg: float = Field(gt=0)
    every_h: float = Field(gt=0)
    text: str


class RenalBasis(Model):
    """The renal-function measure a label's bands use (set on every rule that reads ``labs.crcl`` or ``labs.egfr``).

    The checker reads the rule with this measure when it is known or derivable, otherwise with the
    other measure as a flagged surrogate (``safety/renal.py``).
    """

    measure: Literal["crcl", "egfr"] = Field(description="creatinine clearance (mL/min) or estimated GFR")
    equation: Literal["cockcroft-gault", "ckd-epi-2021", "ckd-epi", "mdrd", "any"] = Field(
        description="the equation the label names; 'any' when it names none")
    indexed: bool | None = Field(None, description="eGFR per 1.73 m² (true), de-indexed mL/min (false), label silent (null)")
    text: str = Field(description="the label's own wording of the measure and bands")
    note: str | None = Field(None, description="the label's caveats on the measure (e.g. creatinine raised by the drug)")
    sources: Sources

    @model_validator(mode="after")
    def _consistent(self) -> RenalBasis:
        if self.measure == "crcl" and self.indexed is not None:
            raise ValueError("renal: creatinine clearance is never indexed (leave indexed out)")
        if self.measure == "crcl" and self.equation not in ("cockcroft-gault", "any"):
            raise ValueError(f"renal: creatinine clearance by {self.equation!r}? use cockcroft-gault or any")
        if self.measure == "egfr" and self.equation == "cockcroft-gault":
            raise ValueError("renal: Cockcroft-Gault estimates CrCl, not eGFR")
        return self


def predicate_fields(p: Predicate) -> set[str]:
    """Every field a predicate reads."""
    found = {p.field} if p.field else set()
    for child in [*(p.all or []), *(p.any or []), *([p.not_] if p.not_ else [])]:
        found |= predicate_fields(child)
    return found


class Rule(Model):
    """A reviewable safety rule: when the predicate holds for a patient, the finding applies."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")]
    products: list[Slug] = Field(min_length=1)
    regulators: list[Regulator] = Field(min_length=1)
    indications: list[Slug] | None = None
    when: Predicate
    status: Literal["contraindicated", "do-not-start", "avoid", "caution"]
    message: str
    dose: DoseAction | None = None
    screening: Slug | None = Field(None, description="screening item this rule asks for")
    renal: RenalBasis | None = Field(None, description="the label's renal measure; required when the rule reads labs.crcl or labs.egfr")
    note: str | None = Field(None, description="how an ambiguous label clause was read, and why (the safer reading)")
    sources: Sources

    @model_validator(mode="after")
    def _renal_named(self) -> Rule:
        used = predicate_fields(self.when) & {"labs.crcl", "labs.egfr"}
        if len(used) > 1:
            raise ValueError(f"rule {self.id}: reads both labs.crcl and labs.egfr (a label bands by one measure)")
        if used and self.renal is None:
            raise ValueError(f"rule {self.id}: reads {used.pop()} but does not name its label's renal measure (renal:)")
        if used and self.renal is not None and used != {f"labs.{self.renal.measure}"}:
            raise ValueError(f"rule {self.id}: reads {used.pop()} but renal.measure is {self.renal.measure}")
        if self.renal is not None and not used:
            raise ValueError(f"rule {self.id}: has renal: but reads neither labs.crcl nor labs.egfr")
        return self


class CellularPotency(Model):
    """A measured cellular or whole-blood IC50 for one cytokine pathway (label 12.1 or a paper)."""

    cytokine: str = Field(description="e.g. IL-6, IFN-alpha, EPO (see pathways)")
    jaks: list[Kinase] = Field(min_length=1)
    readout: str | None = Field(None, description="e.g. pSTAT3 in CD4+ T cells")
    ic50_nM: float = Field(gt=0)
    matrix: Literal["whole-blood", "cells"] = "whole-blood"
    sources: Sources


class PopPK(Model):
    """A published population-PK model: apparent parameters of its typical subject (first-order absorption)."""

    compartments: Literal[1, 2]
    ka_h: float = Field(gt=0)
    tlag_h: float = Field(0, ge=0)
    cl_l_h: float = Field(gt=0, description="CL/F")
    vc_l: float = Field(gt=0, description="central V/F")
    q_l_h: float | None = Field(None, gt=0, description="inter-compartmental clearance Q/F (2 compartments)")
    vp_l: float | None = Field(None, gt=0, description="peripheral V/F (2 compartments)")
    bsv_cv: dict[Literal["cl", "vc", "ka"], float] = Field(default_factory=dict, description="between-subject CV as a fraction")
    population: str
    sources: Sources

    @model_validator(mode="after")
    def _peripheral(self) -> PopPK:
        if (self.compartments == 2) != (self.q_l_h is not None and self.vp_l is not None):
            raise ValueError("a 2-compartment model needs q_l_h and vp_l (and a 1-compartment model neither)")
        return self


class PK(Model):
    """Published pharmacokinetics of one product at a reference regimen (label 12.3 or pop-PK)."""

    product: Slug
    dose_mg: float = Field(gt=0)
    every_h: float = Field(gt=0)
    state: Literal["steady-state", "single-dose"] = "steady-state"
    population: str | None = Field(None, description="e.g. healthy volunteers, RA patients")
    mw_g_mol: float | None = Field(None, gt=0)
    half_life_h: float | None = Field(None, gt=0)
    tmax_h: float | None = Field(None, gt=0)
    cmax_ng_ml: float | None = Field(None, gt=0)
    auc_ng_h_ml: float | None = Field(None, gt=0, description="AUC over one dosing interval (tau)")
    cl_f_l_h: float | None = Field(None, gt=0, description="apparent oral clearance CL/F")
    v_f_l: float | None = Field(None, gt=0, description="apparent volume V/F")
    fraction_unbound: float | None = Field(None, gt=0, le=1)
    bioavailability: float | None = Field(None, gt=0, le=1)
    model: PopPK | None = Field(None, description="a published pop-PK model for this product, used by the simulator")
    notes: str | None = None
    sources: Sources


class DrugFile(Model):
    """One YAML file under ``data/drugs/``: a drug with its products, approvals, labels and rules."""

    name: Slug
    synonyms: list[str] = Field(default_factory=list)
    drug_class: DrugClass = Field(alias="class")
    generation: Literal["first", "second", "other"]
    mechanism: str
    selectivity: str | None = None
    sources: Sources
    targets: list[Target] = Field(min_length=1)
    products: list[Product] = Field(min_length=1)
    approvals: list[Approval] = Field(default_factory=list)
    labels: list[Label] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    cellular: list[CellularPotency] = Field(default_factory=list)
    pk: list[PK] = Field(default_factory=list)
    notes: list[Cited] = Field(default_factory=list)

    @model_validator(mode="after")
    def _products_known(self) -> DrugFile:
        ids = {p.id for p in self.products}
        for kind, items in (("approval", self.approvals), ("label", self.labels), ("pk", self.pk)):
            for i, item in enumerate(items):
                if item.product not in ids:
                    raise ValueError(f"{kind} {i}: unknown product {item.product!r} (have {sorted(ids)})")
        for rule in self.rules:
            for product in rule.products:
                if product not in ids:
                    raise ValueError(f"rule {rule.id}: unknown product {product!r}")
        return self


class Term(Model):
    """A controlled-vocabulary entry (indication, condition) with synonyms and codes."""

    id: Slug
    label: str
    synonyms: list[str] = Field(default_factory=list)
    snomed: list[str] = Field(default_factory=list)
    icd10: list[str] = Field(default_factory=list)
    dermatology: bool = False
    implies_screening: dict[Slug, Literal["positive"]] = Field(
        default_factory=dict, description="screening results this condition implies; a recorded negative contradicts it")
    sources: list[Citation] = Field(default_factory=list)


class Evidence(Model):
    """Evidence level for a drug (or the class) in an indication beyond approvals."""

    indication: Slug
    drug: Slug | None = None
    level: Literal["approved", "trials", "case-reports", "off-label", "investigational"]
    text: str
    sources: Sources


class MedicationEntry(Model):
    """A non-JAK medicine mapped to interaction classes."""

    name: Slug
    synonyms: list[str] = Field(default_factory=list)
    rxnorm: list[str] = Field(default_factory=list)
    classes: list[Slug] = Field(min_length=1)
    sources: Sources


class LabDef(Model):
    """A lab the checker reads: canonical unit, accepted units, plausible range, LOINC codes."""

    id: Slug
    label: str
    unit: str
    plausible: tuple[float, float]
    loinc: list[str] = Field(default_factory=list)
    max_age_days: int | None = Field(None, gt=0, description="a FHIR result older than this is stale: reported, not used")
    sources: list[Citation] = Field(default_factory=list)


class ScreeningWindow(Model):
    """How old a screening result may be and still count before starting a drug (jakinib policy, not a label figure)."""

    test: Slug
    max_age_days: int | None = Field(description="older results are stale: reported, treated as not done; null: never stale")
    why: str = Field(description="the reason for this window, for the pharmacist who reviews it")


class MonitoringTest(Model):
    """A test label monitoring schedules name (``MonitoringItem.test``) and the dated records that count as it being
    done: lab ids of ``labs`` or ``screening:<test>``. No records: jakinib reads no codes for it, so a cohort screen
    lists it as unreadable, never as done."""

    id: Slug
    records: list[str] = Field(default_factory=list, description="lab ids, or screening:<test>, whose dated records satisfy it")
    note: str | None = None


class ClassFact(Model):
    """A statement about JAK inhibitors as a class (mostly from the seed), as structured data."""

    id: Slug
    topic: Slug
    text: str
    data: dict[str, Any] = Field(default_factory=dict)
    sources: Sources


class Pathway(Model):
    """A cytokine's JAK-STAT pathway: receptor, the JAKs it signals through, STATs, cells, meaning."""

    cytokine: str = Field(description="as used in JSON, e.g. IL-6, IFN-alpha, GM-CSF, EPO")
    receptor: str | None = None
    jaks: list[Kinase] = Field(min_length=1, description="the receptor's JAKs; [JAK2, JAK2] for a homodimer")
    stats: list[str] = Field(min_length=1)
    cells: list[str] = Field(default_factory=list)
    clinical: str = Field(description="what inhibiting it means clinically")
    sources: Sources


class MeasuredPotency(Model):
    """A measured cellular / whole-blood IC50 of a drug on one cytokine pathway, from a paper or label."""

    drug: Slug
    cytokine: str
    readout: str = Field(description="e.g. pSTAT1 in CD4+ T cells")
    matrix: Literal["whole-blood", "pbmc", "cells"] = "whole-blood"
    donors: Literal["healthy", "ra", "mixed"] | None = None
    ic50_nM: float = Field(gt=0)
    sources: Sources


class CodeMapping(Model):
    """A clinical code (LOINC, SNOMED CT, CVX) mapped to a patient field (and value, for answers)."""

    system: Literal["loinc", "snomed", "cvx", "icd10", "rxnorm"]
    code: str
    display: str
    field: str = Field(description="patient field it informs, e.g. screening.tuberculosis, pregnant, smoking")
    value: str | bool | None = Field(None, description="the value it means, for answer codes")
    sources: Sources


class RxNormConcept(Model):
    """An RxNorm concept below the ingredient (clinical drug SCD, branded drug SBD, ...) -> its ingredient.

    ``ingredient`` is a JAK inhibitor drug slug (then ``product`` may name the product) or a
    ``medications.yaml`` name, so a clinical-drug code reaches the interaction classes.
    """

    code: Annotated[str, Field(pattern=r"^[0-9]+$")]
    name: str
    tty: Literal["IN", "SCD", "SBD", "SCDC", "SBDC", "BN"] | None = Field(
        None, description="RxNorm term type where the source states it or the name's structure shows it; None when not known")
    ingredient: Slug
    product: Slug | None = None
    strength_mg: float | None = Field(None, gt=0)
    sources: Sources


class DisplayName(Model):
    """How a slug (a screening or monitoring test, a warning topic) is written for people: ``hepatitis-c`` -> Hepatitis C."""

    id: Slug
    name: str = Field(min_length=1)


class SignOff(Model):
    """A pharmacist's review of what one drug rests on under one regulator (``data/signoffs.yaml``)."""

    reviewer: str = Field(min_length=1, description="name and role of the reviewer")
    date: dt.date = Field(description="when the review was done")
    drug: Slug
    regulator: Regulator
    scope: str = Field(min_length=1, description="what was checked, e.g. 'label 4.1-4.3 and every rule'")
    sections: list[str] = Field(default_factory=list, description="label sections re-read, e.g. ['4.2', '4.3']")
    note: str | None = Field(None, description="the reviewer's own note (provenance)", json_schema_extra=PROVENANCE)

