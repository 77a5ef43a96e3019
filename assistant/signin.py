"""Failed staff sign-ins, counted per account and per address in the database, so every
server process sees the same counts.

An attempt is counted *before* the password is checked, under the rows' locks, and given
back when the password was right: two processes (or two threads) cannot both slip a guess
in past the limit. Past ``free`` failures a key is locked for ``base`` seconds, doubling
with every further failure up to ``cap``; while it is locked no password is checked at all,
so the right password never ends a lockout early. Counts are forgotten ``decay`` after the
last failure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Engine, Executable, Integer, String, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from assistant.agents import Base


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


class SignInFailureRow(Base):
    __tablename__ = "sign_in_failures"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # account:… or address:…
    failures: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Backoff:
    free: int  # failures before the first lock
    base: float  # seconds of the first lock; doubled for each failure after it
    cap: float  # the longest lock, seconds
    decay: float = 3600.0  # seconds without a failure after which the count starts again

    def lock(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(failures - self.free, 30)))


def account_key(username: str) -> str:
    return "account:" + username.strip().lower()[:100]


def address_key(address: str) -> str:
    return "address:" + address[:100]


class SignInThrottle:
    """Synchronous (called from a worker thread), like the agent store."""

    def __init__(self, engine: Engine, account: Backoff, address: Backoff) -> None:
        self.engine = engine
        self.account = account
        self.address = address
        # SQLite takes its write lock only at the first write; this keeps one process's
        # threads from reading the same count (PostgreSQL uses the row locks below).
        self._lock = threading.Lock()

    def _insert(self, key: str, now: datetime) -> Executable:
        ins = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        return ins(SignInFailureRow).values(
            key=key, failures=0, last_at=now, locked_until=None).on_conflict_do_nothing()

    def reserve(self, username: str, address: str, now: datetime | None = None) -> float:
        """0 when the attempt may go ahead (it is counted as a failure until ``succeeded``);
        otherwise the seconds until the account or the address may try again."""
        now = now or _now()
        keys = sorted([(account_key(username), self.account), (address_key(address), self.address)])
        with self._lock, Session(self.engine) as s, s.begin():
            rows = []
            for key, _ in keys:
                s.execute(self._insert(key, now))
                row = s.scalar(select(SignInFailureRow).where(SignInFailureRow.key == key)
                               .with_for_update())
                assert row is not None
                rows.append(row)
            wait = max(((_aware(r.locked_until) or now) - now).total_seconds() for r in rows)
            if wait > 0:
                return wait  # nothing counted: a locked key is not checked at all
            for row, (_, backoff) in zip(rows, keys, strict=True):
                fresh = (now - (_aware(row.last_at) or now)).total_seconds() > backoff.decay
                row.failures = 1 if fresh else row.failures + 1
                row.last_at = now
                lock = backoff.lock(row.failures)
                row.locked_until = now + timedelta(seconds=lock) if lock else None
            return 0.0

    def succeeded(self, username: str, address: str) -> None:
        """The right password: the account starts again; the address gets its attempt back."""
        with self._lock, Session(self.engine) as s, s.begin():
            s.execute(delete(SignInFailureRow).where(
                SignInFailureRow.key == account_key(username)))
            row = s.scalar(select(SignInFailureRow).where(
                SignInFailureRow.key == address_key(address)).with_for_update())
            if row is not None:
                row.failures = max(0, row.failures - 1)
                if not self.address.lock(row.failures):
                    row.locked_until = None
            stale = _now() - timedelta(seconds=max(self.account.decay, self.address.decay))
            s.execute(delete(SignInFailureRow).where(SignInFailureRow.last_at < stale),
                      execution_options={"synchronize_session": False})
