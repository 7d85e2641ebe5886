"""CDS Hooks 2.0 service: fires when a JAK inhibitor is ordered, answers with cards.

Spec: https://cds-hooks.hl7.org/2.0/ . Discovery at ``GET /cds-services``; the service at
``POST /cds-services/{id}``; feedback at ``POST /cds-services/{id}/feedback``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

import jakinib
from jakinib.errors import FhirError, InputError, JakinibError, UnknownNameError
from jakinib.interop import fhir
from jakinib.knowledge.base import KnowledgeBase
from jakinib.safety.engine import check as run_check
from jakinib.safety.patient import parse_patient
from jakinib.safety.report import Assessment

SERVICES = {
    "jakinib-order-select": "order-select",
    "jakinib-order-sign": "order-sign",
    "jakinib-medication-prescribe": "medication-prescribe",  # deprecated hook, for older EHRs
}
INDICATOR = {"contraindicated": "critical", "do-not-start": "critical", "avoid": "warning", "caution": "warning"}
OVERRIDE_REASONS = [
    {"code": "benefit-outweighs-risk", "system": "https://jakinib.org/override-reason", "display": "Benefit outweighs risk for this patient"},
    {"code": "data-out-of-date", "system": "https://jakinib.org/override-reason", "display": "Patient data shown is out of date or wrong"},
    {"code": "specialist-advice", "system": "https://jakinib.org/override-reason", "display": "Started on specialist advice"},
    {"code": "screening-done-elsewhere", "system": "https://jakinib.org/override-reason", "display": "Screening done elsewhere"},
]


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


def _orders(hook: str, context: dict[str, Any]) -> list[dict[str, Any]]:
    """The MedicationRequest resources being ordered (draftOrders Bundle, possibly without 'type')."""
    if hook == "medication-prescribe":
        meds = context.get("medications")
        return fhir.resources(meds) if meds else []
    draft = context.get("draftOrders")
    if draft is None:
        raise InputError("context.draftOrders is required for this hook")
    items = fhir.resources(draft)
    selected = set(context.get("selections") or [])
    if hook == "order-select" and selected:
        chosen = [r for r in items if f"{r.get('resourceType')}/{r.get('id')}" in selected]
        items = chosen or items
    return [r for r in items if r.get("resourceType") in ("MedicationRequest", "MedicationStatement")]


def jak_orders(kb: KnowledgeBase, orders: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(drug slug, order) for each order that is a JAK inhibitor, by RxNorm code or text."""
    found = []
    for order in orders:
        concept = order.get("medicationCodeableConcept") or {}
        for _, code, display in fhir._codings(concept):
            drug = _resolve_drug(kb, code) or _resolve_drug(kb, display)
            if drug:
                found.append((drug, order))
                break
    return found


def _resolve_drug(kb: KnowledgeBase, text: str) -> str | None:
    try:
        return kb.drug(text).name
    except JakinibError:
        pass
    words = text.lower().replace("/", " ").replace("(", " ").replace(")", " ").split()
    for w in words:
        try:
            return kb.drug(w).name
        except JakinibError:
            continue
    return None


def _prefetch_resources(prefetch: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Resources from prefetch values (resources or searchset Bundles); OperationOutcome entries skipped."""
    out: list[dict[str, Any]] = []
    absent: list[str] = []
    for key in ("patient", "conditions", "observations", "medications", "immunizations"):
        value = prefetch.get(key)
        if value is None:
            absent.append(key)
            continue
        if not isinstance(value, dict):
            raise FhirError(f"prefetch.{key}: expected a FHIR resource or Bundle")
        for r in fhir.resources(value):
            if r.get("resourceType") != "OperationOutcome":
                out.append(r)
    return out, absent


def _fetch(fhir_server: str, auth: dict[str, Any], templates: dict[str, str], keys: list[str], patient_id: str,
           timeout: float) -> list[dict[str, Any]]:
    import httpx

    headers = {"Accept": "application/fhir+json"}
    token = auth.get("access_token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=fhir_server.rstrip("/") + "/", timeout=timeout, headers=headers) as client:
        for key in keys:
            url = templates[key].replace("{{context.patientId}}", patient_id)
            try:
                resp = client.get(url)
                resp.raise_for_status()
                out.extend(r for r in fhir.resources(resp.json()) if r.get("resourceType") != "OperationOutcome")
            except (httpx.HTTPError, ValueError, FhirError):
                raise PrefetchMissing(f"could not fetch {key} from the FHIR server") from None
    return out


def _summary(a: Assessment) -> str:
    top = a.findings[0] if a.findings else None
    head = {"contraindicated": "Contraindicated", "do-not-start": "Do not start", "avoid": "Avoid",
            "caution": "Caution"}.get(a.status, "OK")
    text = f"{head}: {a.drug}"
    if top:
        text += f" — {top.message}"
    return text if len(text) < 140 else text[:136].rstrip() + "…"


def _detail(a: Assessment, regulator: str) -> str:
    lines = [f"**{a.drug}** ({a.product}) under **{regulator}** labels: **{a.status}**", ""]
    for f in a.findings:
        if f.severity != "ok":
            lines.append(f"- *{f.severity}*: {f.message} _(sources: {', '.join(f.sources)})_")
    if a.dose:
        lines += ["", f"Dose: {a.dose.text}" + (f" (adjusted: {a.dose.reason})" if a.dose.adjusted else "")]
    if a.screening_missing:
        lines += ["", "Screen before starting: " + ", ".join(a.screening_missing)]
    return "\n".join(lines)


def _dose_suggestion(a: Assessment, order: dict[str, Any]) -> list[dict[str, Any]]:
    if not (a.dose and a.dose.adjusted and a.dose.mg and a.dose.every_h):
        return []
    resource = dict(order)
    resource["dosageInstruction"] = [{
        "text": a.dose.text,
        "timing": {"repeat": {"frequency": 1, "period": a.dose.every_h, "periodUnit": "h"}},
        "doseAndRate": [{"doseQuantity": {"value": a.dose.mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}],
    }]
    return [{"label": f"Change to {a.dose.text}", "uuid": str(uuid.uuid4()), "isRecommended": True,
             "actions": [{"type": "update", "description": f"Update the order to {a.dose.text}", "resource": resource}]}]


def cards_for(a: Assessment, regulator: str, order: dict[str, Any]) -> list[dict[str, Any]]:
    """Cards for one assessment: a critical/warning card for its status, an info card for missing screening."""
    kb = jakinib.load()
    label_src = next((kb.sources.get(s.partition("#")[0]) for f in a.findings for s in f.sources
                      if kb.sources.get(s.partition("#")[0]) and kb.sources[s.partition("#")[0]].kind == "label"), None)
    source = {"label": f"jakinib: {label_src.title}" if label_src else "jakinib JAK inhibitor reference",
              "url": (label_src.url if label_src and label_src.url else "https://github.com/jakinib/jakinib")}
    cards: list[dict[str, Any]] = []
    serious = [f for f in a.findings if not f.rule.startswith("screening.")]
    if a.status in INDICATOR and serious:
        card: dict[str, Any] = {"uuid": str(uuid.uuid4()), "summary": _summary(a.model_copy(update={"findings": serious})),
                                "indicator": INDICATOR[a.status], "detail": _detail(a, regulator), "source": source,
                                "overrideReasons": OVERRIDE_REASONS}
        suggestions = _dose_suggestion(a, order)
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        cards.append(card)
    if a.screening_missing:
        summary = f"Before starting {a.drug}: screen for {', '.join(a.screening_missing)}"
        cards.append({"uuid": str(uuid.uuid4()), "summary": summary if len(summary) < 140 else summary[:136] + "…",
                      "indicator": "info", "detail": _detail(a, regulator), "source": source,
                      "overrideReasons": OVERRIDE_REASONS})
    return cards


def handle(service_id: str, body: dict[str, Any], region: str, timeout: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer a CDS Hooks call: ``({"cards": [...]}, card records to store)``."""
    hook = SERVICES[service_id]
    if body.get("hook") not in (hook, None):
        raise InputError(f"hook {body.get('hook')!r} does not match service {service_id!r} ({hook})")
    context = body.get("context")
    if not isinstance(context, dict):
        raise InputError("context: expected an object")
    kb = jakinib.load()
    found = jak_orders(kb, _orders(hook, context))
    if not found:
        return {"cards": []}, []
    prefetch = body.get("prefetch") or {}
    if not isinstance(prefetch, dict):
        raise InputError("prefetch: expected an object")
    resources, absent = _prefetch_resources(prefetch)
    if absent:
        server, auth, pid = body.get("fhirServer"), body.get("fhirAuthorization"), context.get("patientId")
        if server and isinstance(auth, dict) and pid:
            resources += _fetch(server, auth, prefetch_templates(kb), absent, str(pid), timeout)
        elif "patient" in absent:
            raise PrefetchMissing("prefetch.patient is missing and no fhirServer/fhirAuthorization was given")
    others = [r for r in _orders(hook, context) if all(r is not o for _, o in found)]
    simple, unmapped = fhir.bundle_to_simple(resources + others, kb)
    patient = parse_patient(simple, kb).model_copy(update={"unmapped": tuple(unmapped)})
    drugs = list(dict.fromkeys(d for d, _ in found))
    report = run_check(kb, patient, drugs, region, patient.indication)
    cards, records = [], []
    for a in report.assessments:
        order = next(o for d, o in found if d == a.drug)
        for card in cards_for(a, report.regulator, order):
            cards.append(card)
            records.append({"uuid": card["uuid"], "service": service_id, "drug": a.drug, "indicator": card["indicator"],
                            "status": a.status, "rules": [f.rule for f in a.findings][:20]})
    return {"cards": cards}, records


def register(app: Any) -> None:
    """Mount the CDS Hooks routes on ``app`` (needs ``app.state.settings``, ``store``, ``auth``)."""
    router = APIRouter(tags=["cds-hooks"])
    router.get("/cds-services")(discovery)

    @router.post("/cds-services/{service_id}")
    async def call(service_id: str, request: Request) -> JSONResponse:
        client, body = await _accept(service_id, request)
        settings = request.app.state.settings
        region = client.region if client else settings.default_region
        try:
            answer, records = handle(service_id, body, region, settings.fhir_timeout_s)
        except PrefetchMissing as exc:
            return JSONResponse({"error": {"type": "prefetch-missing", "message": str(exc)}}, 412)
        request.app.state.store.add_cards_later([{**r, "tenant": client.tenant if client else None} for r in records])
        return JSONResponse(answer)

    @router.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> JSONResponse:
        client, body = await _accept(service_id, request)
        items = body.get("feedback")
        if not isinstance(items, list) or not items:
            raise InputError("feedback: expected a non-empty list")
        for i, it in enumerate(items):
            if not isinstance(it, dict) or not it.get("card") or it.get("outcome") not in ("accepted", "overridden"):
                raise InputError(f"feedback[{i}]: needs 'card' and 'outcome' (accepted or overridden)")
        n = request.app.state.store.add_feedback(service_id, items, client.tenant if client else None)
        return JSONResponse({"stored": n})

    app.include_router(router)


async def _accept(service_id: str, request: Request) -> tuple[Any, dict[str, Any]]:
    """Known service, authenticated client (None in local mode) and the JSON body, or the matching error."""
    if service_id not in SERVICES:
        raise UnknownNameError("CDS service", service_id, SERVICES)
    client = await _authenticate(request)
    return client, await _json_body(request)


async def _authenticate(request: Request) -> Any:
    from jakinib.web.security import AuthError

    settings = request.app.state.settings
    if settings.local_mode:
        return None
    base = settings.public_base_url.rstrip("/") if settings.public_base_url else str(request.base_url).rstrip("/")
    audience = base + request.url.path.removesuffix("/feedback")
    try:
        return request.app.state.auth.verify(request.headers.get("authorization"), audience)
    except AuthError:
        raise _Unauthorized() from None


class _Unauthorized(Exception):
    pass


async def _json_body(request: Request) -> dict[str, Any]:
    import json

    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"malformed JSON body: {getattr(exc, 'msg', str(exc))}") from None
    if not isinstance(body, dict):
        raise InputError("body: expected a JSON object")
    return body
