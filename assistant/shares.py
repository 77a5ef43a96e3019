"""Shared checklists: a read-only copy of one checklist behind an unguessable token,
kept for 30 days. The row holds the checklist snapshot only (see assistant.checklist):
no conversation id, nothing else about the citizen."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from assistant.store import Base

KEEP = timedelta(days=30)


class ChecklistShareRow(Base):
    __tablename__ = "checklist_shares"
    token: Mapped[str] = mapped_column(String(43), primary_key=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class Share:
    token: str
    expires_at: datetime


def _utc(t: datetime) -> datetime:
    # SQLite hands back naive datetimes; every one stored here is UTC.
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def create_share(engine: Engine, snapshot: dict[str, Any], *, now: datetime | None = None) -> Share:
    """Store ``snapshot`` under a fresh token (and drop shares that have expired)."""
    now = now or datetime.now(UTC)
    share = Share(secrets.token_urlsafe(16), now + KEEP)
    with Session(engine) as s, s.begin():
        s.execute(delete(ChecklistShareRow).where(ChecklistShareRow.expires_at < now))
        s.add(ChecklistShareRow(token=share.token, snapshot=snapshot, created_at=now,
                                expires_at=share.expires_at))
    return share


def load_share(engine: Engine, token: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The snapshot behind ``token``, or None when unknown or expired (the same answer)."""
    now = now or datetime.now(UTC)
    with Session(engine) as s:
        row = s.execute(select(ChecklistShareRow).where(ChecklistShareRow.token == token)).scalar()
        if row is None or _utc(row.expires_at) <= now:
            return None
        return {**row.snapshot, "expires_at": _utc(row.expires_at).isoformat()}
