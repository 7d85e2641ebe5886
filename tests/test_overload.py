"""Overload: CDS calls start one per loop turn in order of arrival; a backlog (a full queue, or calls waiting past
max_lag) is refused at once with 503, one late call is not; small CDS calls are checked on the loop and large ones in
the thread pool, so a big body never holds up other requests. Deterministic: a fake clock and a loop-turn counter."""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from jakinib.web import cdshooks
from jakinib.web.app import Overload, create_app
from jakinib.web.settings import Settings

ORDER_SIGN = json.loads((Path(__file__).parent / "fixtures" / "cds" / "order-sign-upadacitinib.json").read_text())
CDS = {"type": "http", "method": "POST", "path": "/cds-services/jakinib-order-sign", "headers": []}


class Clock:
    """A fake clock: time moves only when a test moves it (no test here depends on real timing)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Checks:
    """An inner app that records, per call, the loop turn it started in (a turn counter ticks once per loop turn)."""

    def __init__(self, cost_s: float = 0.0, clock: Clock | None = None, hold: asyncio.Event | None = None) -> None:
        self.started: list[tuple[int, int]] = []  # (call number, turn)
        self.turn, self.cost_s, self.clock, self.hold = 0, cost_s, clock, hold

    def tick(self) -> None:
        self.turn += 1
        asyncio.get_running_loop().call_soon(self.tick)

    async def __call__(self, scope, receive, send) -> None:
        self.started.append((scope["n"], self.turn))
        if self.clock is not None:
            self.clock.now += self.cost_s  # a check of cost_s on the loop
        if self.hold is not None:
            await self.hold.wait()  # waiting on the thread pool or a FHIR server
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def _status(app, n: int = 0, log: list | None = None) -> int:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if log is not None and message["type"] == "http.response.start":
            log.append((n, message["status"]))

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    await app({**CDS, "n": n}, receive, send)
    return sent[0]["status"]


def _run(coro):
    return asyncio.run(coro)


def _guard(app, clock: Clock | None = None, limit: int = 4) -> Overload:
    return Overload(app, limit=limit, max_lag_s=0.02, clock=clock or Clock())


def test_a_burst_is_served_one_call_per_loop_turn_and_past_the_queue_refused_at_once():
    n = Overload.PER_TURN + Overload.QUEUED + 5
    log: list[tuple[int, int]] = []

    async def main() -> Checks:
        checks = Checks()
        guard = _guard(checks)
        checks.tick()
        await asyncio.gather(*[_status(guard, i, log) for i in range(n)])  # all arrive in the same loop turn
        return checks

    checks = _run(main())
    served = Overload.PER_TURN + Overload.QUEUED
    assert [i for i, _ in checks.started] == list(range(served))  # in order of arrival
    assert max(Counter(t for _, t in checks.started).values()) == Overload.PER_TURN  # never more in one turn
    assert dict(log) == {i: 200 if i < served else 503 for i in range(n)}
    refused_at = max(k for k, (_, status) in enumerate(log) if status == 503)
    assert refused_at < [i for i, _ in log].index(1)  # every refusal answered before the second call even started


def test_calls_waiting_longer_than_max_lag_are_a_backlog_and_a_new_call_is_refused():
    clock = Clock()

    async def main() -> tuple[list[int], int, int, int]:
        guard = _guard(Checks(), clock)
        first = [asyncio.create_task(_status(guard, i)) for i in range(4)]  # one starts, three wait
        await asyncio.sleep(0)
        assert len(guard.waiting) == 3
        young = asyncio.create_task(_status(guard, 10))  # the oldest has waited 0 ms: queued, served in its turn
        await asyncio.sleep(0)
        assert guard.waiting  # one more started meanwhile, the young call waits
        clock.now += 0.021  # the loop is held past max_lag with calls still waiting
        late = await _status(guard, 11)
        statuses = [await t for t in first]
        return statuses, await young, late, await _status(guard, 12)

    statuses, young, late, after = _run(main())
    assert statuses == [200] * 4 and young == 200
    assert late == 503
    assert after == 200  # the backlog cleared: served again


def test_one_late_call_on_a_busy_machine_is_served():
    clock = Clock()

    async def main() -> list[int]:
        guard = _guard(Checks(), clock)
        out = []
        for i in range(3):  # each call alone in its loop turn, however late
            clock.now += 1.0
            out.append(await _status(guard, i))
            await asyncio.sleep(0)
        return out

    assert _run(main()) == [200, 200, 200]


def test_slow_checks_fill_the_queue_past_max_lag_then_calls_are_refused_until_it_drains():
    clock = Clock()

    async def main() -> tuple[list[int], Checks]:
        checks = Checks(cost_s=0.008, clock=clock)  # 8 ms of CPU per check: the third waiting call is past 20 ms
        guard = _guard(checks, clock)
        arrivals: list[asyncio.Task[int]] = []
        for i in range(0, 20, 2):  # two new calls per loop turn: faster than one check per turn
            arrivals += [asyncio.create_task(_status(guard, i)), asyncio.create_task(_status(guard, i + 1))]
            await asyncio.sleep(0)
        statuses = [await t for t in arrivals]
        return [*statuses, await _status(guard, 99)], checks

    statuses, checks = _run(main())
    assert statuses[:4] == [200] * 4 and 503 in statuses
    assert len(checks.started) == statuses.count(200)  # a refused call never reached the app
    assert statuses[-1] == 200  # drained: served again


def test_calls_in_flight_up_to_the_limit_then_refused_and_served_again_after():
    async def main() -> tuple[int, int, list[int]]:
        hold = asyncio.Event()
        guard = _guard(Checks(hold=hold), limit=2)
        waiting = [asyncio.create_task(_status(guard, i)) for i in range(2)]
        while guard.in_flight < 2:
            await asyncio.sleep(0)
        refused = await _status(guard, 2)
        hold.set()
        done = [await t for t in waiting]
        return refused, await _status(guard, 3), done

    refused, after, done = _run(main())
    assert refused == 503 and after == 200 and done == [200, 200]


def test_a_call_cancelled_while_waiting_leaves_the_queue():
    async def main() -> tuple[int, int]:
        guard = _guard(Checks())
        tasks = [asyncio.create_task(_status(guard, i)) for i in range(3)]
        await asyncio.sleep(0)
        assert len(guard.waiting) == 2
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(guard.waiting), await _status(guard, 9)

    assert _run(main()) == (0, 200)


def test_other_requests_pass_through_untouched():
    async def main() -> int:
        guard = _guard(Checks())
        for _ in range(Overload.QUEUED + 2):
            guard.waiting.append((asyncio.get_running_loop().create_future(), -1.0))  # a backlog, as old as it gets
        sent: list[dict] = []

        async def send(m: dict) -> None:
            sent.append(m)

        await guard({"type": "http", "method": "GET", "path": "/api/v1/health", "headers": [], "n": 0}, None, send)
        return sent[0]["status"]

    assert _run(main()) == 200


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
