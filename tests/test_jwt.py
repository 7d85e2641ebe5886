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


@pytest.fixture(scope="module")
def jwks_server():
    stub = JsonStub(lambda _path: {"keys": [jwk(JKU_KEY, "jku-1", "ES384")]})
    yield stub.url + "/jwks"
    stub.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory, jwks_server):
    tmp = tmp_path_factory.mktemp("jwt")
    port = free_port()
    jwks = {"keys": [jwk(EC_KEY, "ec-1", "ES384"), jwk(RSA_KEY, "rsa-1", "RS384")]}
    config = tmp / "jakinib.toml"
    lines = [f'database_url = "sqlite:///{tmp / "f.db"}"', f'public_base_url = "http://127.0.0.1:{port}"',
             "[[clients]]", f'iss = "{ISS}"', 'region = "EMA"', 'tenant = "hospital-a"',
             f"jku_allow = [{json.dumps(jwks_server)}]", f"jwks = {_toml_inline(jwks)}"]
    config.write_text("\n".join(lines) + "\n")
    srv = Server({"JAKINIB_CONFIG": str(config)}, port=port)
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
