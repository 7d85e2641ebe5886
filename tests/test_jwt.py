"""CDS Hooks security over real HTTP: JWT cases from the CDS Hooks 2.0 specification."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import JsonStub, Server, free_port

ISS = "https://ehr.example.org"
ORDER_SIGN = json.loads((Path(__file__).parent / "fixtures" / "cds" / "order-sign-upadacitinib.json").read_text())
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())
JKU_KEY = ec.generate_private_key(ec.SECP384R1())


def jwk(key, kid: str, alg: str) -> dict:
    data = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


def _jwks_documents(path: str):
    if path.startswith("/list"):
        return [jwk(JKU_KEY, "jku-1", "ES384")]  # a JWKS that is a JSON list, not {"keys": [...]}
    if path.startswith("/keys-not-a-list"):
        return {"keys": {"kid": "jku-1"}}
    if path.startswith("/bad-key"):
        return {"keys": [{"kty": "EC", "kid": "jku-1", "crv": "P-384", "x": "AAAA", "y": "!!"}]}
    return {"keys": [jwk(JKU_KEY, "jku-1", "ES384")]}


@pytest.fixture(scope="module")
def jwks_stub():
    stub = JsonStub(_jwks_documents)
    yield stub.url
    stub.close()


@pytest.fixture(scope="module")
def jwks_server(jwks_stub):
    return jwks_stub + "/jwks"


def write_config(tmp, port: int, jwks_stub: str, base_url: bool = True) -> Path:
    jwks = {"keys": [jwk(EC_KEY, "ec-1", "ES384"), jwk(RSA_KEY, "rsa-1", "RS384")]}
    allow = [jwks_stub + p for p in ("/jwks", "/list", "/keys-not-a-list", "/bad-key")]
    config = tmp / "jakinib.toml"
    lines = [f'database_url = "sqlite:///{tmp / "f.db"}"', *([f'public_base_url = "http://127.0.0.1:{port}"'] if base_url else []),
             "[[clients]]", f'iss = "{ISS}"', 'region = "EMA"', 'tenant = "hospital-a"',
             f"jku_allow = {json.dumps(allow)}", f"jwks = {_toml_inline(jwks)}"]
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture(scope="module")
def secured(tmp_path_factory, jwks_stub):
    tmp = tmp_path_factory.mktemp("jwt")
    port = free_port()
    srv = Server({"JAKINIB_CONFIG": str(write_config(tmp, port, jwks_stub))}, port=port)
    yield srv
    srv.stop()


def _toml_inline(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    return json.dumps(value)


def token(secured, key=EC_KEY, alg="ES384", kid="ec-1", **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "aud": secured.url + "/cds-services/jakinib-order-sign", "iat": now, "exp": now + 300,
               "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def call(secured, auth: str | None):
    headers = {"Authorization": auth} if auth is not None else {}
    return httpx.post(secured.url + "/cds-services/jakinib-order-sign", json=ORDER_SIGN, headers=headers)


def test_valid_es384(secured):
    r = call(secured, "Bearer " + token(secured))
    assert r.status_code == 200 and r.json()["cards"]


def test_valid_rs384(secured):
    assert call(secured, "Bearer " + token(secured, RSA_KEY, "RS384", "rsa-1")).status_code == 200


def test_jku_on_the_allow_list(secured, jwks_server):
    t = jwt.encode({"iss": ISS, "aud": secured.url + "/cds-services/jakinib-order-sign", "iat": int(time.time()),
                    "exp": int(time.time()) + 300, "jti": str(uuid.uuid4())}, JKU_KEY, algorithm="ES384",
                   headers={"kid": "jku-1", "jku": jwks_server})
    assert call(secured, "Bearer " + t).status_code == 200


def test_jku_not_on_the_allow_list(secured, jwks_server):
    t = jwt.encode({"iss": ISS, "aud": secured.url + "/cds-services/jakinib-order-sign", "iat": int(time.time()),
                    "exp": int(time.time()) + 300, "jti": str(uuid.uuid4())}, JKU_KEY, algorithm="ES384",
                   headers={"kid": "jku-1", "jku": jwks_server + "-evil"})
    assert call(secured, "Bearer " + t).status_code == 401


@pytest.mark.parametrize("make", [
    pytest.param(lambda s: None, id="no-token"),
    pytest.param(lambda s: "Basic abc", id="not-bearer"),
    pytest.param(lambda s: "Bearer not.a.jwt", id="garbage"),
    pytest.param(lambda s: "Bearer " + token(s, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), id="expired"),
    pytest.param(lambda s: "Bearer " + token(s, aud="https://elsewhere.example/cds-services/jakinib-order-sign"), id="wrong-aud"),
    pytest.param(lambda s: "Bearer " + token(s, iss="https://stranger.example"), id="unknown-iss"),
    pytest.param(lambda s: "Bearer " + token(s, key=OTHER_KEY), id="wrong-key"),
    pytest.param(lambda s: "Bearer " + jwt.encode({"iss": ISS, "aud": s.url + "/cds-services/jakinib-order-sign",
                                                    "iat": int(time.time()), "exp": int(time.time()) + 300, "jti": "x"},
                                                   None, algorithm="none"), id="alg-none"),
    pytest.param(lambda s: "Bearer " + jwt.encode({"iss": ISS, "aud": s.url + "/cds-services/jakinib-order-sign",
                                                    "iat": int(time.time()), "exp": int(time.time()) + 300, "jti": "y"},
                                                   "a-shared-secret-of-32-bytes-long!!", algorithm="HS256"), id="hs256"),
])
def test_refused_tokens_get_a_bare_401(secured, make):
    r = call(secured, make(secured))
    assert r.status_code == 401 and r.content == b""


def jku_token(secured, jku: str, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "aud": secured.url + "/cds-services/jakinib-order-sign", "iat": now, "exp": now + 300,
               "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, JKU_KEY, algorithm="ES384", headers={"kid": "jku-1", "jku": jku})


NOW = int(time.time())


@pytest.mark.parametrize("make", [
    pytest.param(lambda s: "Bearer " + token(s, exp=NOW + 10 * 365 * 86400), id="ten-year-exp"),
    pytest.param(lambda s: "Bearer " + token(s, iat=int(time.time()) - 3000, exp=int(time.time()) + 60), id="lifetime-over-5-min"),
    pytest.param(lambda s: "Bearer " + token(s, iat=int(time.time()) + 3000, exp=int(time.time()) + 3100), id="iat-in-the-future"),
    pytest.param(lambda s: "Bearer " + token(s, exp=str(int(time.time()) + 60)), id="exp-a-string"),
    pytest.param(lambda s: "Bearer " + token(s, jti=5), id="jti-a-number"),
    pytest.param(lambda s: "Bearer " + token(s, jti="j" * 256), id="jti-too-long"),
    pytest.param(lambda s: "Bearer " + token(s, aud="http://evil.example/cds-services/jakinib-order-sign"), id="aud-of-the-host-header"),
    pytest.param(lambda s: "Bearer " + jku_token(s, s.jwks_stub + "/list"), id="jwks-a-json-list"),
    pytest.param(lambda s: "Bearer " + jku_token(s, s.jwks_stub + "/keys-not-a-list"), id="jwks-keys-not-a-list"),
    pytest.param(lambda s: "Bearer " + jku_token(s, s.jwks_stub + "/bad-key"), id="jwks-broken-key"),
    pytest.param(lambda s: "Bearer", id="bearer-without-token"),
    pytest.param(lambda s: "Bearer " + token(s) + " extra", id="token-with-trailing-junk"),
])
def test_hardened_token_checks_are_401(secured, jwks_stub, make):
    secured.jwks_stub = jwks_stub
    r = call(secured, make(secured))
    assert r.status_code == 401 and r.content == b""


def test_host_header_does_not_choose_the_audience(secured):
    t = token(secured, aud="http://evil.example/cds-services/jakinib-order-sign")
    r = httpx.post(secured.url + "/cds-services/jakinib-order-sign", json=ORDER_SIGN,
                   headers={"Authorization": "Bearer " + t, "host": "evil.example"})
    assert r.status_code == 401


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(secured, scheme):
    assert call(secured, f"{scheme} " + token(secured)).status_code == 200


def test_replay_is_refused_after_a_restart(tmp_path, jwks_stub):
    port = free_port()
    env = {"JAKINIB_CONFIG": str(write_config(tmp_path, port, jwks_stub))}
    srv = Server(env, port=port)
    try:
        t = token(srv)
        assert call(srv, "Bearer " + t).status_code == 200
    finally:
        srv.stop()
    again = Server(env, port=port)
    try:
        assert call(again, "Bearer " + t).status_code == 401  # the jti is in the database, not in the old process
        assert call(again, "Bearer " + token(again)).status_code == 200
    finally:
        again.stop()


def test_clients_without_public_base_url_refuse_to_start(tmp_path, jwks_stub, cli):
    import os

    config = write_config(tmp_path, free_port(), jwks_stub, base_url=False)
    os.environ["JAKINIB_CONFIG"] = str(config)
    try:
        r = cli("serve", "--port", str(free_port()))
    finally:
        del os.environ["JAKINIB_CONFIG"]
    assert r.code == 2 and "public_base_url" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_replayed_jti_is_refused(secured):
    t = token(secured)
    assert call(secured, "Bearer " + t).status_code == 200
    assert call(secured, "Bearer " + t).status_code == 401


def test_feedback_needs_a_token_too(secured):
    fb = {"feedback": [{"card": "abc", "outcome": "accepted", "outcomeTimestamp": "2026-11-25T10:00:00Z"}]}
    assert httpx.post(secured.url + "/cds-services/jakinib-order-sign/feedback", json=fb).status_code == 401
    t = token(secured)
    r = httpx.post(secured.url + "/cds-services/jakinib-order-sign/feedback", json=fb, headers={"Authorization": "Bearer " + t})
    assert r.status_code == 200


def test_region_comes_from_the_client(secured):
    r = call(secured, "Bearer " + token(secured))
    detail = " ".join(c["detail"] for c in r.json()["cards"])
    assert "under **EMA** labels" in detail


def test_local_mode_refuses_non_loopback_bind(cli):
    r = cli("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert r.code == 2 and "loopback" in r.err
