"""Durable storage for CDS Hooks cards issued and feedback received (SQLAlchemy: SQLite or PostgreSQL).

No patient data is stored: a card row holds its uuid, service, drug, indicator and rule ids;
a feedback row holds the outcome and override reason. A write is acknowledged only after commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class CardRecord(Base):
    __tablename__ = "cards"
    uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(100))
    drug: Mapped[str] = mapped_column(String(60))
    indicator: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(30))
    rules: Mapped[list[str]] = mapped_column(JSON)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class FeedbackRecord(Base):
    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(100))
    card: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    override_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    override_display: Mapped[str | None] = mapped_column(String(300), nullable=True)
    accepted_suggestions: Mapped[list[Any]] = mapped_column(JSON)
    outcome_timestamp: Mapped[str | None] = mapped_column(String(40), nullable=True)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Store:
    """The feedback and card store. ``Store("sqlite:///x.db")`` creates tables if needed."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_durable)
        Base.metadata.create_all(self.engine)

    def add_cards(self, rows: list[dict[str, Any]]) -> None:
        """Record issued cards now (one transaction)."""
        if not rows:
            return
        now = dt.datetime.now(dt.UTC)
        with Session(self.engine) as s, s.begin():
            for r in rows:
                s.merge(CardRecord(created_at=now, **r))

    def add_cards_later(self, rows: list[dict[str, Any]]) -> None:
        """Queue card records for a background writer that commits them in batches.

        Cards are audit metadata, not acknowledgements: keeping their fsync off the request path keeps
        CDS latency low. A hard crash can lose the last batch of card rows, never acknowledged feedback.
        """
        if rows:
            self._ensure_writer()
            self._queue.put(rows)

    def _ensure_writer(self) -> None:
        if getattr(self, "_writer", None) is None:
            import queue
            import threading

            self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
            self._writer = threading.Thread(target=self._drain, name="jakinib-card-writer", daemon=True)
            self._writer.start()

    def _drain(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            while not self._queue.empty():
                more = self._queue.get()
                if more is None:
                    self.add_cards(batch)
                    return
                batch = batch + more
            self.add_cards(batch)

    def flush(self) -> None:
        """Write queued card rows and stop the background writer (at shutdown and in tests)."""
        if getattr(self, "_writer", None) is not None:
            self._queue.put(None)
            self._writer.join(timeout=30)
            self._writer = None

    def add_feedback(self, service: str, items: list[dict[str, Any]], tenant: str | None) -> int:
        """Store feedback items in one transaction; returns how many were committed."""
        now = dt.datetime.now(dt.UTC)
        with Session(self.engine) as s, s.begin():
            for it in items:
                reason = (it.get("overrideReason") or {}).get("reason") or {}
                s.add(FeedbackRecord(
                    service=service, card=str(it["card"]), outcome=str(it["outcome"]),
                    override_code=reason.get("code"), override_display=reason.get("display"),
                    accepted_suggestions=list(it.get("acceptedSuggestions") or []),
                    outcome_timestamp=it.get("outcomeTimestamp"), tenant=tenant, received_at=now))
        return len(items)

    def summary(self) -> list[dict[str, Any]]:
        """Acceptance and override reasons per card type (indicator and drug)."""
        with Session(self.engine) as s:
            q = (select(CardRecord.indicator, CardRecord.drug, FeedbackRecord.outcome, FeedbackRecord.override_display,
                        func.count())
                 .select_from(FeedbackRecord)
                 .join(CardRecord, CardRecord.uuid == FeedbackRecord.card, isouter=True)
                 .group_by(CardRecord.indicator, CardRecord.drug, FeedbackRecord.outcome, FeedbackRecord.override_display))
            rows: dict[tuple[str, str], dict[str, Any]] = {}
            for indicator, drug, outcome, reason, n in s.execute(q):
                key = (indicator or "unknown-card", drug or "unknown")
                row = rows.setdefault(key, {"indicator": key[0], "drug": key[1], "accepted": 0, "overridden": 0,
                                            "override_reasons": {}})
                if outcome == "accepted":
                    row["accepted"] += n
                else:
                    row["overridden"] += n
                    if reason:
                        row["override_reasons"][reason] = row["override_reasons"].get(reason, 0) + n
            return sorted(rows.values(), key=lambda r: (r["indicator"], r["drug"]))


def _sqlite_durable(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()
