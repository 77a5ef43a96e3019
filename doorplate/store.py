"""The doorplate tables: signing-key history, the plate revocation list and scan/message
statistics. Own Alembic version table, as every package that owns tables."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Engine, Integer, MetaData, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from knowledge.db import migrate as migrate_package
from knowledge.models import NAMING

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_doorplate"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class KeyRow(Base):
    __tablename__ = "doorplate_keys"
    kid: Mapped[str] = mapped_column(String(16), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When another key became current: tokens of this key are accepted for the grace
    # period after it, so plates need not all be reprinted on the day of a rotation.
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RevocationRow(Base):
    __tablename__ = "doorplate_revocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    place_id: Mapped[str] = mapped_column(String(80), index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)


class HitRow(Base):
    __tablename__ = "doorplate_hits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    place_id: Mapped[str] = mapped_column(String(80), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # scan | message
    day: Mapped[str] = mapped_column(String(10), index=True)  # YYYY-MM-DD (UTC+8)
    text: Mapped[str | None] = mapped_column(Text)
    entry_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def migrate(engine: Engine) -> None:
    migrate_package(engine, MIGRATIONS)


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone=True columns.
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


@dataclass
class PlaceCounts:
    scans: int = 0
    messages: int = 0
    questions: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)


class SqlDoorplateStore:
    """Synchronous: callers run it in a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- keys ---
    def sync_keys(self, kids: list[str], now: datetime) -> dict[str, datetime | None]:
        """Record the configured keys (first = current); returns kid → retired_at."""
        with Session(self.engine) as s, s.begin():
            rows = {r.kid: r for r in s.scalars(select(KeyRow))}
            for i, kid in enumerate(kids):
                row = rows.get(kid)
                if row is None:
                    row = rows[kid] = KeyRow(kid=kid, first_seen=now, retired_at=None)
                    s.add(row)
                if i == 0:
                    row.retired_at = None
                elif row.retired_at is None:
                    row.retired_at = now
            return {k: _aware(r.retired_at) for k, r in rows.items()}

    # --- revocation ---
    def revoke(self, place_id: str, now: datetime, reason: str | None = None) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(RevocationRow(place_id=place_id, revoked_at=now, reason=reason))

    def revoked_at(self, place_id: str) -> datetime | None:
        """The latest revocation of the place: plates issued before it are refused."""
        with Session(self.engine) as s:
            rows = s.scalars(select(RevocationRow.revoked_at)
                             .where(RevocationRow.place_id == place_id)).all()
        return max((r.replace(tzinfo=UTC) if r.tzinfo is None else r for r in rows),
                   default=None)

    # --- statistics ---
    def record(self, place_id: str, kind: str, now: datetime, day: str,
               text: str | None = None, entry_id: str | None = None) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(HitRow(place_id=place_id, kind=kind, day=day, text=text and text[:500],
                         entry_id=entry_id, created_at=now))

    def counts(self) -> tuple[dict[str, PlaceCounts], Counter[tuple[str, str]]]:
        """Per place counts, and scans per (place, day)."""
        per: dict[str, PlaceCounts] = {}
        days: Counter[tuple[str, str]] = Counter()
        with Session(self.engine) as s:
            for place_id, kind, day, text, entry_id in s.execute(
                select(HitRow.place_id, HitRow.kind, HitRow.day, HitRow.text, HitRow.entry_id)
            ):
                c = per.setdefault(place_id, PlaceCounts())
                if kind == "scan":
                    c.scans += 1
                    days[(place_id, day)] += 1
                else:
                    c.messages += 1
                    if text:
                        c.questions[text] += 1
                    if entry_id:
                        c.items[entry_id] += 1
        return per, days

    def top_items(self, place_id: str, n: int = 5) -> list[str]:
        with Session(self.engine) as s:
            ids = s.scalars(select(HitRow.entry_id).where(
                HitRow.place_id == place_id, HitRow.kind == "message",
                HitRow.entry_id.is_not(None))).all()
        return [i for i, _ in Counter(ids).most_common(n) if i]
