"""CDS Hooks client authentication: the ``Authorization: Bearer <JWT>`` an EHR sends on every call.

Checked as the CDS Hooks 2.0 specification asks: signature against the client's JWKS (configured,
fetched from its ``jwks_url``, or from a ``jku`` header that is on the client's allow-list),
``iss`` on the allow-list, ``aud`` equal to the service URL, ``exp`` and ``iat`` present and valid,
``jti`` never seen before (remembered in the database until the token expires, so a restart does not
reopen a replay window); only ES384 and RS384 (``none`` and HMAC are refused). The token's lifetime
(``exp - iat``) and its remaining life may not exceed the specification's 5 minutes plus ``SKEW_S``.
The ``Authorization`` scheme is case-insensitive (RFC 7235). Tokens are never logged.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from jakinib.web.settings import Client, Settings
from jakinib.web.store import Store

ALLOWED_ALGS = ("ES384", "RS384")
MAX_LIFETIME_S = 300  # CDS Hooks 2.0: "exp ... no more than 5 minutes in the future"
SKEW_S = 30  # clock difference tolerated between the EHR and jakinib
MAX_JWKS_BYTES = 200_000


class AuthError(Exception):
    """Any authentication failure; the response is a bare 401 (the reason is not sent)."""


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

        from jakinib.jsonio import loads_strict

        deadline = time.monotonic() + self.timeout  # a total deadline: a trickling server cannot defeat it
        try:
            with httpx.stream("GET", url, timeout=self.timeout) as resp:
                resp.raise_for_status()
                raw = b""
                for chunk in resp.iter_bytes():
                    raw += chunk
                    if len(raw) > MAX_JWKS_BYTES or time.monotonic() > deadline:
                        raise AuthError("JWKS too large or too slow")
            doc = loads_strict(raw)
        except Exception as exc:
            raise AuthError(f"cannot fetch JWKS: {type(exc).__name__}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise AuthError("JWKS is not an object with a 'keys' list")
        self._docs[url] = (time.time(), doc)
        return doc


def _key_for(header: dict[str, Any], jwks: Any) -> Any:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise AuthError("JWKS is not an object with a 'keys' list")
    keys = [k for k in jwks["keys"] if isinstance(k, dict)]
    kid = header.get("kid")
    if kid is not None:
        keys = [k for k in keys if k.get("kid") == kid]
    if not keys:
        raise AuthError("no matching key")
    return jwt.PyJWK(keys[0], algorithm=header["alg"]).key


class Authenticator:
    """Verifies CDS Hooks JWTs for the configured clients."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.jwks = JwksCache(timeout=settings.fhir_timeout_s)

    def verify(self, authorization: str | None, audience: str) -> Client:
        """The client whose valid token ``authorization`` carries, or ``AuthError`` (never another exception)."""
        try:
            return self._verify(authorization, audience)
        except AuthError:
            raise
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError) as exc:  # malformed keys or claims
            raise AuthError(f"invalid token: {type(exc).__name__}") from None

    def _verify(self, authorization: str | None, audience: str) -> Client:
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("missing bearer token")
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
        now = time.time()
        exp, iat, jti = claims["exp"], claims["iat"], claims["jti"]
        if not (isinstance(exp, int | float) and isinstance(iat, int | float) and isinstance(jti, str) and 0 < len(jti) <= 255):
            raise AuthError("exp, iat must be numbers and jti a string of at most 255 characters")
        if exp - iat > MAX_LIFETIME_S + SKEW_S or exp > now + MAX_LIFETIME_S + SKEW_S:
            raise AuthError("token lifetime over 5 minutes")
        if not self.store.remember_token(client.iss, jti, float(exp) + SKEW_S, now):
            raise AuthError("replayed jti")
        return client
