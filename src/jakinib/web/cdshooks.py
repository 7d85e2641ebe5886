"""CDS Hooks 2.0 service: fires when a JAK inhibitor is ordered, answers with cards.

Spec: https://cds-hooks.hl7.org/2.0/ . Discovery at ``GET /cds-services``; the service at
``POST /cds-services/{id}``; feedback at ``POST /cds-services/{id}/feedback``.

A call runs in three steps so that no request holds up another: the body is parsed strictly and
validated (``cds_models``) and the orders are read; prefetch the EHR did not send is fetched
asynchronously under one total deadline (``fhir_client``, ``Settings.fhir_timeout_s``); the check and
the cards (``cds_cards``) run on the loop for a small body and in the thread pool for a large one
(``INLINE_MAX_BYTES``). Patient data that could not be read is named on a
card, or answered 412 when the Patient itself is missing (the spec's "Precondition Failed").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

import jakinib
from jakinib.errors import FhirError, InputError, UnknownNameError
from jakinib.interop import fhir
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety.engine import assess
from jakinib.web import cds_models, cds_orders, fhir_client
from jakinib.web.cds_cards import INDICATOR, OVERRIDE_REASONS, cards_for, missing_data_card, prepare_untrusted

__all__ = ["INDICATOR", "OVERRIDE_REASONS", "SERVICES", "cards_for", "discovery", "register"]

SERVICES = {
    "jakinib-order-select": "order-select",
    "jakinib-order-sign": "order-sign",
    "jakinib-medication-prescribe": "medication-prescribe",  # deprecated hook, for older EHRs
}
PREFETCH_KEYS = ("patient", "conditions", "observations", "medications", "immunizations")
WHAT = {"patient": "the Patient resource", "conditions": "active conditions", "observations": "recent labs",
        "medications": "active medications", "immunizations": "immunizations"}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed or invalid request body: `{\"error\": {\"type\", \"message\"}}`"},
    401: {"description": "Missing or invalid CDS Hooks JWT (when clients are configured)"},
    404: {"description": "Unknown CDS service"},
    412: {"description": "Required prefetch (the Patient) missing and not fetchable: `{\"error\": {...}}`"},
    413: {"description": "Request body too large"},
}


NOT_SENT = "not sent in prefetch"
NO_SERVER = ", and no fhirServer with fhirAuthorization and context.patientId was given to fetch it"


class PrefetchMissing(Exception):
    """Prefetch is missing and cannot be fetched: answered with 412."""


def prefetch_templates(kb: KnowledgeBase) -> dict[str, str]:
    loinc = sorted({c for lab in kb.labs.values() for c in lab.loinc} |
                   {c.code for c in kb.codes if c.system == "loinc"})
    codes = ",".join(f"http://loinc.org|{c}" for c in loinc)
    return {
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}&clinical-status=active",
        "observations": f"Observation?patient={{{{context.patientId}}}}&code={codes}&_sort=-date&_count=100",
        "medications": "MedicationRequest?patient={{context.patientId}}&status=active",
        "immunizations": "Immunization?patient={{context.patientId}}&status=completed",
    }


def discovery() -> dict[str, Any]:
    """CDS Hooks discovery."""
    kb = jakinib.load()
    pre = prefetch_templates(kb)
    return {"services": [
        {"hook": hook, "id": sid, "title": "JAK inhibitor safety check",
         "description": ("When a JAK inhibitor is ordered, checks the patient against the label of the client's region: "
                         "contraindications, do-not-start lab thresholds, dose adjustments, screening and monitoring."),
         "prefetch": pre, "usageRequirements": "Give Patient, active Conditions, recent Observations, "
                                                 "active MedicationRequests and Immunizations."}
        for sid, hook in SERVICES.items()]}


# ---- orders ----------------------------------------------------------------------------------

def _draft(hook: str, context: cds_models.Context) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """(the draft payload, all its resources, the MedicationRequest/Statements being ordered)."""
    if hook == "medication-prescribe":
        payload: Any = context.medications
        items = fhir.resources(payload) if payload else []
    else:
        if context.draft_orders is None:
            raise InputError("context.draftOrders is required for this hook")
        payload = context.draft_orders
        items = fhir.resources(payload)
    orders = [r for r in items if r.get("resourceType") in ("MedicationRequest", "MedicationStatement")]
    selected = set(context.selections or [])
    if hook == "order-select" and selected:
        orders = [r for r in orders if f"{r.get('resourceType')}/{r.get('id')}" in selected] or orders
    return payload, items, orders


# ---- prefetch --------------------------------------------------------------------------------

def _outcome_text(outcome: dict[str, Any]) -> str:
    issues = outcome.get("issue") if isinstance(outcome.get("issue"), list) else []
    words = []
    for i in issues[:3]:
        if isinstance(i, dict):
            said = i.get("diagnostics") or ((i.get("details") or {}).get("text") if isinstance(i.get("details"), dict) else None)
            words.append(str(said or i.get("code") or i.get("severity") or "an issue"))
    return "the EHR sent an OperationOutcome instead" + (f" ({'; '.join(words)})" if words else "")


def _can_fetch(req: cds_models.CallRequest) -> bool:
    return bool(req.fhir_server and req.fhir_authorization and req.context.patient_id)


def _read_prefetch(key: str, value: Any) -> tuple[list[dict[str, Any]], str | None]:
    """(resources, why it is unusable or None) for one prefetch value (a resource or a searchset Bundle)."""
    if value is None:
        return [], NOT_SENT
    if value.get("resourceType") == "OperationOutcome":
        return [], _outcome_text(value)
    try:
        items = fhir.resources(value)
    except FhirError as exc:
        raise FhirError(f"prefetch.{key}: {exc}") from None
    errors = [r for r in items if r.get("resourceType") == "OperationOutcome" and any(
        isinstance(i, dict) and i.get("severity") in ("error", "fatal") for i in (r.get("issue") or []))]
    kept = [r for r in items if r.get("resourceType") != "OperationOutcome"]
    if errors:
        return kept, _outcome_text(errors[0]) + " within the search result, which may be incomplete"
    return kept, None


@dataclass
class Call:
    """One CDS call, read: the orders, the JAK orders among them, prefetch read so far."""

    service_id: str
    hook: str
    request: cds_models.CallRequest
    draft: Any
    items: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    found: list[cds_orders.JakOrder]
    resources: list[dict[str, Any]] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # prefetch key -> why it is missing


def read_call(service_id: str, body: Any) -> Call:
    """Validate a call body and read its orders and prefetch (no network, no check)."""
    req = cds_models.parse_call(body)
    hook = SERVICES[service_id]
    if req.hook != hook:
        raise InputError(f"hook {req.hook!r} does not match service {service_id!r} ({hook})")
    kb = jakinib.load()
    draft, items, orders = _draft(hook, req.context)
    found = cds_orders.jak_orders(kb, orders, cds_orders.references(items, [draft]))
    call = Call(service_id, hook, req, draft, items, orders, found)
    if not call.found:
        return call
    prefetch = req.prefetch or {}
    for key in PREFETCH_KEYS:
        resources, problem = _read_prefetch(key, prefetch.get(key))
        call.resources += resources
        if problem:
            call.problems[key] = problem
    return call


async def fetch_missing(call: Call, timeout: float) -> None:
    """Fetch what prefetch lacked from ``fhirServer`` (when the EHR gave one with a token), under ``timeout``."""
    req = call.request
    if not call.problems or not _can_fetch(req):
        return
    assert req.fhir_server is not None and req.fhir_authorization is not None and req.context.patient_id is not None
    templates = prefetch_templates(jakinib.load())
    queries = {k: templates[k].replace("{{context.patientId}}", req.context.patient_id) for k in call.problems}
    result = await fhir_client.fetch(str(req.fhir_server), req.fhir_authorization.access_token, queries, timeout)
    for key, payload in result.payloads.items():
        try:
            if not isinstance(payload, dict):
                raise FhirError("not a JSON object")
            resources, problem = _read_prefetch(key, payload)
        except FhirError as exc:
            resources, problem = [], f"the FHIR server's answer is not a FHIR resource or Bundle ({exc})"
        call.resources += resources
        if problem:
            call.problems[key] = f"{call.problems[key]}; {problem}"
        else:
            del call.problems[key]
    for key, reason in result.failures.items():
        call.problems[key] = f"{call.problems[key]}; {reason}"


def assess_call(call: Call, region: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The check and its cards for a read call: ``({"cards": [...]}, card records to store)``. CPU only."""
    if not call.found:
        return {"cards": []}, []
    if "patient" in call.problems:
        server = "" if _can_fetch(call.request) else NO_SERVER
        raise PrefetchMissing(f"prefetch.patient: {call.problems['patient']}{server}")
    kb = jakinib.load()
    regulator = kb.regulator(region)
    ordered = {id(o.resource) for o in call.found}
    others = [r for r in call.orders if id(r) not in ordered]
    patient = fhir.patient_from_read(fhir.read_bundle(call.resources + others, kb), kb)  # as `jakinib check` reads a Bundle
    refs = cds_orders.references(call.resources + call.items, [call.draft])
    untrusted = prepare_untrusted([*_ehr_texts(call.items + call.resources), *patient.unmapped_medications,
                                   *patient.unmapped, *call.problems.values()])
    missing = {WHAT[k]: v + ("" if _can_fetch(call.request) else NO_SERVER) if v == NOT_SENT else v
               for k, v in call.problems.items()}
    data_notes = [f"Not available for this check: {what} ({why})." for what, why in missing.items()]
    cards, records = [], []
    for order in {o.drug: o for o in reversed(call.found)}.values():
        product, product_note = cds_orders.ordered_product(kb, order)
        indication = cds_orders.choose_indication(kb, order, regulator, call.resources, refs, product)
        a = assess(kb, patient, kb.drugs[order.drug], regulator, indication.id or patient.indication, dt.date.today(), product)
        notes = [n for n in (indication.note, order.note(), product_note) if n] + data_notes
        notes += [f"Read from the record: {d}." for d in patient.derived]  # derived values, names matched by text
        made = cards_for(a, regulator, order.resource, untrusted, notes)
        if missing:
            made.append(missing_data_card(a.drug, missing, untrusted))
        for card in made:
            cards.append(card)
            records.append({"uuid": card["uuid"], "service": call.service_id, "drug": a.drug, "indicator": card["indicator"],
                            "status": a.status, "rules": [f.rule for f in a.findings][:20]})
    return {"cards": cards}, records


def _ehr_texts(resources: list[dict[str, Any]]) -> list[str]:
    """Every ``text``, ``display`` and ``diagnostics`` string in the EHR's resources (escaped wherever it reaches a card)."""
    out: list[str] = []
    stack: list[Any] = list(resources)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, str) and k in ("text", "display", "diagnostics"):
                    out.append(v)
                elif isinstance(v, dict | list):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
    return out


INLINE_MAX_BYTES = 64 * 1024
"""CDS calls with a body up to this size are read and checked on the event loop (about 2 ms of CPU for an
order-sign call with its prefetch); larger ones, and every fetch from ``fhirServer``, never block it: the check
runs in the thread pool and the fetch is asynchronous. Handing a small call to a thread costs more than the
check: under load the loop then waits for the GIL at every socket operation (the convoy effect)."""


async def _json_body(request: Request) -> tuple[Any, int]:
    """The body as parsed once, strictly, by ``app.JsonGate``, and its size in bytes."""
    state = request.scope.get("state", {})
    if "json_body" in state:
        return state["json_body"], state["json_bytes"]
    from jakinib.jsonio import loads_strict  # an app built without the gate (not the served one)

    raw = await request.body()
    return loads_strict(raw), len(raw)


def register(app: Any) -> None:
    """Mount the CDS Hooks routes on ``app`` (needs ``app.state.settings``, ``store``, ``auth``)."""
    router = APIRouter(tags=["cds-hooks"])
    router.get("/cds-services")(discovery)

    @router.post("/cds-services/{service_id}", responses=ERROR_RESPONSES)
    async def call(service_id: str, request: Request) -> JSONResponse:
        """A CDS Hooks call: cards for each JAK inhibitor being ordered."""
        client = await _accept(service_id, request)
        body, size = await _json_body(request)
        settings = request.app.state.settings
        region = client.region if client else settings.default_region
        try:
            if size <= INLINE_MAX_BYTES:  # a few ms of CPU: cheaper on the loop than a thread hand-off (GIL convoy)
                read = read_call(service_id, body)
                if read.found and read.problems:
                    await fetch_missing(read, settings.fhir_timeout_s)
                answer, records = assess_call(read, region)
            else:
                read = await run_in_threadpool(read_call, service_id, body)
                if read.found:
                    await fetch_missing(read, settings.fhir_timeout_s)
                answer, records = await run_in_threadpool(assess_call, read, region)
        except PrefetchMissing as exc:
            return JSONResponse({"error": {"type": "prefetch-missing", "message": str(exc)}}, 412)
        request.app.state.store.add_cards_later([{**r, "tenant": client.tenant if client else None} for r in records])
        return JSONResponse(answer)

    @router.post("/cds-services/{service_id}/feedback", responses=ERROR_RESPONSES)
    async def feedback(service_id: str, request: Request) -> JSONResponse:
        """CDS Hooks feedback: card accepted or overridden (with the reason)."""
        client = await _accept(service_id, request)
        parsed, _ = await _json_body(request)
        body = cds_models.parse_feedback(parsed)
        items = [it.record() for it in body.feedback]
        n = await run_in_threadpool(request.app.state.store.add_feedback, service_id, items, client.tenant if client else None)
        return JSONResponse({"stored": n})

    app.include_router(router)


async def _accept(service_id: str, request: Request) -> Any:
    """Known service and authenticated client (None in local mode), or the matching error."""
    if service_id not in SERVICES:
        raise UnknownNameError("CDS service", service_id, SERVICES)
    return await _authenticate(request)


async def _authenticate(request: Request) -> Any:
    from jakinib.web.security import AuthError

    settings = request.app.state.settings
    if settings.local_mode:
        return None
    base = settings.public_base_url.rstrip("/") if settings.public_base_url else str(request.base_url).rstrip("/")
    audience = base + request.url.path.removesuffix("/feedback")
    try:
        return await run_in_threadpool(request.app.state.auth.verify, request.headers.get("authorization"), audience)
    except AuthError:
        raise _Unauthorized() from None


class _Unauthorized(Exception):
    pass
