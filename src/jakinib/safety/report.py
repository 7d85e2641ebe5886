"""What the checker returns: frozen models whose ``model_dump`` is the public JSON contract."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from jakinib.knowledge.schema import STATUS_ORDER, Grade

Status = Literal["contraindicated", "do-not-start", "avoid", "caution", "ok"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Finding(_Frozen):
    rule: str
    severity: Status
    message: str
    sources: list[str]
    needs: list[str] | None = None  # set when the rule could not be decided: the missing inputs
    surrogate: str | None = None  # set when a renal rule was read with the other renal measure (safety/renal.py)
    grade: Grade | None = None  # best verification grade among ``sources`` (knowledge/provenance.py), set by the engine


class DoseCandidate(_Frozen):
    """A dose the label would give under one reading of renal function (shown when a surrogate is near a cut-off)."""

    reading: str
    mg: float | None
    every_h: float | None
    text: str


class DoseRecommendation(_Frozen):
    mg: float | None
    every_h: float | None
    text: str
    adjusted: bool
    reason: str | None
    sources: list[str]
    withheld: bool = False  # true when renal function is unknown and a renal rule could change the dose
    candidates: list[DoseCandidate] | None = None  # conservative reading first, then the face-value one


class MonitoringEntry(_Frozen):
    test: str
    when: str
    date: str | None
    sources: list[str]


class Assessment(_Frozen):
    drug: str
    product: str
    route: str
    status: Status
    approved: bool | None
    dose: DoseRecommendation | None
    findings: list[Finding]
    screening_missing: list[str]
    monitoring: list[MonitoringEntry]


class Report(_Frozen):
    regulator: str
    indication: str | None
    today: str
    assessments: list[Assessment]
    unmapped: list[str] = []
    derived: list[str] = []

    def assessment(self, drug: str) -> Assessment:
        return next(a for a in self.assessments if a.drug == drug)

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


def worst(statuses: list[str]) -> Status:
    """The worst status of a list (``ok`` for an empty list)."""
    return min(statuses, key=STATUS_ORDER.index, default="ok")  # type: ignore[return-value]
