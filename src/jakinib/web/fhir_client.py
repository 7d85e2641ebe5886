"""Outbound FHIR reads for CDS Hooks prefetch the EHR did not send, under one total deadline.

Each prefetch query is one GET on ``fhirServer`` with the EHR's bearer token. All queries run
concurrently on an ``httpx.AsyncClient`` and the whole fetch ends at ``deadline`` seconds, however
the server behaves (a server that trickles one byte every few seconds defeats a per-read timeout,
not a total one). A query that fails or misses the deadline is reported by key with its reason,
never dropped silently; bodies are capped at ``MAX_RESPONSE_BYTES`` and parsed strictly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from jakinib.errors import InputError

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""Largest FHIR search result read (a patient's 100 newest Observations are far below this)."""


@dataclass
class FetchResult:
    """What came back: the payload per prefetch key, and why each missing key is missing."""

    payloads: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


class _Failed(Exception):
    pass


async def _get(client: Any, url: str) -> Any:
    import httpx

    from jakinib.jsonio import loads_strict

    try:
        async with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise _Failed(f"the FHIR server answered HTTP {resp.status_code}")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise _Failed(f"the FHIR server's answer is larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MB")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise _Failed(f"the FHIR server could not be read ({type(exc).__name__})") from None
    try:
        return loads_strict(b"".join(chunks))
    except InputError as exc:
        raise _Failed(f"the FHIR server's answer is not valid JSON ({exc})") from None


async def fetch(server: str, token: str | None, queries: dict[str, str], deadline: float) -> FetchResult:
    """GET every ``queries[key]`` (a path relative to ``server``) concurrently; stop at ``deadline`` seconds."""
    import httpx

    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    result = FetchResult()
    async with httpx.AsyncClient(base_url=server.rstrip("/") + "/", headers=headers, timeout=deadline,
                                 follow_redirects=False) as client:
        tasks = {key: asyncio.ensure_future(_get(client, path)) for key, path in queries.items()}
        _done, pending = await asyncio.wait(tasks.values(), timeout=deadline)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    for key, task in tasks.items():
        if task in pending:
            result.failures[key] = f"the FHIR server did not answer within {deadline:g} s"
        elif isinstance(task.exception(), _Failed):
            result.failures[key] = str(task.exception())
        elif task.exception() is not None:
            result.failures[key] = f"the FHIR server could not be read ({type(task.exception()).__name__})"
        else:
            result.payloads[key] = task.result()
    return result
