"""The FastAPI application: JSON API, CDS Hooks service and pages, with one error policy.

Errors: a ``JakinibError`` becomes a 4xx JSON body ``{"error": {"type", "message"}}``; an
authentication failure a bare 401; an oversized body 413. Request logs carry method, path
template and status only: never a JWT, an access token or patient data.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

import jakinib
from jakinib.errors import JakinibError, UnknownNameError, error_body
from jakinib.web import api, cdshooks
from jakinib.web.security import Authenticator
from jakinib.web.settings import Settings, load_settings
from jakinib.web.store import Store

log = logging.getLogger("jakinib.web")


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
    resp = JSONResponse({"error": {"type": "too-large", "message": f"request body over {limit} bytes"}}, 413)
    await resp(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings default to the environment (see ``jakinib.web.settings``)."""
    settings = settings or load_settings()
    jakinib.load()  # validate the knowledge base before serving
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.store.flush()

    app = FastAPI(title="jakinib", version=jakinib.__version__, lifespan=lifespan,
                  description="The cited reference system for JAK inhibitors: knowledge base, safety checker, CDS Hooks.")
    app.state.settings = settings
    app.state.store = Store(settings.database_url)
    app.state.auth = Authenticator(settings)
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "OPTIONS"],
                       allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(JakinibError)
    async def _jakinib_error(_: Request, exc: JakinibError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=404 if isinstance(exc, UnknownNameError) else 400)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in err.get("loc", ()))
        return JSONResponse({"error": {"type": "invalid-request", "message": f"{where}: {err.get('msg')}"}}, 422)

    @app.exception_handler(cdshooks._Unauthorized)
    async def _unauthorized(_: Request, __: Exception) -> Response:
        return Response(status_code=401)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return JSONResponse({"error": {"type": "internal", "message": "internal error"}}, 500)

    app.include_router(api.router)
    cdshooks.register(app)
    from jakinib.web import pages

    pages.register(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
