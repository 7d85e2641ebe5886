"""Durable storage for CDS Hooks cards issued and feedback received (SQLAlchemy: SQLite or PostgreSQL).

No patient data is stored: a card row holds its uuid, service, drug, indicator and rule ids;
a feedback row holds the outcome and override reason; a ``jti`` row remembers a CDS Hooks token id
until the token expires (replays are refused across restarts). A write is acknowledged only after commit.
Values are checked for type and length here, before they reach SQL: a wrong one is an ``InputError``.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, create_engine, delete, event, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from jakinib.errors import InputError

log = logging.getLogger("jakinib.web")
QUEUE_BATCHES = 10_000  # card batches waiting for the writer; past this, card rows are dropped and counted
WRITE_EVERY_S = 0.25  # the card writer commits at most this often: one transaction (one fsync) for all rows queued meanwhile


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


class SeenToken(Base):
    __tablename__ = "seen_tokens"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of issuer and jti
    exp: Mapped[float] = mapped_column(Float, index=True)


class Store:
    """The feedback and card store. ``Store("sqlite:///x.db")`` creates tables if needed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dropped_cards = 0
        self._writer: threading.Thread | None = None
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=QUEUE_BATCHES)
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
        with self.engine.begin() as conn:  # Core executemany: no ORM unit of work per row
            conn.execute(insert(CardRecord.__table__), [{**r, "created_at": now} for r in rows])

    def add_cards_later(self, rows: list[dict[str, Any]]) -> None:
        """Queue card records for a background writer that commits them in batches.

        Cards are audit metadata, not acknowledgements: keeping their fsync off the request path keeps
        CDS latency low. A hard crash can lose the last batch of card rows, never acknowledged feedback.
        """
        if not rows:
            return
        self._ensure_writer()
        try:
            self._queue.put_nowait(rows)
        except queue.Full:
            self.dropped_cards += len(rows)
            log.warning("card audit queue full: %d card rows dropped so far", self.dropped_cards)

    def _ensure_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._drain, name="jakinib-card-writer", daemon=True)
            self._writer.start()

    def _drain(self) -> None:
        done = False
        while not done:
            batch = self._queue.get()
            done = batch is None
            if not done:  # gather what arrives in the next moment: one commit per WRITE_EVERY_S, not one per call
                time.sleep(WRITE_EVERY_S)
            batch = list(batch or [])
            while not done and len(batch) < 5_000:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                done = more is None
                batch += more or []
            try:
                self.add_cards(batch)
            except Exception as exc:  # the audit writer must outlive a failed batch; no row data in the log
                log.error("card audit write failed (%d rows): %s", len(batch), type(exc).__name__)

    def flush(self) -> None:
        """Write queued card rows and stop the background writer (at shutdown and in tests)."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=30)
            self._writer = None

    def remember_token(self, issuer: str, jti: str, exp: float, now: float) -> bool:
        """Record a token id until ``exp``; False when it was already seen (a replay). Expired ids are pruned."""
        import hashlib

        key = hashlib.sha256(f"{issuer}\x00{jti}".encode("utf-8", "surrogatepass")).hexdigest()
        with Session(self.engine) as s:
            try:
                with s.begin():
                    s.execute(delete(SeenToken).where(SeenToken.exp < now))
                    s.add(SeenToken(key=key, exp=exp))
            except IntegrityError:
                return False
        return True

    def add_feedback(self, service: str, items: list[dict[str, Any]], tenant: str | None) -> int:
        """Store feedback items in one transaction; returns how many were committed."""
        now = dt.datetime.now(dt.UTC)
        records = [_feedback_record(i, it, service, tenant, now) for i, it in enumerate(items)]
        with Session(self.engine) as s, s.begin():
            s.add_all(records)
        return len(records)

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


def _text(value: Any, where: str, limit: int, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InputError(f"{where}: expected {'a non-empty' if required else 'a'} string")
    if len(value) > limit:
        raise InputError(f"{where}: longer than {limit} characters")
    if any(0xD800 <= ord(c) <= 0xDFFF or c == "\x00" for c in value):
        raise InputError(f"{where}: contains a NUL or an unpaired surrogate")
    return value


def _feedback_record(i: int, it: Any, service: str, tenant: str | None, now: dt.datetime) -> FeedbackRecord:
    """One feedback item (CDS Hooks 2.0 §feedback) checked field by field before it reaches SQL."""
    at = f"feedback[{i}]"
    if not isinstance(it, dict):
        raise InputError(f"{at}: expected an object")
    outcome = _text(it.get("outcome"), f"{at}.outcome", 20, required=True)
    if outcome not in ("accepted", "overridden"):
        raise InputError(f"{at}.outcome: expected 'accepted' or 'overridden'")
    override = it.get("overrideReason")
    if override is not None and not isinstance(override, dict):
        raise InputError(f"{at}.overrideReason: expected an object")
    reason = (override or {}).get("reason")
    if reason is not None and not isinstance(reason, dict):
        raise InputError(f"{at}.overrideReason.reason: expected a Coding object")
    reason = reason or {}
    accepted = it.get("acceptedSuggestions")
    if accepted is not None and not (isinstance(accepted, list) and len(accepted) <= 100 and all(
            isinstance(a, dict) and isinstance(a.get("id"), str) and len(a["id"]) <= 100 for a in accepted)):
        raise InputError(f"{at}.acceptedSuggestions: expected a list of objects with a string 'id' (at most 100)")
    stamp = _text(it.get("outcomeTimestamp"), f"{at}.outcomeTimestamp", 40)
    if stamp is not None:
        try:
            dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{at}.outcomeTimestamp: expected an ISO 8601 date-time") from None
    return FeedbackRecord(
        service=service, card=_text(it.get("card"), f"{at}.card", 64, required=True), outcome=outcome,
        override_code=_text(reason.get("code"), f"{at}.overrideReason.reason.code", 100),
        override_display=_text(reason.get("display"), f"{at}.overrideReason.reason.display", 300),
        accepted_suggestions=[{"id": a["id"]} for a in accepted or []],
        outcome_timestamp=stamp, tenant=tenant, received_at=now)


def _sqlite_durable(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()
