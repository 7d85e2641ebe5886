"""Feedback survives `kill -9` of the server mid-stream: every acknowledged record is in the database.

Runs on SQLite always, and on PostgreSQL when JAKINIB_TEST_POSTGRES_URL is set (.ci/run installs and
starts Debian's postgresql and sets it).
"""

from __future__ import annotations

import os
import threading
import uuid

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import Server

PG = os.environ.get("JAKINIB_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG, reason="JAKINIB_TEST_POSTGRES_URL not set"))]


def _db_url(backend: str, tmp_path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    schema_free = create_engine(PG)
    with schema_free.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS feedback"))
        conn.execute(text("DROP TABLE IF EXISTS cards"))
    return PG


@pytest.mark.parametrize("backend", BACKENDS)
def test_acknowledged_feedback_survives_kill_9(backend, tmp_path):
    url = _db_url(backend, tmp_path)
    srv = Server({"JAKINIB_DATABASE_URL": url})
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    kill_after = 60

    def post_stream(worker: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=5) as client:
            while not stop.is_set():
                card = f"w{worker}-{uuid.uuid4()}"
                try:
                    r = client.post("/cds-services/jakinib-order-sign/feedback",
                                    json={"feedback": [{"card": card, "outcome": "accepted"}]})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        acked.append(card)
                        if len(acked) >= kill_after and not stop.is_set():
                            srv.kill9()  # mid-stream: other workers have requests in flight
                            stop.set()

    workers = [threading.Thread(target=post_stream, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert stop.is_set(), "the stream never reached the kill point"
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = {row[0] for row in conn.execute(text("SELECT card FROM feedback"))}
    missing = [c for c in acked if c not in stored]
    assert len(acked) >= kill_after and not missing, f"{len(missing)} acknowledged records lost"
