"""CDS Hooks client authentication: the ``Authorization: Bearer <JWT>`` an EHR sends on every call.

Checked as the CDS Hooks 2.0 specification asks: signature against the client's JWKS (configured,
fetched from its ``jwks_url``, or from a ``jku`` header that is on the client's allow-list),
``iss`` on the allow-list, ``aud`` equal to the service URL, ``exp`` and ``iat`` present and valid,
``jti`` never seen before (replay cache); only ES384 and RS384 (``none`` and HMAC are refused).
Tokens are never logged.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import jwt

from jakinib.web.settings import Client, Settings

ALLOWED_ALGS = ("ES384", "RS384")


class AuthError(Exception):
    """Any authentication failure; the response is a bare 401 (the reason is not sent)."""


class ReplayCache:
    """Remembers ``jti`` values until their token expires."""

    def __init__(self, max_items: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.max_items = max_items

    def check_and_add(self, jti: str, exp: float) -> bool:
        now = time.time()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)
            if jti in self._seen:
                return False
            self._seen[jti] = exp
            if len(self._seen) > self.max_items:
                self._seen.popitem(last=False)
            return True


class JwksCache:
    """JWKS documents by URL, fetched with httpx under a timeout and kept for ``ttl`` seconds."""

    def __init__(self, timeout: float = 5.0, ttl: float = 300.0) -> None:
        self.timeout, self.ttl = timeout, ttl
        self._docs: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, url: str) -> dict[str, Any]:
        hit = self._docs.get(url)
        if hit and time.time() - hit[0] < self.ttl:
            return hit[1]
        import httpx

        try:
            resp = httpx.get(url, timeout=self.timeout)
            resp.raise_for_status()
            doc = resp.json()
        except Exception as exc:
            raise AuthError(f"cannot fetch JWKS: {type(exc).__name__}") from None
        self._docs[url] = (time.time(), doc)
        return doc


def _key_for(header: dict[str, Any], jwks: dict[str, Any]) -> Any:
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
    kid = header.get("kid")
    if kid is not None:
        keys = [k for k in keys if k.get("kid") == kid]
    if not keys:
        raise AuthError("no matching key")
    return jwt.PyJWK(keys[0], algorithm=header["alg"]).key


class Authenticator:
    """Verifies CDS Hooks JWTs for the configured clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.replay = ReplayCache()
        self.jwks = JwksCache(timeout=settings.fhir_timeout_s)

    def verify(self, authorization: str | None, audience: str) -> Client:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing bearer token")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        if header.get("alg") not in ALLOWED_ALGS:
            raise AuthError("algorithm not allowed")
        client = self.settings.client(str(unverified.get("iss")))
        if client is None:
            raise AuthError("unknown issuer")
        jku = header.get("jku")
        if jku is not None:
            if jku not in client.jku_allow:
                raise AuthError("jku not allowed")
            jwks = self.jwks.get(jku)
        elif client.jwks is not None:
            jwks = client.jwks
        elif client.jwks_url:
            jwks = self.jwks.get(client.jwks_url)
        else:
            raise AuthError("no keys for client")
        try:
            claims = jwt.decode(token, _key_for(header, jwks), algorithms=list(ALLOWED_ALGS), audience=audience,
                                issuer=client.iss, options={"require": ["exp", "iat", "jti", "iss", "aud"]}, leeway=30)
        except jwt.PyJWTError:
            raise AuthError("invalid token") from None
        if not self.replay.check_and_add(str(claims["jti"]), float(claims["exp"])):
            raise AuthError("replayed jti")
        return client
