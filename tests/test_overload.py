"""Overload: a backlog on the event loop is refused fast (503), one late call is not; small CDS calls are checked on the
loop and large ones in the thread pool, so a big body never holds up other requests."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path

import httpx
import pytest

from jakinib.web import cdshooks
from jakinib.web.app import Overload, create_app
from jakinib.web.settings import Settings

ORDER_SIGN = json.loads((Path(__file__).parent / "fixtures" / "cds" / "order-sign-upadacitinib.json").read_text())
CDS = {"type": "http", "method": "POST", "path": "/cds-services/jakinib-order-sign", "headers": []}


async def _ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _status(app) -> int:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    await app(dict(CDS), receive, send)
    return sent[0]["status"]


def _run(coro):
    return asyncio.run(coro)


def test_a_backlog_on_the_loop_is_refused_with_503_but_its_first_calls_are_served():
    async def main() -> list[int]:
        guard = Overload(_ok, limit=4, max_lag_s=0.02)
        assert await _status(guard) == 200  # starts the heartbeat
        await asyncio.sleep(0.03)  # it beats
        time.sleep(0.08)  # the loop is held well past max_lag: calls pile up behind it
        return [await _status(guard) for _ in range(Overload.QUEUED + 3)]

    statuses = _run(main())
    assert statuses[: Overload.QUEUED] == [200] * Overload.QUEUED
    assert set(statuses[Overload.QUEUED:]) == {503}


def test_one_late_call_on_a_busy_machine_is_served():
    async def main() -> list[int]:
        guard = Overload(_ok, limit=4, max_lag_s=0.02)
        out = [await _status(guard)]
        for _ in range(3):  # each call alone in its loop turn, however late
            await asyncio.sleep(0.02)
            time.sleep(0.05)
            out.append(await _status(guard))
        return out

    assert _run(main()) == [200, 200, 200, 200]


def test_the_backlog_clears_once_the_heartbeat_runs_again():
    async def main() -> list[int]:
        guard = Overload(_ok, limit=4, max_lag_s=0.02)
        await _status(guard)
        await asyncio.sleep(0.03)
        time.sleep(0.08)
        late = [await _status(guard) for _ in range(Overload.QUEUED + 2)]
        await asyncio.sleep(0.03)  # the loop is free again
        return [*late, await _status(guard)]

    statuses = _run(main())
    assert statuses[-2] == 503 and statuses[-1] == 200


@pytest.mark.parametrize("observations, threaded", [(0, False), (800, True)])
def test_small_calls_are_checked_on_the_loop_and_large_ones_in_the_thread_pool(tmp_path, monkeypatch, observations, threaded):
    calls: list[str] = []
    real = cdshooks.run_in_threadpool

    async def recording(fn, *args, **kwargs):
        calls.append(fn.__name__)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(cdshooks, "run_in_threadpool", recording)
    body = copy.deepcopy(ORDER_SIGN)
    entries = body["prefetch"]["observations"].setdefault("entry", [])
    for i in range(observations):  # a large prefetch: many old haemoglobin results
        entries.append({"resource": {"resourceType": "Observation", "id": f"hb{i}", "status": "final",
                                     "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                                     "effectiveDateTime": f"20{10 + i % 10}-01-01", "valueQuantity": {"value": 13, "unit": "g/dL"}}})
    raw = json.dumps(body).encode()
    assert (len(raw) > cdshooks.INLINE_MAX_BYTES) is threaded
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}"))

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            return await client.post("/cds-services/jakinib-order-sign", content=raw, headers={"content-type": "application/json"})

    r = _run(main())
    assert r.status_code == 200 and r.json()["cards"], r.text
    assert calls == (["read_call", "assess_call"] if threaded else [])
