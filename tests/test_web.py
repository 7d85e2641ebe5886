"""The HTTP service over real HTTP: JSON API, CDS Hooks 2.0 (cards, negative fixtures), errors."""

from __future__ import annotations

import copy
import json
import re
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


# --- Hardening (issue 9): every bad input is a 4xx with the JSON error body; nothing reaches a log ---------------

BUNDLE = (EXAMPLES / "bundle.json").read_bytes()


def _is_error_body(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"type", "message"} and err["message"]
    return err


@pytest.mark.parametrize("method, path", [("GET", "/no/such/endpoint"), ("GET", "/api/v1/nope"), ("DELETE", "/api/v1/health"),
                                          ("PUT", "/cds-services")])
def test_unknown_routes_and_methods_use_the_error_body(server, method, path):
    r = httpx.request(method, server.url + path)
    _is_error_body(r, 404 if method == "GET" else 405)


def test_unknown_page_in_a_browser_is_the_html_error_page(server):
    r = httpx.get(server.url + "/no-such-page", headers={"accept": "text/html"})
    assert r.status_code == 404 and "<h1>Not found</h1>" in r.text


@pytest.mark.parametrize("path, body", [
    ("/api/v1/check", b'{"age": 40, "labs": {"platelets": 20, "platelets": 300}}'),
    ("/cds-services/jakinib-order-sign", b'{"hook": "order-sign", "hook": "order-select", "context": {}}'),
    ("/cds-services/jakinib-order-sign/feedback", b'{"feedback": [{"card": "a", "outcome": "accepted", "card": "b"}]}'),
])
def test_duplicate_json_keys_are_refused_naming_the_key(server, path, body):
    err = _is_error_body(httpx.post(server.url + path, content=body, headers={"content-type": "application/json"}), 400)
    key = "platelets" if b"platelets" in body else ("hook" if b'"hook"' in body else "card")
    assert f"'{key}'" in err["message"]


@pytest.mark.parametrize("body, needle", [
    (b'{"age": 40, "medications": ["\\ud800"]}', "surrogate"),
    (b"[" * 10_000 + b"]" * 10_000, "deeper"),
    (b'{"age": NaN}', "NaN"),
    (b"\xff\xfe", "UTF-8"),
    (b"", "malformed JSON"),
])
def test_unreadable_bodies_are_400(server, body, needle):
    for path in ("/api/v1/check", "/cds-services/jakinib-order-sign"):
        err = _is_error_body(httpx.post(server.url + path, content=body, headers={"content-type": "application/json"}), 400)
        assert needle in err["message"]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_json_posts_need_the_json_content_type(server, ctype):
    headers = {"content-type": ctype} if ctype else {}
    for path in ("/api/v1/check", "/cds-services/jakinib-order-sign", "/cds-services/jakinib-order-sign/feedback"):
        _is_error_body(httpx.post(server.url + path, content=b"{}", headers=headers), 415)
    assert httpx.post(server.url + "/api/v1/check", content=b'{"age": 40}',
                      headers={"content-type": "application/json; charset=utf-8"}).status_code == 200


@pytest.mark.parametrize("path, status", [
    ("/api/v1/check?today=9999-12-31", 400), ("/api/v1/check?today=0001-01-01", 400), ("/api/v1/check?today=2026-13-45", 422),
    ("/api/v1/check?drug=" + "x" * 101, 422),
])
def test_check_parameters_out_of_range_are_4xx(server, path, status):
    err = _is_error_body(httpx.post(server.url + path, json={"age": 40}), status)
    assert err["message"].startswith(("today", "query.today", "query.drug"))


def test_openapi_documents_the_error_body_for_every_4xx():
    from jakinib.web.app import create_app
    from jakinib.web.settings import Settings

    doc = create_app(Settings(database_url="sqlite://")).openapi()
    assert "HTTPValidationError" not in json.dumps(doc)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for code, resp in op["responses"].items():
                if code.startswith("4") and code != "401":
                    assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (path, code)
            assert {"400", "404", "422"} <= set(op["responses"]), (method, path)


@pytest.mark.parametrize("query", ["every=1e-300", "every=nan", "dose=1e-300", "dose=inf", "seed=-1", "population=-1", "every=1000"])
def test_simulate_parameters_out_of_range_are_422(server, query):
    _is_error_body(httpx.get(server.url + "/api/v1/simulate?drug=tofacitinib&" + query), 422)


@pytest.mark.parametrize("query", ["age=nan", "age=inf", "age=-1", "age=200", "age=abc"])
def test_approvals_page_and_api_apply_the_same_validation(server, query):
    _is_error_body(httpx.get(server.url + "/api/v1/approvals?" + query), 422)
    page = httpx.get(server.url + "/approvals?" + query)
    assert page.status_code == 400 and "age:" in page.text


@pytest.mark.parametrize("query", ["every=1e-300", "dose=nan", "dose=-5"])
def test_simulate_page_refuses_what_the_api_refuses(server, query):
    page = httpx.get(server.url + "/simulate?drug=tofacitinib&" + query)
    assert page.status_code == 400 and 'id="sim-error"' in page.text


@pytest.mark.parametrize("item, field", [
    ({"card": "c", "outcome": "overridden", "overrideReason": 5}, "overrideReason"),
    ({"card": "c", "outcome": "overridden", "overrideReason": {"reason": "no"}}, "overrideReason.reason"),
    ({"card": "c", "outcome": "overridden", "overrideReason": {"reason": {"code": 5}}}, "reason.code"),
    ({"card": "c", "outcome": "overridden", "overrideReason": {"reason": {"display": "x" * 301}}}, "reason.display"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": 5}, "acceptedSuggestions"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": [5]}, "acceptedSuggestions"),
    ({"card": "c", "outcome": "accepted", "acceptedSuggestions": [{"id": {"x": 1}}]}, "acceptedSuggestions"),
    ({"card": "c", "outcome": "accepted", "outcomeTimestamp": 5}, "outcomeTimestamp"),
    ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "yesterday"}, "outcomeTimestamp"),
    ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z" * 3}, "outcomeTimestamp"),
    ({"card": "x" * 65, "outcome": "accepted"}, "card"),
    ({"card": {"a": 1}, "outcome": "accepted"}, "card"),
])
def test_odd_feedback_values_are_400_naming_the_field(server, item, field):
    err = _is_error_body(httpx.post(server.url + "/cds-services/jakinib-order-sign/feedback", json={"feedback": [item]}), 400)
    assert field in err["message"]


def test_pages_send_security_headers(server):
    for path in ("/", "/check", "/docs", "/api/v1/health", "/static/style.css"):
        h = httpx.get(server.url + path).headers
        assert "frame-ancestors 'none'" in h["content-security-policy"] and "script-src 'self'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"


def test_docs_work_offline(server):
    """/docs loads Swagger UI from jakinib itself: no script, style or link to another host."""
    html = httpx.get(server.url + "/docs").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith("/") and not r.startswith("//") for r in refs), refs
    assert "http://" not in html and "https://" not in html
    for ref in refs:
        assert httpx.get(server.url + ref).status_code == 200, ref


def test_check_page_reads_the_uploaded_bundle(server):
    form = {"drug": "baricitinib", "regulator": "EMA"}
    r = httpx.post(server.url + "/check", data=form, files={"bundle": ("bundle.json", BUNDLE, "application/json")})
    assert r.status_code == 200, r.text[:500]
    # the example bundle's 67-year-old current smoker: 'Avoid' under EMA; an empty patient would be 'Caution'
    article = r.text.split('id="assessment-baricitinib"')[1].split("</article>")[0]
    assert 'status-avoid">Avoid' in article
    empty = httpx.post(server.url + "/check", data=form)
    assert 'status-avoid">Avoid' not in empty.text.split('id="assessment-baricitinib"')[1].split("</article>")[0]


@pytest.mark.parametrize("content, needle", [(b'{"resourceType": "Bundle", ', "malformed JSON"), (b"\x89PNG\r\n\x1a\n\x00", "UTF-8"),
                                             (b"", "empty"), (b'{"a": 1, "a": 2}', "duplicate key")])
def test_check_page_refuses_an_unreadable_upload(server, content, needle):
    r = httpx.post(server.url + "/check", data={"drug": "baricitinib"}, files={"bundle": ("mine.json", content, "application/json")})
    assert r.status_code == 400
    error = r.text.split('id="check-error">')[1].split("</p>")[0]
    assert "mine.json" in error and needle in error
    assert 'id="assessment-' not in r.text  # no report for a patient that was never read


def test_local_mode_refuses_foreign_hosts_and_origins(server):
    _is_error_body(httpx.get(server.url + "/api/v1/health", headers={"host": "evil.example"}), 421)
    _is_error_body(httpx.get(server.url + "/api/v1/health", headers={"host": "evil.example:8000"}), 421)
    assert httpx.get(server.url + "/api/v1/health", headers={"host": f"localhost:{server.port}"}).status_code == 200
    _is_error_body(httpx.post(server.url + "/cds-services/jakinib-order-sign/feedback", headers={"origin": "https://evil.example"},
                              json={"feedback": [{"card": "c", "outcome": "accepted"}]}), 403)
    pre = httpx.options(server.url + "/api/v1/check", headers={"origin": "http://localhost:3000",
                                                                "access-control-request-method": "POST"})
    assert pre.headers.get("access-control-allow-origin") == "http://localhost:3000"
    assert httpx.get(server.url + "/api/v1/health", headers={"origin": "http://127.0.0.1:5000"}).headers.get(
        "access-control-allow-origin") == "http://127.0.0.1:5000"


def test_bad_input_leaves_no_traceback_and_no_request_data_in_the_log(tmp_path):
    from conftest import Server

    marker = "MARKER-7f3a"
    srv = Server({"JAKINIB_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}"})
    try:
        post = lambda path, body: httpx.post(srv.url + path, content=body, headers={"content-type": "application/json"})  # noqa: E731
        post("/cds-services/jakinib-order-sign/feedback", json.dumps({"feedback": [{"card": marker, "outcome": "accepted",
                                                                                    "overrideReason": {"reason": marker}}]}))
        post("/cds-services/jakinib-order-sign/feedback", json.dumps({"feedback": [{"card": marker, "outcome": "accepted",
                                                                                    "acceptedSuggestions": [marker]}]}))
        post("/api/v1/check?today=9999-12-31", json.dumps({"age": 40, "medications": [marker]}))
        post("/api/v1/check", b'{"medications": ["\\ud800"]}')
        post("/cds-services/jakinib-order-sign", b"[" * 10_000 + b"]" * 10_000)
    finally:
        logs = srv.stop()
    assert "Traceback" not in logs and marker not in logs, logs[-2000:]


def test_serve_keeps_its_database_out_of_the_current_folder(tmp_path):
    """With no JAKINIB_DATABASE_URL the database goes to the user's data folder, and the start-up lines name it."""
    import os

    from conftest import Server

    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "JAKINIB_DATABASE_URL"}
    os.environ.pop("JAKINIB_DATABASE_URL", None)
    srv = Server({**env, "XDG_DATA_HOME": str(data), "HOME": str(tmp_path / "home")}, cwd=cwd)
    try:
        httpx.post(srv.url + "/cds-services/jakinib-order-sign/feedback", json={"feedback": [{"card": "c", "outcome": "accepted"}]})
    finally:
        logs = srv.stop()
    assert list(cwd.iterdir()) == []
    assert (data / "jakinib" / "feedback.db").exists()
    assert f"database sqlite:///{data / 'jakinib' / 'feedback.db'}" in logs


def test_overload_is_refused_fast_with_retry_after(tmp_path):
    """With cds_concurrency=1 and one CDS call held open (its FHIR server has not answered yet), the next call is
    a 503 with Retry-After at once, not queued; health is unaffected; once the first ends, calls are served again."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from conftest import Server, free_port

    arrived, release = threading.Event(), threading.Event()

    class Held(BaseHTTPRequestHandler):
        def do_GET(self):
            arrived.set()
            release.wait(60)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    fhir = ThreadingHTTPServer(("127.0.0.1", free_port()), Held)
    threading.Thread(target=fhir.serve_forever, daemon=True).start()
    srv = Server({"JAKINIB_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}", "JAKINIB_CDS_CONCURRENCY": "1",
                  "JAKINIB_FHIR_TIMEOUT_S": "60"})
    try:
        held = copy.deepcopy(ORDER_SIGN)
        del held["prefetch"]
        held["fhirServer"] = f"http://127.0.0.1:{fhir.server_port}"
        held["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "x", "subject": "y"}
        first: list[httpx.Response] = []
        t = threading.Thread(target=lambda: first.append(httpx.post(srv.url + "/cds-services/jakinib-order-sign", json=held,
                                                                    timeout=120)))
        t.start()
        assert arrived.wait(60), "the first call never reached its FHIR server"
        refused = httpx.post(srv.url + "/cds-services/jakinib-order-sign", json=ORDER_SIGN)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "overloaded"
        assert httpx.get(srv.url + "/api/v1/health").status_code == 200
        release.set()
        t.join(120)
        assert first and first[0].status_code in (200, 412)
        assert httpx.post(srv.url + "/cds-services/jakinib-order-sign", json=ORDER_SIGN).status_code == 200
    finally:
        release.set()
        srv.stop()
        fhir.shutdown()


@pytest.mark.parametrize("env, field", [
    ({"JAKINIB_DEFAULT_REGION": "FDAA"}, "default_region"),
    ({"JAKINIB_MAX_BODY_BYTES": "lots"}, "max_body_bytes"),
    ({"JAKINIB_CDS_CONCURRENCY": "0"}, "cds_concurrency"),
    ({"JAKINIB_FHIR_TIMEOUT_S": "nan"}, "fhir_timeout_s"),
    ({"JAKINIB_DATABASE_URL": "mysql://x"}, "database_url"),
    ({"JAKINIB_PUBLIC_BASE_URL": "ftp://jak.example"}, "public_base_url"),
])
def test_bad_settings_stop_the_server_with_one_line_naming_the_field(env, field, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import free_port

    proc = subprocess.run([str(Path(sys.executable).with_name("jakinib")), "serve", "--port", str(free_port())],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and field in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
