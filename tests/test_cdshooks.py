"""CDS Hooks over real HTTP: no request blocks another, every malformed body is a 4xx, EHR text is escaped."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Server, free_port

FIXTURES = Path(__file__).parent / "fixtures" / "cds"
ORDER_SIGN = json.loads((FIXTURES / "order-sign-upadacitinib.json").read_text())
SIGN = "/cds-services/jakinib-order-sign"
FEEDBACK = SIGN + "/feedback"
AUTH = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
        "subject": "jakinib"}


def body(**changes):
    b = copy.deepcopy(ORDER_SIGN)
    b.update(changes)
    return b


def order(b):
    return b["context"]["draftOrders"]["entry"][0]["resource"]


def first_obs(b):
    return b["prefetch"]["observations"]["entry"][0]["resource"]


class Trickle:
    """A FHIR server on loopback that answers every GET with one byte every ``every`` seconds, for ever."""

    def __init__(self, every: float = 0.5) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrived = threading.Event()
        stop = self.stop = threading.Event()
        arrived = self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                arrived.set()
                self.send_response(200)
                self.send_header("content-type", "application/fhir+json")
                self.send_header("content-length", "100000")
                self.end_headers()
                try:
                    while not stop.wait(every):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                except OSError:
                    pass  # jakinib gave up and closed the connection

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def cds(tmp_path_factory):
    """`jakinib serve` with a 3-second FHIR deadline (set in its TOML settings)."""
    d = tmp_path_factory.mktemp("cds")
    (d / "settings.toml").write_text("fhir_timeout_s = 3\n")
    srv = Server({"JAKINIB_DATABASE_URL": f"sqlite:///{d / 'f.db'}", "JAKINIB_CONFIG": str(d / "settings.toml")})
    yield srv
    srv.stop()


def _in_flight(url: str, payload: dict) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def post() -> None:
        out["response"] = httpx.post(url, json=payload, timeout=60)

    t = threading.Thread(target=post)
    t.start()
    return t, out


@pytest.mark.parametrize("missing, expect", [(["observations"], 200), (["patient", "observations"], 412)])
def test_a_trickling_fhir_server_blocks_nothing_and_the_call_ends_at_its_deadline(cds, missing, expect):
    fhir = Trickle()
    try:
        b = body(fhirServer=fhir.url, fhirAuthorization=AUTH)
        for key in missing:
            del b["prefetch"][key]
        call, out = _in_flight(cds.url + SIGN, b)
        assert fhir.arrived.wait(30), "jakinib never asked the FHIR server"
        health = httpx.get(cds.url + "/api/v1/health", timeout=1)  # the bound: within 1 s
        assert health.status_code == 200
        assert call.is_alive(), "the CDS call should still be waiting on the FHIR server"
        call.join(30)
        assert not call.is_alive(), "the CDS call did not end at its deadline"
        r = out["response"]
        assert r.status_code == expect, r.text
        if expect == 412:
            assert r.json()["error"]["type"] == "prefetch-missing"
            assert "did not answer within 3 s" in r.json()["error"]["message"]
        else:
            cards = r.json()["cards"]
            named = [c for c in cards if "recent labs" in c["summary"].lower()]
            assert named and "did not answer within 3 s" in named[0]["summary"] + named[0]["detail"]
    finally:
        fhir.close()


# ---- item 6: every malformed body is a 4xx with the JSON error body ---------------------------------

def _deep(n: int) -> bytes:
    return b'{"hook": "order-sign", "hookInstance": "x", "context": ' + b"[" * n + b"]" * n + b"}"


def _with(mutate):
    b = copy.deepcopy(ORDER_SIGN)
    mutate(b)
    return json.dumps(b).encode()


BAD_CALLS = {
    "10000-deep": _deep(10_000),
    "selections: 5": _with(lambda b: b["context"].update(selections=5)),
    "coding: 5 in the order": _with(lambda b: order(b).update(medicationCodeableConcept={"coding": 5})),
    "fhirServer: 5": _with(lambda b: b.update(fhirServer=5)),
    "fhirServer: http://[::1": _with(lambda b: b.update(fhirServer="http://[::1", fhirAuthorization=AUTH)),
    "fhirServer: ftp": _with(lambda b: b.update(fhirServer="ftp://example.org/fhir")),
    "CR/LF in patientId": _with(lambda b: b["context"].update(patientId="pt-1\r\nX-Injected: 1")),
    "lone surrogate": b'{"hook": "order-sign", "hookInstance": "\\ud800", "context": {}}',
    "duplicate key": b'{"hook": "order-sign", "hookInstance": "1", "context": {"patientId": "a", "patientId": "b"}}',
    "NaN": b'{"hook": "order-sign", "hookInstance": NaN, "context": {}}',
    "prefetch: 5": _with(lambda b: b.update(prefetch=5)),
    "prefetch.patient: []": _with(lambda b: b["prefetch"].update(patient=[])),
    "context: []": _with(lambda b: b.update(context=[])),
    "no hookInstance": _with(lambda b: b.pop("hookInstance")),
    "fhirAuthorization without token": _with(lambda b: b.update(fhirServer="http://127.0.0.1:1", fhirAuthorization={"token_type": "Bearer"})),
    "access_token with CR/LF": _with(lambda b: b.update(fhirServer="http://127.0.0.1:1", fhirAuthorization={**AUTH, "access_token": "a\r\nb"})),
    "a list body": b"[1, 2]",
    "not UTF-8": b'{"hook": "\xff"}',
}
OBSERVATION_SHAPES = {
    "effectivePeriod.end: 5": lambda o: (o.pop("effectiveDateTime"), o.update(effectivePeriod={"end": 5})),
    "code.coding: 5": lambda o: o.update(code={"coding": 5}),
    "status: [...]": lambda o: o.update(status=["final", "amended"]),
    "status: 5": lambda o: o.update(status=5),
}
BAD_FEEDBACK = {
    "overrideReason: 'x'": {"overrideReason": "x"},
    "overrideReason.reason: 5": {"overrideReason": {"reason": 5}},
    "overrideReason.reason.code: {}": {"overrideReason": {"reason": {"code": {}}}},
    "overrideReason display 10k": {"overrideReason": {"reason": {"code": "x", "display": "d" * 10_000}}},
    "acceptedSuggestions: 5": {"acceptedSuggestions": 5},
    "acceptedSuggestions: ['x']": {"acceptedSuggestions": ["x"]},
    "acceptedSuggestions id: {}": {"acceptedSuggestions": [{"id": {}}]},
    "outcomeTimestamp: 5": {"outcomeTimestamp": 5},
    "outcomeTimestamp: 'tuesday'": {"outcomeTimestamp": "tuesday"},
    "outcomeTimestamp: 9999-99-99": {"outcomeTimestamp": "9999-99-99T00:00:00Z"},
    "outcomeTimestamp: year 10": {"outcomeTimestamp": "0010-01-01T00:00:00Z"},
    "outcome: maybe": {"outcome": "maybe"},
    "card: 5": {"card": 5},
    "card: 1000 chars": {"card": "c" * 1000},
}


def _error_body(r: httpx.Response) -> dict:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert isinstance(err["type"], str) and isinstance(err["message"], str) and err["message"]
    assert "\n" not in err["message"] and "Traceback" not in err["message"]
    return err


@pytest.mark.parametrize("name", BAD_CALLS)
def test_a_malformed_call_is_a_4xx_with_the_json_error_body(cds, name):
    r = httpx.post(cds.url + SIGN, content=BAD_CALLS[name], headers={"content-type": "application/json"})
    err = _error_body(r)
    if name == "duplicate key":
        assert "patientId" in err["message"]
    if name == "selections: 5":
        assert "context.selections" in err["message"]
    if name.startswith("fhirServer"):
        assert "fhirServer" in err["message"]
    if name == "CR/LF in patientId":
        assert "context.patientId" in err["message"]


@pytest.mark.parametrize("name", OBSERVATION_SHAPES)
def test_odd_observations_in_prefetch_never_500(cds, name):
    b = copy.deepcopy(ORDER_SIGN)
    OBSERVATION_SHAPES[name](first_obs(b))
    r = httpx.post(cds.url + SIGN, json=b)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert "Observation" in _error_body(r)["message"] or "coding" in r.json()["error"]["message"]


@pytest.mark.parametrize("name", BAD_FEEDBACK)
def test_malformed_feedback_is_a_4xx_with_the_json_error_body(cds, name):
    item = {"card": "card-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z", **BAD_FEEDBACK[name]}
    err = _error_body(httpx.post(cds.url + FEEDBACK, json={"feedback": [item]}))
    assert err["message"].startswith("feedback.0.")


def test_good_feedback_is_stored(cds):
    item = {"card": "card-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z",
            "overrideReason": {"reason": {"code": "specialist-advice", "system": "https://jakinib.org/override-reason"},
                               "userComment": "seen by rheumatology"}}
    accepted = {"card": "card-2", "outcome": "accepted", "acceptedSuggestions": [{"id": "s-1"}],
                "outcomeTimestamp": "2026-11-25T10:00:00+01:00"}
    r = httpx.post(cds.url + FEEDBACK, json={"feedback": [item, accepted]})
    assert r.status_code == 200 and r.json() == {"stored": 2}


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def _paths(node, here=()):
    yield here
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*here, i))


def _replace(node, path, value):
    if not path:
        return value
    node = copy.deepcopy(node)
    cur = node
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return node


CALL_PATHS = list(_paths(ORDER_SIGN))
FEEDBACK_DOC = {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z",
                              "overrideReason": {"reason": {"code": "x", "system": "y", "display": "z"}, "userComment": "u"},
                              "acceptedSuggestions": [{"id": "s"}]}]}
FEEDBACK_PATHS = list(_paths(FEEDBACK_DOC))


@pytest.fixture(scope="module")
def http(cds):
    with httpx.Client(base_url=cds.url, timeout=30) as client:
        yield client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(CALL_PATHS), value=JSON, also=st.sampled_from(CALL_PATHS), other=JSON)
def test_random_json_shapes_in_a_call_never_5xx(http, where, value, also, other):
    doc = _replace(ORDER_SIGN, where, value)
    with contextlib.suppress(KeyError, IndexError, TypeError):  # the second path went away with the first change
        doc = _replace(doc, also, other)
    r = http.post(SIGN, json=doc)
    assert r.status_code < 500, (where, value, also, other, r.text[:300])
    if r.status_code >= 400 and r.status_code != 412:
        _error_body(r)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(FEEDBACK_PATHS), value=JSON)
def test_random_json_shapes_in_feedback_never_5xx(http, where, value):
    r = http.post(FEEDBACK, json=_replace(FEEDBACK_DOC, where, value))
    assert r.status_code < 500, (where, value, r.text[:300])
    if r.status_code >= 400:
        _error_body(r)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=JSON)
def test_any_json_document_is_answered_without_5xx(http, doc):
    for path in (SIGN, FEEDBACK):
        r = http.post(path, json=doc)
        assert r.status_code < 500, (path, doc, r.text[:300])


# ---- item 8: EHR text reaches the card as text, not Markdown ---------------------------------------

def test_ehr_medication_text_is_escaped_in_card_markdown(cds):
    b = copy.deepcopy(ORDER_SIGN)
    evil_link, evil_image = "[click me](javascript:alert(1))", "![](http://evil.example/track.png)"
    b["prefetch"]["medications"]["entry"] = [
        {"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
                      "medicationCodeableConcept": {"text": evil_link}}},
        {"resource": {"resourceType": "MedicationRequest", "id": "m2", "status": "active",
                      "medicationCodeableConcept": {"text": evil_image}}},
    ]
    r = httpx.post(cds.url + SIGN, json=b)
    assert r.status_code == 200, r.text
    details = "\n".join(c.get("detail", "") for c in r.json()["cards"])
    assert "click me" in details and "evil" in details, "the unmapped medications should be named on a card"
    assert evil_link not in details and evil_image not in details
    assert "](" not in details.replace("\\](", "") and "![" not in details.replace("!\\[", "")


def test_markdown_escaping_keeps_jakinib_text_and_neutralises_ehr_text():
    from jakinib.web.cds_cards import escape_markdown, markdown

    assert markdown("Do not initiate if ALC < 0.5 x10^9/L.") == "Do not initiate if ALC < 0.5 x10^9/L."
    assert markdown("<img src=x>") == "\\<img src=x>"
    out = markdown("Medication '[x](javascript:alert(1))' is not mapped", ["[x](javascript:alert(1))"])
    assert out.startswith("Medication '\\[x\\]\\(javascript\\:alert\\(1\\)\\)'")
    assert escape_markdown("a\nb") == "a b"


def test_summary_is_cut_at_a_word_boundary():
    from jakinib.web.cds_cards import fit

    text = "Do not start tofacitinib: " + " ".join(["lymphocytes"] * 20)
    out = fit(text)
    assert len(out) < 140 and out.endswith("…") and out[:-1].split()[-1] == "lymphocytes"


# ---- issue 10 item 7: inside the EHR ---------------------------------------------------------------

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
RA = {"coding": [{"system": SNOMED, "code": "69896004", "display": "Rheumatoid arthritis"}]}  # indications.yaml


def _kb():
    import jakinib

    return jakinib.load()


def _jak_codes(tty: str) -> list:
    return [c for c in _kb().rxnorm if c.tty == tty and c.ingredient in _kb().drugs]


def _condition(cid: str, concept: dict, status: str = "active") -> dict:
    return {"resource": {"resourceType": "Condition", "id": cid, "code": concept,
                         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                        "code": status}]}}}


def _post(server, b):
    r = httpx.post(server.url + SIGN, json=b)
    assert r.status_code == 200, r.text
    return r.json()["cards"]


def _details(cards) -> str:
    return "\n".join(c.get("detail", "") for c in cards)


def test_an_order_coded_only_by_an_rxnorm_clinical_drug_code_is_detected(cds):
    sandbox = next(c for c in _kb().rxnorm if c.code == "1357541")  # the CDS Hooks sandbox's tofacitinib 5 MG Oral Tablet
    assert sandbox.tty == "SCD" and sandbox.ingredient == "tofacitinib"
    b = copy.deepcopy(ORDER_SIGN)
    order(b)["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": "1357541"}]}  # no display, no text
    cards = _post(cds, b)
    assert cards and all("tofacitinib" in c["summary"] for c in cards if c["indicator"] != "warning" or "tofacitinib" in c["summary"])
    assert any(c["indicator"] == "critical" and "tofacitinib" in c["summary"] for c in cards)
    assert "recognised as tofacitinib by its name" not in _details(cards)


@pytest.mark.parametrize("concept", [c.code for c in _jak_codes("SCD") + _jak_codes("SBD")])
def test_every_jak_clinical_and_branded_drug_code_in_the_kb_is_an_order(concept):
    from jakinib.web.cds_orders import jak_orders

    kb = _kb()
    entry = next(c for c in kb.rxnorm if c.code == concept)
    (found,) = jak_orders(kb, [{"resourceType": "MedicationRequest", "medicationCodeableConcept": {
        "coding": [{"system": RXNORM, "code": concept}]}}], {})
    assert found.drug == entry.ingredient and found.match.matched_by == "code"


def test_an_order_through_a_contained_medication_is_detected(cds):
    b = copy.deepcopy(ORDER_SIGN)
    o = order(b)
    o.pop("medicationCodeableConcept")
    o["contained"] = [{"resourceType": "Medication", "id": "med", "code": {"coding": [{"system": RXNORM, "code": "1357541"}]}}]
    o["medicationReference"] = {"reference": "#med"}
    assert any("tofacitinib" in c["summary"] for c in _post(cds, b))


def test_an_order_named_only_by_text_says_so_on_the_card(cds):
    b = copy.deepcopy(ORDER_SIGN)
    order(b)["medicationCodeableConcept"] = {"text": "abrocitinib 100 MG Oral Tablet"}
    cards = _post(cds, b)
    assert any("abrocitinib" in c["summary"] for c in cards)
    assert "recognised as abrocitinib by its name" in _details(cards)


def test_the_indication_comes_from_the_orders_reason_code(cds):
    b = copy.deepcopy(ORDER_SIGN)
    order(b)["reasonCode"] = [RA]
    details = _details(_post(cds, b))
    assert "No indication given" not in details
    assert "Indication: rheumatoid arthritis (from the order's reasonCode" in details


def test_the_indication_comes_from_a_reason_reference_to_a_condition(cds):
    b = copy.deepcopy(ORDER_SIGN)
    b["prefetch"]["conditions"]["entry"].append(_condition("ra-1", RA))
    order(b)["reasonReference"] = [{"reference": "Condition/ra-1"}]
    details = _details(_post(cds, b))
    assert "No indication given" not in details and "reasonReference" in details


def test_the_indication_comes_from_the_active_conditions_and_the_card_says_it_was_assumed(cds):
    b = copy.deepcopy(ORDER_SIGN)
    b["prefetch"]["conditions"]["entry"].append(_condition("ra-1", {"coding": [
        {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M0579", "display": "RA with rheumatoid factor of multiple sites"}]}))
    details = _details(_post(cds, b))
    assert "No indication given" not in details
    assert "Indication assumed: rheumatoid arthritis (from the active Condition" in details


def test_several_possible_indications_name_the_one_assumed_and_the_others(cds):
    b = copy.deepcopy(ORDER_SIGN)
    b["prefetch"]["conditions"]["entry"] += [_condition("ad", {"coding": [{"system": SNOMED, "code": "24079001", "display": "Atopic dermatitis"}]}),
                                             _condition("ra", RA)]
    details = _details(_post(cds, b))
    assert "Indication assumed: atopic dermatitis" in details and "The record also lists: rheumatoid arthritis" in details


def test_a_resolved_condition_is_not_taken_as_the_indication(cds):
    b = copy.deepcopy(ORDER_SIGN)
    b["prefetch"]["conditions"]["entry"].append(_condition("ra", RA, status="resolved"))
    assert "No indication given" in _details(_post(cds, b))


def test_tofacitinib_with_ketoconazole_for_ra_under_fda_gets_5_mg_once_daily(cds):
    rule = next(r for r in _kb().rules if r.id == "tofacitinib.fda.strong-cyp3a4-inhibitor")
    assert rule.dose.mg == 5 and rule.dose.every_h == 24 and "rheumatoid-arthritis" in rule.indications
    b = copy.deepcopy(ORDER_SIGN)
    order(b)["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": "1357541"}]}
    order(b)["reasonCode"] = [RA]
    b["prefetch"]["medications"]["entry"] = [{"resource": {
        "resourceType": "MedicationRequest", "id": "keto", "status": "active",
        "medicationCodeableConcept": {"text": "ketoconazole 200 MG Oral Tablet"}}}]
    cards = _post(cds, b)
    suggestions = [s for c in cards for s in c.get("suggestions", [])]
    assert suggestions, [c["summary"] for c in cards]
    dosage = suggestions[0]["actions"][0]["resource"]["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 5
    assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 24, "periodUnit": "h"}
    assert "once daily" in suggestions[0]["label"]
    assert "Strong CYP3A4 inhibitor" in _details(cards)


def _assert_summary_states_worst(card: dict) -> None:
    order_ = ["contraindicated", "do-not-start", "avoid", "caution"]
    lines = [ln for ln in card["detail"].splitlines() if ln.startswith("- *")]
    severities = [ln[3:].split("*")[0] for ln in lines]
    worst = min(severities, key=order_.index)
    head = card["summary"].split(": ", 1)[1].removesuffix("…")
    head = head.rsplit(" (+", 1)[0].removesuffix("…")
    worst_lines = [ln for ln, s in zip(lines, severities, strict=True) if s == worst]
    assert any(ln.split(": ", 1)[1].startswith(head) for ln in worst_lines), (card["summary"], worst_lines)
    assert card["indicator"] == ("critical" if worst in ("contraindicated", "do-not-start") else "warning")


def test_the_critical_cards_summary_states_the_worst_finding(cds):
    b = copy.deepcopy(ORDER_SIGN)
    b["prefetch"]["observations"]["entry"][1]["resource"]["valueQuantity"] = {"value": 0.3, "unit": "10*9/L", "code": "10*9/L"}
    b["prefetch"]["conditions"]["entry"].append(_condition("hs", {"text": "hypersensitivity to upadacitinib"}))
    cards = _post(cds, b)
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert len(critical) == 1
    _assert_summary_states_worst(critical[0])
    assert critical[0]["summary"].startswith(("Do not start upadacitinib: ", "Contraindicated upadacitinib: "))
    assert len(critical[0]["summary"]) < 140


SEVERITY = st.sampled_from(["contraindicated", "do-not-start", "avoid", "caution", "ok"])
MESSAGE = st.lists(st.sampled_from(["ALC", "below", "0.5", "x10^9/L", "screening", "not", "recorded:", "Evaluate", "for",
                                    "active", "latent", "tuberculosis", "before", "starting;", "a" * 30]),
                   min_size=1, max_size=40).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(findings=st.lists(st.tuples(SEVERITY, MESSAGE), min_size=1, max_size=8))
def test_the_summary_states_the_worst_finding_in_under_140_characters_without_cutting_a_word(findings):
    from jakinib.safety.report import Assessment, Finding, worst
    from jakinib.web.cds_cards import cards_for

    fs = [Finding(rule=f"r{i}", severity=s, message=m, sources=["seed"]) for i, (s, m) in enumerate(findings)]
    status = worst([f.severity for f in fs])
    a = Assessment(drug="upadacitinib", product="upadacitinib-oral", route="oral", status=status, approved=True,
                   dose=None, findings=fs, screening_missing=[], monitoring=[])
    cards = cards_for(a, "FDA", {"resourceType": "MedicationRequest"})
    if status == "ok":
        assert cards == []
        return
    (card,) = cards
    assert 0 < len(card["summary"]) < 140
    _assert_summary_states_worst(card)
    words = set(" ".join(m for _, m in findings).split()) | {"Do", "not", "start", "Avoid", "Caution", "Contraindicated",
                                                             "upadacitinib:", "upadacitinib", "more)"}
    summary_words = card["summary"].removesuffix("…").split(" (+")[0].removesuffix("…").split()
    bare = {w.rstrip(",;:") for w in words}  # fit() drops the punctuation before its ellipsis
    assert all(w.rstrip(",;:") in bare for w in summary_words), card["summary"]


def test_a_do_not_start_with_no_other_finding_is_a_critical_card():
    from jakinib.safety.report import Assessment, Finding
    from jakinib.web.cds_cards import cards_for

    f = Finding(rule="screening.tuberculosis", severity="do-not-start", message="Tuberculosis screening not recorded.",
                sources=["seed"], needs=["screening.tuberculosis"])
    a = Assessment(drug="upadacitinib", product="upadacitinib-oral", route="oral", status="do-not-start", approved=True,
                   dose=None, findings=[f], screening_missing=["tuberculosis"], monitoring=[])
    indicators = [c["indicator"] for c in cards_for(a, "FDA", {"resourceType": "MedicationRequest"})]
    assert indicators == ["critical", "info"]


@pytest.mark.parametrize("key", ["conditions", "observations", "medications", "immunizations"])
def test_missing_prefetch_without_a_fhir_server_is_named_on_a_card(cds, key):
    from jakinib.web.cdshooks import WHAT

    b = copy.deepcopy(ORDER_SIGN)
    del b["prefetch"][key]
    cards = _post(cds, b)
    named = [c for c in cards if c["summary"].lower().startswith(WHAT[key].lower() + " not available")]
    assert named, [c["summary"] for c in cards]
    assert "no fhirServer" in named[0]["summary"] + named[0]["detail"]
    assert any(c["indicator"] in ("critical", "warning") and "upadacitinib" in c["summary"] for c in cards)


@pytest.mark.parametrize("prefetch", ["absent", "empty", "patient null"])
def test_missing_patient_prefetch_without_a_fhir_server_is_412_naming_it(cds, prefetch):
    b = copy.deepcopy(ORDER_SIGN)
    if prefetch == "absent":
        del b["prefetch"]
    elif prefetch == "empty":
        b["prefetch"] = {}
    else:
        b["prefetch"]["patient"] = None
    r = httpx.post(cds.url + SIGN, json=b)
    assert r.status_code == 412
    assert "prefetch.patient" in r.json()["error"]["message"] and "fhirServer" in r.json()["error"]["message"]


def test_an_operation_outcome_instead_of_a_search_result_is_named_on_a_card(cds):
    b = copy.deepcopy(ORDER_SIGN)
    b["prefetch"]["observations"] = {"resourceType": "OperationOutcome",
                                     "issue": [{"severity": "error", "code": "timeout", "diagnostics": "search timed out"}]}
    cards = _post(cds, b)
    named = [c for c in cards if c["summary"].startswith("Recent labs not available")]
    assert named and "OperationOutcome" in named[0]["summary"] and "search timed out" in named[0]["detail"]


def test_a_failed_fetch_is_named_on_a_card(cds):
    from conftest import JsonStub

    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}
    fhir = JsonStub(lambda path: outcome if path.startswith("/Observation") else {"resourceType": "Bundle", "entry": []})
    try:
        b = body(fhirServer=fhir.url, fhirAuthorization=AUTH)
        del b["prefetch"]["observations"], b["prefetch"]["immunizations"]
        cards = _post(cds, b)
        assert {p.split("?")[0] for p, _ in fhir.seen} == {"/Observation", "/Immunization"}
        named = [c for c in cards if c["summary"].startswith("Recent labs not available")]
        assert named and "OperationOutcome" in named[0]["summary"]
        assert not [c for c in cards if "Immunizations" in c["summary"]], "the fetched immunizations are not missing"
    finally:
        fhir.close()


@pytest.mark.parametrize("text, product", [("Opzelura 1.5% cream", "ruxolitinib-topical"),
                                           ("ruxolitinib 15 MG/GM Topical Cream", "ruxolitinib-topical"),
                                           ("ruxolitinib 5 MG Oral Tablet", "ruxolitinib-oral"),
                                           ("Xeljanz XR 11 mg", "tofacitinib-oral-xr")])
def test_the_product_ordered_is_the_product_assessed(cds, text, product):
    b = copy.deepcopy(ORDER_SIGN)
    order(b)["medicationCodeableConcept"] = {"text": text}
    cards = _post(cds, b)
    assert cards and all(f"({product})" in c["detail"].splitlines()[0] for c in cards if c["detail"].startswith("**"))


def test_the_card_reads_the_record_as_jakinib_check_does_and_says_what_it_derived(cds):
    """Issue 10: the CDS path read prefetch with bundle_to_simple and dropped how it read it. Now it uses the same reader as
    `jakinib check`: an ANC derived from WBC x neutrophil % is used and said on the card; a stale count is named."""
    body = copy.deepcopy(ORDER_SIGN)
    entries = [e for e in body["prefetch"]["observations"]["entry"] if e["resource"]["code"]["coding"][0]["code"] != "751-8"]
    for code, value, unit in (("6690-2", 5.0, "10*9/L"), ("770-8", 30, "%")):
        entries.append({"resource": {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2026-10-01T08:00:00Z",
                                     "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                                     "valueQuantity": {"value": value, "unit": unit}}})
    body["prefetch"]["observations"]["entry"] = entries
    r = httpx.post(cds.url + "/cds-services/jakinib-order-sign", json=body)
    assert r.status_code == 200
    details = " ".join(c.get("detail", "") for c in r.json()["cards"])
    assert "labs.anc = 1.50" in details and "derived from WBC" in details
    assert "needs labs.anc" not in details
