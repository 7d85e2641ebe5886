"""The HTTP service over real HTTP: JSON API, CDS Hooks 2.0 (cards, negative fixtures), errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "cds"
ORDER_SIGN = json.loads((FIXTURES / "order-sign-upadacitinib.json").read_text())
EXAMPLES = Path(__file__).parents[1] / "examples"


def validate_card(card: dict) -> None:
    """A card as CDS Hooks 2.0 defines it."""
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card["source"]["label"], str) and card["source"]["label"]
    assert isinstance(card.get("uuid"), str)
    assert isinstance(card.get("detail", ""), str)
    for s in card.get("suggestions", []):
        assert s["label"] and isinstance(s.get("uuid"), str)
        for action in s["actions"]:
            assert action["type"] in ("create", "update", "delete") and action["description"]
            assert action["resource"]["resourceType"] == "MedicationRequest"
    if card.get("suggestions"):
        assert card["selectionBehavior"] in ("at-most-one", "any")
    for r in card.get("overrideReasons", []):
        assert r["code"] and r["system"] and r["display"]


def test_health_and_api_shapes(server):
    h = httpx.get(server.url + "/api/v1/health").json()
    assert h["status"] == "ok" and h["drugs"] >= 14
    d = httpx.get(server.url + "/api/v1/drugs/Olumiant").json()
    assert d["name"] == "baricitinib"
    rows = httpx.get(server.url + "/api/v1/approvals", params={"drug": "upadacitinib", "regulator": "FDA",
                                                               "indication": "atopic-dermatitis"}).json()
    assert rows and all(r["drug"] == "upadacitinib" for r in rows)


def test_same_json_as_the_cli(server, cli):
    api = httpx.get(server.url + "/api/v1/approvals", params={"regulator": "EMA", "indication": "AD"}).json()
    assert api == cli("approvals", "--regulator", "EMA", "--indication", "AD", "--json").json()


def test_check_simple_and_fhir(server):
    patient = json.loads((EXAMPLES / "patient.json").read_text())
    r = httpx.post(server.url + "/api/v1/check", params={"drug": "baricitinib", "regulator": "EMA", "today": "2026-11-25"},
                   json=patient)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["regulator"] == "EMA" and body["assessments"][0]["drug"] == "baricitinib"
    bundle = json.loads((EXAMPLES / "bundle.json").read_text())
    r2 = httpx.post(server.url + "/api/v1/check", params={"drug": "baricitinib", "regulator": "EMA", "today": "2026-11-25"},
                    json=bundle)
    assert r2.status_code == 200 and r2.json()["assessments"][0]["drug"] == "baricitinib"


@pytest.mark.parametrize("path, status", [
    ("/api/v1/drugs/notadrug", 404),
    ("/api/v1/approvals?regulator=XYZ", 404),
    ("/api/v1/approvals?age=-4", 422),
    ("/api/v1/sources/nope", 404),
])
def test_api_errors_are_json(server, path, status):
    r = httpx.get(server.url + path)
    assert r.status_code == status
    assert r.json()["error"]["message"]


def test_check_bad_patient_is_400(server):
    r = httpx.post(server.url + "/api/v1/check", json={"age": 40, "labs": {"hb": 125}})
    assert r.status_code == 400 and "g/L" in r.json()["error"]["message"]


def test_discovery(server):
    services = httpx.get(server.url + "/cds-services").json()["services"]
    hooks = {s["hook"] for s in services}
    assert {"order-select", "order-sign", "medication-prescribe"} <= hooks
    for s in services:
        assert s["id"] and s["description"] and "patient" in s["prefetch"]
        assert "731-0" in s["prefetch"]["observations"]


def test_order_sign_returns_valid_cards(server):
    r = httpx.post(server.url + "/cds-services/jakinib-order-sign", json=ORDER_SIGN)
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert cards
    for c in cards:
        validate_card(c)
    assert any(c["indicator"] in ("warning", "critical") for c in cards)


def test_non_jak_order_returns_no_cards(server):
    body = copy.deepcopy(ORDER_SIGN)
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["medicationCodeableConcept"] = {"text": "amoxicillin 500 mg capsule"}
    r = httpx.post(server.url + "/cds-services/jakinib-order-sign", json=body)
    assert r.status_code == 200 and r.json() == {"cards": []}


def test_dose_suggestion_for_elderly_baricitinib_under_ema(tmp_path):
    from conftest import Server

    srv = Server({"JAKINIB_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}", "JAKINIB_DEFAULT_REGION": "EMA"})
    try:
        body = copy.deepcopy(ORDER_SIGN)
        body["prefetch"]["patient"]["birthDate"] = "1945-01-01"
        order = body["context"]["draftOrders"]["entry"][0]["resource"]
        order["medicationCodeableConcept"] = {"text": "Olumiant 4 mg tablet"}
        cards = httpx.post(srv.url + "/cds-services/jakinib-order-sign", json=body).json()["cards"]
        suggestions = [s for c in cards for s in c.get("suggestions", [])]
        assert suggestions, cards
        dose = suggestions[0]["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
        assert dose["value"] == 2 and dose["unit"] == "mg"
    finally:
        srv.stop()


def _negative(server, body=None, raw=None, service="jakinib-order-sign"):
    url = server.url + f"/cds-services/{service}"
    if raw is not None:
        return httpx.post(url, content=raw, headers={"content-type": "application/json"})
    return httpx.post(url, json=body)


def test_negative_missing_prefetch_is_412(server):
    body = copy.deepcopy(ORDER_SIGN)
    del body["prefetch"]
    r = _negative(server, body)
    assert r.status_code == 412 and r.json()["error"]["type"] == "prefetch-missing"


def test_negative_null_prefetch_patient_is_412(server):
    body = copy.deepcopy(ORDER_SIGN)
    body["prefetch"]["patient"] = None
    assert _negative(server, body).status_code == 412


def test_negative_operation_outcome_in_prefetch_is_tolerated(server):
    body = copy.deepcopy(ORDER_SIGN)
    body["prefetch"]["conditions"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    r = _negative(server, body)
    assert r.status_code == 200 and r.json()["cards"]


def test_negative_unknown_service_is_404(server):
    r = _negative(server, ORDER_SIGN, service="no-such-service")
    assert r.status_code == 404 and r.json()["error"]


def test_negative_wrong_hook_is_400(server):
    body = copy.deepcopy(ORDER_SIGN)
    body["hook"] = "patient-view"
    r = _negative(server, body)
    assert r.status_code == 400 and "hook" in r.json()["error"]["message"]


def test_negative_malformed_json_is_400(server):
    r = _negative(server, raw=b'{"hook": "order-sign", "context": ')
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"]


def test_negative_draft_orders_without_type_is_fine(server):
    body = copy.deepcopy(ORDER_SIGN)
    del body["context"]["draftOrders"]["type"]
    r = _negative(server, body)
    assert r.status_code == 200 and r.json()["cards"]


def test_negative_oversized_body_is_413(server):
    r = _negative(server, raw=b'{"x": "' + b"a" * 2_000_000 + b'"}')
    assert r.status_code == 413 and r.json()["error"]["type"] == "too-large"


def test_negative_bad_fhir_in_prefetch_is_400(server):
    body = copy.deepcopy(ORDER_SIGN)
    body["prefetch"]["observations"] = {"resourceType": "Bundle", "entry": [{"no": "resource"}]}
    r = _negative(server, body)
    assert r.status_code == 400 and "entry[0]" in r.json()["error"]["message"]


def test_feedback_is_stored_and_summarised(server, cli):
    cards = httpx.post(server.url + "/cds-services/jakinib-order-sign", json=ORDER_SIGN).json()["cards"]
    fb = {"feedback": [{"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z",
                        "overrideReason": {"reason": {"code": "specialist-advice", "system": "https://jakinib.org/override-reason",
                                                      "display": "Started on specialist advice"}}}]}
    r = httpx.post(server.url + "/cds-services/jakinib-order-sign/feedback", json=fb)
    assert r.status_code == 200 and r.json() == {"stored": 1}
    bad = httpx.post(server.url + "/cds-services/jakinib-order-sign/feedback", json={"feedback": [{"outcome": "maybe"}]})
    assert bad.status_code == 400
    import os
    import subprocess
    import sys

    out = subprocess.run([str(Path(sys.executable).with_name("jakinib")), "feedback", "--json"], capture_output=True,
                         text=True, env={**os.environ, "JAKINIB_DATABASE_URL": server.db_url})
    rows = json.loads(out.stdout)
    assert any(r["overridden"] >= 1 and "Started on specialist advice" in r["override_reasons"] for r in rows)


def test_logs_hold_no_patient_data(tmp_path):
    from conftest import Server

    srv = Server({"JAKINIB_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}"})
    httpx.post(srv.url + "/cds-services/jakinib-order-sign", json=ORDER_SIGN)
    httpx.post(srv.url + "/api/v1/check", json={"age": 40, "labs": {"hb": 125}})
    logs = srv.stop()
    assert "1950-03-01" not in logs and "pt-1" not in logs and "125" not in logs
    assert "local mode" in logs


def test_missing_prefetch_is_fetched_from_the_fhir_server(server):
    """With fhirServer + fhirAuthorization, absent prefetch is fetched (here from a FHIR server on loopback)."""
    from conftest import JsonStub

    kinds = {"Patient": "patient", "Condition": "conditions", "Observation": "observations",
             "MedicationRequest": "medications", "Immunization": "immunizations"}
    fhir = JsonStub(lambda path: ORDER_SIGN["prefetch"][kinds[path.lstrip("/").split("?")[0].split("/")[0]]],
                    "application/fhir+json")
    seen = fhir.seen
    try:
        body = copy.deepcopy(ORDER_SIGN)
        del body["prefetch"]
        body["fhirServer"] = fhir.url
        body["fhirAuthorization"] = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "jakinib"}
        r = httpx.post(server.url + "/cds-services/jakinib-order-sign", json=body)
        assert r.status_code == 200, r.text
        with_fetch = r.json()["cards"]
        direct = httpx.post(server.url + "/cds-services/jakinib-order-sign", json=ORDER_SIGN).json()["cards"]
        assert [c["summary"] for c in with_fetch] == [c["summary"] for c in direct]
        assert {p.split("?")[0].split("/")[1] for p, _ in seen} == {"Patient", "Condition", "Observation", "MedicationRequest",
                                                                  "Immunization"}
        assert all(auth == "Bearer secret-token" for _, auth in seen)
    finally:
        fhir.close()


def test_unreachable_fhir_server_is_412(server):
    from conftest import free_port

    body = copy.deepcopy(ORDER_SIGN)
    del body["prefetch"]
    body["fhirServer"] = f"http://127.0.0.1:{free_port()}"
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "x", "subject": "y"}
    r = httpx.post(server.url + "/cds-services/jakinib-order-sign", json=body)
    assert r.status_code == 412 and r.json()["error"]["type"] == "prefetch-missing"
