"""Server-rendered pages (Jinja2)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse


def register(app: Any) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>jakinib</title></head><body>"
                "<h1>jakinib</h1><p>The cited reference system for JAK inhibitors.</p><ul>"
                "<li><a href=/api/v1/drugs>Drugs (JSON)</a></li><li><a href=/docs>API documentation</a></li>"
                "<li><a href=/cds-services>CDS Hooks discovery</a></li></ul></body></html>")
