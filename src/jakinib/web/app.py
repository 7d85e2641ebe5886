"""The FastAPI application: JSON API, CDS Hooks service and pages, with one error policy.

Errors: a ``JakinibError`` becomes a 4xx JSON body ``{"error": {"type", "message"}}`` (so do unknown
routes, wrong methods, parameter errors and unreadable bodies; a page path asked for by a browser gets
the HTML error page); an authentication failure is a bare 401; an oversized body 413; an overloaded CDS
service a fast 503 with ``Retry-After``. An unexpected exception is a 500 with the same body and one log
line naming only its type: never a traceback, a request body, SQL parameters, a JWT or patient data.

The ASGI layers, outermost first: ``CatchAll`` (the last word on any exception), ``Overload`` (CDS calls past
``cds_concurrency`` in flight, or a backlog older than ``cds_max_lag_ms``: a prebuilt 503 before anything else
is done), ``BodyLimit``, ``SecurityHeaders`` (CSP, nosniff, frame-ancestors), ``LocalGuard`` (local mode: Host
and Origin must be loopback), ``JsonGate`` (JSON POSTs: ``application/json`` or 415, strict JSON or 400), then CORS and the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import make_url
from starlette.exceptions import HTTPException as StarletteHTTPException

import jakinib
from jakinib.errors import JakinibError, UnknownNameError, error_body
from jakinib.jsonio import loads_strict
from jakinib.web import api, cdshooks
from jakinib.web.security import Authenticator
from jakinib.web.settings import Settings, load_settings
from jakinib.web.store import Store

log = logging.getLogger("jakinib.web")
HERE = Path(__file__).parent
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
LOOPBACK_ORIGINS = r"^https?://(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?$"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
JSON_PREFIXES = ("/api/", "/cds-services")  # JSON endpoints: errors are JSON, never the HTML page


def _json_post(path: str) -> bool:
    """The routes whose POST body is JSON (a POST elsewhere is routed normally: 404 or 405)."""
    return path == "/api/v1/check" or (path.startswith("/cds-services/") and path.count("/") in (2, 3))
ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["type", "message"],
    "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}}}


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status, headers=headers)


class CatchAll:
    """The outermost layer: an exception that escaped everything is a 500 JSON body and one log line
    with its type only (Starlette's own error middleware re-raises, and the server would log a traceback)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watch(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log.error("internal error: %s", type(exc).__name__)
            if not started:
                await _error(500, "internal", "internal error")(scope, receive, send)


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with 413 (checked on the stream, not trusted headers)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            return await _too_large(scope, receive, send, self.limit)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(scope, receive, send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(scope: dict, receive: Any, send: Any, limit: int) -> None:
    await _error(413, "too-large", f"request body over {limit} bytes")(scope, receive, send)


class SecurityHeaders:
    """CSP (no inline script, no framing), ``X-Content-Type-Options: nosniff`` and a referrer policy on every response."""

    HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
               (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


def _hostname(host: str) -> str:
    """The host part of a Host header value (``[::1]:8000`` -> ``::1``)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class LocalGuard:
    """Local mode (no clients, unauthenticated): only loopback may talk to jakinib.

    ``Host`` must name a loopback address (a DNS-rebinding page's Host is its own domain: 421), and a
    request that carries an ``Origin`` must come from a loopback origin (any other web page: 403).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        import re

        host = _header(scope, b"host")
        if host is None or _hostname(host.strip().lower()) not in LOOPBACK_HOSTS:
            return await _error(421, "misdirected", "local mode answers only requests for a loopback host "
                                                    "(127.0.0.1, localhost, [::1])")(scope, receive, send)
        origin = _header(scope, b"origin")
        if origin is not None and origin != "null" and not re.match(LOOPBACK_ORIGINS, origin):
            return await _error(403, "forbidden-origin", "local mode accepts requests only from loopback origins")(
                scope, receive, send)
        await self.app(scope, receive, send)


class JsonGate:
    """JSON POSTs (``/api/v1/check``, ``/cds-services/...``): ``application/json`` or 415; strict JSON
    (``jakinib.jsonio.loads_strict``: no duplicate keys, bounded depth) or 400, before any handler runs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _json_post(scope["path"]):
            return await self.app(scope, receive, send)
        ctype = (_header(scope, b"content-type") or "").partition(";")[0].strip().lower()
        if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
            return await _error(415, "unsupported-media-type", "the request body must be JSON sent as "
                                                               "Content-Type: application/json")(scope, receive, send)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            state = scope.setdefault("state", {})
            state["json_body"], state["json_bytes"] = loads_strict(raw), len(raw)
        except JakinibError as exc:
            return await _error(400, "invalid-json", f"request body: {exc}")(scope, receive, send)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


class Overload:
    """Refuse CDS calls fast (503 with ``Retry-After``) when the service cannot answer in time, instead of
    queueing them into the EHR's time-out.

    A call is refused when ``limit`` calls are already in flight (waiting on the thread pool or a FHIR server), or
    when the calls queued on the event loop are a backlog: more than ``QUEUED`` waiting, or the oldest waiting longer
    than ``max_lag_s``. Calls start ``PER_TURN`` per loop turn, in order of arrival; the others wait in the queue.
    A small call is checked on the loop in one go (``cdshooks.INLINE_MAX_BYTES``), so without the queue one turn ran
    every check whose request had arrived meanwhile (16 and more, 20-40 ms), and the requests that arrived during
    it were read, and refused or answered, only after it. Starting a bounded number per turn keeps every turn short,
    so a call is refused within about a turn of its arrival, and a call that is let in waits about ``max_lag_s``
    at most. A short pause (a busy machine, a slow call) with a few calls behind it is absorbed. ``clock`` is
    injectable (tests)."""

    PER_TURN = 1
    QUEUED = 16  # about 20 ms of order-sign checks at ~1.3 ms each: a burst larger than this is a backlog
    _BODY = json.dumps({"error": {"type": "overloaded", "message": "too many CDS calls in progress; retry shortly"}}).encode()
    REFUSAL_START: ClassVar[dict[str, Any]] = {"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()), (b"retry-after", b"1"),
        *SecurityHeaders.HEADERS]}
    REFUSAL_BODY: ClassVar[dict[str, Any]] = {"type": "http.response.body", "body": _BODY}

    def __init__(self, app: Any, limit: int, max_lag_s: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.app, self.limit, self.max_lag_s, self.clock = app, limit, max_lag_s, clock
        self.in_flight = self.started = 0  # calls started and not finished; calls started in this loop turn
        self.waiting: deque[tuple[asyncio.Future[None], float]] = deque()  # (resolved when it may start, queued at)
        self._turn_scheduled = False

    def _backlog(self) -> bool:
        return len(self.waiting) >= self.QUEUED or (bool(self.waiting) and self.clock() - self.waiting[0][1] > self.max_lag_s)

    def _next_turn(self) -> None:
        """Runs once per loop turn while calls start or wait: lets the next ``PER_TURN`` waiting calls start."""
        self._turn_scheduled, self.started = False, 0
        while self.waiting and self.started < self.PER_TURN:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(None)
                self.started += 1
        if self.started or self.waiting:
            self._schedule_turn()

    def _schedule_turn(self) -> None:
        if not self._turn_scheduled:
            asyncio.get_running_loop().call_soon(self._next_turn)  # runs in the next turn: after the loop polls
            self._turn_scheduled = True

    async def _wait_turn(self) -> None:
        if not self.waiting and self.started < self.PER_TURN:
            self.started += 1
            return self._schedule_turn()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (future, self.clock())
        self.waiting.append(entry)
        self._schedule_turn()
        try:
            await future
        except asyncio.CancelledError:  # the server is stopping
            with contextlib.suppress(ValueError):
                self.waiting.remove(entry)
            raise

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/cds-services/"):
            return await self.app(scope, receive, send)
        if self.in_flight >= self.limit or self._backlog():
            await send(self.REFUSAL_START)  # prebuilt: refusing must cost far less than answering
            return await send(self.REFUSAL_BODY)
        await self._wait_turn()
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class JakinibApp(FastAPI):
    """FastAPI with ``CatchAll`` and then ``Overload`` outside everything else (a refusal does no other work)."""

    def build_middleware_stack(self) -> Any:
        inner = super().build_middleware_stack()
        settings = self.state.settings
        return CatchAll(Overload(inner, limit=settings.cds_concurrency, max_lag_s=settings.cds_max_lag_ms / 1000))


def database_label(url: str) -> str:
    """The database URL for the start-up line, password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def warm_up() -> None:
    """Pay lazy imports at start, not on the first clinical call."""
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "warm-up", "birthDate": "1970-01-01", "gender": "female"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [
            {"system": "http://loinc.org", "code": "718-7"}]}, "valueQuantity": {"value": 13, "unit": "g/dL"}}}]}
    jakinib.check(bundle, drugs=["upadacitinib"])  # the FHIR reader, unit conversion, rules and report
    from jakinib.pharmacology import plots
    from jakinib.pharmacology.simulate import DEFAULT_DRUG, simulate

    plots.concentration_svg(simulate(jakinib.load(), DEFAULT_DRUG, with_curve=True))  # numpy and the simulator (/simulate)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith((*JSON_PREFIXES, "/openapi")) and "text/html" in request.headers.get("accept", "")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings default to the environment (see ``jakinib.web.settings``)."""
    settings = settings or load_settings()
    jakinib.load()  # validate the knowledge base before serving
    store = Store(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up()
        gc.collect()
        gc.freeze()  # the knowledge base and imports live for the whole run: full collections skip them (no 100 ms pauses)
        sys.stderr.write(f"jakinib: database {database_label(settings.database_url)}\n")
        yield
        app.state.store.flush()

    app = JakinibApp(title="jakinib", version=jakinib.__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                     description="The cited reference system for JAK inhibitors: knowledge base, safety checker, CDS Hooks.")
    app.state.settings = settings
    app.state.store = store
    app.state.auth = Authenticator(settings, store)
    if settings.local_mode:
        app.add_middleware(CORSMiddleware, allow_origin_regex=LOOPBACK_ORIGINS, allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])
    else:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(JakinibError)
    async def _jakinib_error(_: Request, exc: JakinibError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=404 if isinstance(exc, UnknownNameError) else 400)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in err.get("loc", ()))
        kind = "invalid-json" if err.get("type") == "json_invalid" else "invalid-request"
        return _error(400 if kind == "invalid-json" else 422, kind, f"{where}: {err.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and _wants_html(request):
            from jakinib.web.pages import render

            return render("error.html", request, message=f"No page at {request.url.path}", status=404)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, kind, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(cdshooks._Unauthorized)
    async def _unauthorized(_: Request, __: Exception) -> Response:
        return Response(status_code=401)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return _error(500, "internal", "internal error")

    import fastapi_offline

    app.mount("/static-docs", StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse((HERE / "templates" / "docs.html").read_text(encoding="utf-8"))

    app.include_router(api.router)
    cdshooks.register(app)
    from jakinib.web import pages

    pages.register(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(JsonGate)
    if settings.local_mode:
        app.add_middleware(LocalGuard)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


ERROR_RESPONSES = {
    "400": "Bad input: malformed or duplicated-key JSON, a bad patient, a bad parameter value",
    "404": "Unknown drug, regulator, indication, source or endpoint",
    "413": "Request body too large",
    "415": "A JSON body sent without Content-Type: application/json",
    "422": "A parameter outside its type or range",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with every error response documented as the ``Error`` body."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            if method == "post" and _json_post(path) and "requestBody" not in op:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "description": "CDS Hooks 2.0 call or feedback body"}}}}
            codes = ["400", "404", "422"] if method == "get" else ["400", "404", "413", "415", "422"]
            if path.startswith("/cds-services/") and method == "post":
                codes += ["412", "503"]
                responses["401"] = {"description": "Missing or invalid JWT (clients configured): empty body"}
                responses["503"] = {"description": "Overloaded: retry after the Retry-After seconds",
                                    "headers": {"Retry-After": {"schema": {"type": "integer"}}}, "content": ref}
            for code in codes:
                if code == "503":
                    continue
                desc = ERROR_RESPONSES.get(code, "Prefetch missing and not fetchable" if code == "412" else "Error")
                responses[code] = {"description": desc, "content": ref}
    app.openapi_schema = doc
    return doc
