"""Conversation storage (SQLAlchemy 2): conversation state, an append-only event log,
processed message ids (so a repeat is answered once), unanswered questions, ratings."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from assistant.model import Conversation, Reply
from knowledge.db import migrate as migrate_package
from knowledge.models import NAMING

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_assistant"


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ConversationRow(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(20), index=True)
    current: Mapped[str | None] = mapped_column(String(80))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    # sha256 (hex) of the capability the citizen's client holds; never the token itself.
    # None: nobody opens the conversation by id (webhook senders, pre-token rows).
    token_hash: Mapped[str | None] = mapped_column(String(64))


class EventRow(Base):
    """Append-only: a conversation's transcript and audit trail."""

    __tablename__ = "conversation_events"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(30))  # user | bot | mode | rating | unanswered
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    message_id: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ProcessedRow(Base):
    """A message id already handled, and the replies it got (returned again on a repeat)."""

    __tablename__ = "processed_messages"
    conversation_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    replies: Mapped[list[Any]] = mapped_column(JSON)


class UnansweredRow(Base):
    """Questions daoban could not answer: the guide editors' work list."""

    __tablename__ = "unanswered_questions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(160), index=True)
    text: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(30))  # no_match | out_of_scope
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class RatingRow(Base):
    """好差评: 1 (非常不满意) … 5 (非常满意), against the conversation and the item."""

    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(160), index=True)
    entry_id: Mapped[str | None] = mapped_column(String(80), index=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10), default="bot")  # bot | agent
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


@dataclass(frozen=True)
class Event:
    type: str
    payload: dict[str, Any]


def migrate(engine: Engine) -> None:
    migrate_package(engine, MIGRATIONS)


class SqlConversationStore:
    """Synchronous on purpose: the assistant calls it from a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time and its busy handler sleeps in coarse steps:
        # queueing writers here instead keeps the tail latency low. PostgreSQL needs none.
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @contextmanager
    def exclusive(self, conversation_id: str) -> Iterator[None]:
        """Across server processes, one load → change → save of a conversation at a time
        (a citizen message on one process, an agent's claim on another). PostgreSQL: an
        advisory lock; SQLite is one process, whose per-conversation asyncio lock suffices."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        digest = hashlib.blake2b(conversation_id.encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        with self.engine.connect() as c:
            c.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            c.commit()
            try:
                yield
            finally:
                c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                c.commit()

    def create(self, conversation: Conversation, *, token_hash: str | None = None) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(
                ConversationRow(
                    id=conversation.id,
                    channel=conversation.channel,
                    mode=conversation.mode.value,
                    current=conversation.current,
                    state=conversation.to_state(),
                    token_hash=token_hash,
                )
            )

    def token_hash(self, conversation_id: str) -> str | None:
        """The stored capability hash; None for no such conversation or one without."""
        t = ConversationRow.__table__
        with self.engine.connect() as c:
            found: str | None = c.execute(
                select(t.c.token_hash).where(t.c.id == conversation_id)).scalar()
        return found

    # The hot path (every message) uses SQLAlchemy Core: the ORM's unit of work cost more
    # than the SQL itself (benchmarks/load_ws.py).

    def load(self, conversation_id: str) -> Conversation | None:
        t = ConversationRow.__table__
        with self.engine.connect() as c:
            state = c.execute(select(t.c.state).where(t.c.id == conversation_id)).scalar()
        return None if state is None else Conversation.from_state(conversation_id, state)

    def processed(self, conversation_id: str, message_id: str) -> list[Reply] | None:
        t = ProcessedRow.__table__
        with self.engine.connect() as c:
            replies = c.execute(
                select(t.c.replies).where(
                    t.c.conversation_id == conversation_id, t.c.message_id == message_id
                )
            ).scalar()
        return None if replies is None else [Reply.from_dict(r) for r in replies]

    def save(
        self,
        conversation: Conversation,
        events: Sequence[Event],
        *,
        message_id: str | None = None,
        replies: Sequence[Reply] = (),
        unanswered: Sequence[tuple[str, str, str]] = (),
        ratings: Sequence[tuple[str | None, int, str | None]] = (),
        comment: str | None = None,
    ) -> list[dict[str, Any]]:
        """State, events, the processed id and side records in one transaction. Returns
        the appended events as ``events_after`` would."""
        now = _now()
        values = {"mode": conversation.mode.value, "current": conversation.current,
                  "state": conversation.to_state(), "updated_at": now}
        with self._write_lock, self.engine.begin() as c:
            done = c.execute(
                update(ConversationRow).where(ConversationRow.id == conversation.id).values(**values)
            ).rowcount
            if not done:
                c.execute(insert(ConversationRow).values(id=conversation.id,
                                                 channel=conversation.channel,
                                                 created_at=now, **values))
            seq = c.execute(
                select(func.coalesce(func.max(EventRow.seq), 0)).where(
                    EventRow.conversation_id == conversation.id
                )
            ).scalar() or 0
            rows: list[dict[str, Any]] = [
                {"conversation_id": conversation.id, "seq": seq + i, "type": e.type,
                 "payload": e.payload, "message_id": message_id, "created_at": now}
                for i, e in enumerate(events, 1)
            ]
            if rows:
                c.execute(insert(EventRow), rows)
            if message_id is not None:
                c.execute(insert(ProcessedRow).values(
                    conversation_id=conversation.id, message_id=message_id,
                    replies=[r.as_dict() for r in replies]))
            if unanswered:
                c.execute(insert(UnansweredRow), [
                    {"conversation_id": conversation.id, "text": text, "normalized": norm,
                     "reason": reason, "created_at": now}
                    for text, norm, reason in unanswered
                ])
            if ratings:
                c.execute(insert(RatingRow), [
                    {"conversation_id": conversation.id, "entry_id": entry, "score": score,
                     "comment": note, "created_at": now,
                     # the agent desk asks for the human session's rating as "agent:<id>"
                     "kind": "agent" if (entry or "").startswith("agent:") else "bot"}
                    for entry, score, note in ratings
                ])
            if comment is not None:
                last = c.execute(
                    select(func.max(RatingRow.id)).where(
                        RatingRow.conversation_id == conversation.id
                    )
                ).scalar()
                if last is not None:
                    c.execute(update(RatingRow).where(RatingRow.id == last).values(comment=comment))
        return [
            {"seq": r["seq"], "type": r["type"], "at": now.isoformat(),
             "message_id": message_id, **r["payload"]}
            for r in rows
        ]

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.scalars(
                select(EventRow)
                .where(EventRow.conversation_id == conversation_id)
                .order_by(EventRow.seq)
            )
            return [
                {"seq": r.seq, "type": r.type, "at": r.created_at.isoformat(), **r.payload}
                for r in rows
            ]

    def events_after(
        self, conversation_id: str, seq: int, types: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Events (of the given types, or all) with a sequence number above ``seq``."""
        with Session(self.engine) as s:
            q = select(EventRow).where(
                EventRow.conversation_id == conversation_id, EventRow.seq > seq
            )
            if types is not None:
                q = q.where(EventRow.type.in_(list(types)))
            rows = s.scalars(q.order_by(EventRow.seq))
            return [
                {"seq": r.seq, "type": r.type, "at": r.created_at.isoformat(),
                 "message_id": r.message_id, **r.payload}
                for r in rows
            ]

    def last_seq(self, conversation_id: str) -> int:
        with Session(self.engine) as s:
            return int(
                s.scalar(
                    select(func.coalesce(func.max(EventRow.seq), 0)).where(
                        EventRow.conversation_id == conversation_id
                    )
                )
                or 0
            )

    def unanswered(self, limit: int = 100) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.scalars(select(UnansweredRow).order_by(UnansweredRow.id.desc()).limit(limit))
            return [{"text": r.text, "reason": r.reason, "conversation_id": r.conversation_id}
                    for r in rows]

    def ratings(self, conversation_id: str) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.scalars(select(RatingRow).where(RatingRow.conversation_id == conversation_id))
            return [{"entry_id": r.entry_id, "score": r.score, "comment": r.comment}
                    for r in rows]

