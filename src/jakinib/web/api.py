"""The JSON API under ``/api/v1``: the same shapes as the CLI's ``--json``.

Parameter types and ranges come from ``jakinib.web.params`` (shared with the pages); a value outside
them is a 422 with the JSON error body. Request bodies reach a handler only after the app's strict
JSON gate (``application/json``, no duplicate keys, bounded depth).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

import jakinib
from jakinib.errors import InputError, UnknownNameError
from jakinib.knowledge import views
from jakinib.web.params import Age, DoseMg, DrugList, EveryH, Name, Population, Seed, Today, plausible_today

router = APIRouter(prefix="/api/v1", tags=["knowledge"])


@router.get("/health")
def health() -> dict[str, Any]:
    """Liveness and the knowledge base's review date."""
    kb = jakinib.load()
    return {"status": "ok", "version": jakinib.__version__, "review_date": kb.review_date, "drugs": len(kb.drugs)}


@router.get("/drugs")
def drugs() -> list[dict[str, Any]]:
    """Every JAK inhibitor (``jakinib drugs --json``)."""
    kb = jakinib.load()
    return [views.drug_summary(kb, d) for d in kb.drugs.values()]


@router.get("/drugs/{name}")
def drug(name: Annotated[str, Path(max_length=100)]) -> dict[str, Any]:
    """One drug by generic, brand or synonym (``jakinib drug NAME --json``)."""
    kb = jakinib.load()
    return views.drug_json(kb, kb.drug(name))


@router.get("/approvals")
def approvals(
    drug: Annotated[Name | None, Query()] = None,
    regulator: Annotated[Name | None, Query()] = None,
    indication: Annotated[Name | None, Query()] = None,
    age: Annotated[Age | None, Query()] = None,
    all: bool = False,
) -> list[dict[str, Any]]:
    """Approvals filtered like ``jakinib approvals``."""
    kb = jakinib.load()
    return [r.to_json() for r in kb.approvals(drug, regulator, indication, age, None if all else "approved")]


@router.get("/compare")
def compare(drugs: Annotated[str, Query(description="comma-separated drug names", max_length=1000)]) -> dict[str, Any]:
    kb = jakinib.load()
    names = [n for n in drugs.split(",") if n.strip()]
    if not names:
        raise InputError("compare: give at least one drug")
    return views.compare_json(kb, [kb.drug(n.strip()) for n in names])


class SearchHit(BaseModel):
    """One ranked search result (see jakinib.knowledge.search)."""

    kind: str
    id: str
    label: str
    url: str
    match: str
    snippet: str
    snippet_html: str = Field(description="the snippet, HTML-escaped, matches in <mark>")
    score: float
    exact: bool = Field(description="the query is this drug's or indication's own name, brand or code")


@router.get("/search")
def search(q: Annotated[str, Query(min_length=1, max_length=200)]) -> list[SearchHit]:
    return [SearchHit(**h) for h in jakinib.load().search(q)]


@router.get("/sources")
def sources() -> list[dict[str, Any]]:
    return [views.source_json(s) for s in jakinib.load().sources.values()]


@router.get("/sources/{source_id}")
def source(source_id: Annotated[str, Path(max_length=200)]) -> dict[str, Any]:
    kb = jakinib.load()
    sid = source_id.partition("#")[0]
    if sid not in kb.sources:
        raise UnknownNameError("source", sid, kb.sources)
    return views.source_json(kb.sources[sid])


@router.post("/check")
def check(
    patient: Annotated[dict[str, Any], Body(description="Patient JSON (simple form) or a FHIR R4 Bundle")],
    drug: Annotated[DrugList | None, Query()] = None,
    regulator: Annotated[Name, Query()] = "FDA",
    indication: Annotated[Name | None, Query()] = None,
    today: Annotated[Today | None, Query()] = None,
) -> dict[str, Any]:
    """The safety assessment (``jakinib check --json``)."""
    return jakinib.check(patient, drugs=drug or None, regulator=regulator, indication=indication,
                         today=plausible_today(today)).to_json()


@router.get("/pathways")
def pathways() -> list[dict[str, Any]]:
    """The JAK-STAT map (``jakinib pathways --json``)."""
    return [p.model_dump(mode="json") for p in jakinib.load().pathways]


@router.get("/simulate")
def simulate(
    drug: Annotated[Name, Query()],
    dose: Annotated[DoseMg | None, Query()] = None,
    every: Annotated[EveryH | None, Query()] = None,
    route: Annotated[str | None, Query(pattern="^(oral|topical)$")] = None,
    population: Annotated[Population, Query()] = 0,
    seed: Annotated[Seed, Query()] = 0,
) -> dict[str, Any]:
    """A steady-state dosing day (``jakinib simulate --json``); populations up to 20,000 over HTTP."""
    from jakinib.pharmacology.simulate import simulate as run

    return run(jakinib.load(), drug, dose, every, route, population, seed).to_json()
