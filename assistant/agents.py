"""Agent (帮办人员) accounts, console sessions, presence and handoff records.

Own tables and own Alembic version table (the pattern of the other packages). Everything
lives in the database, so several server processes share accounts, sessions, presence,
the queue and the handoff records. Synchronous on purpose: called from worker threads.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from assistant.passwords import password_problem
from knowledge.db import migrate as migrate_package
from nlu.pii import mask

MIGRATIONS = Path(__file__).parent / "agent_migrations"
VERSION_TABLE = "alembic_version_agents"
_hasher = PasswordHasher()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for timezone=True columns: they were stored as UTC.
    return None if t is None else t if t.tzinfo else t.replace(tzinfo=UTC)


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class HandoffStatus(StrEnum):
    QUEUED = "queued"
    ACTIVE = "active"
    ENDED = "ended"


class AgentError(Exception):
    pass


class AgentExists(AgentError):
    pass


class UnknownAgent(AgentError):
    pass


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class AgentRow(Base):
    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(60))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    skills: Mapped[list[str]] = mapped_column(JSON)  # department short names: 公安, 人社 …
    max_chats: Mapped[int] = mapped_column(Integer, default=3)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    presence: Mapped[str] = mapped_column(String(10), default="offline")
    connections: Mapped[int] = mapped_column(Integer, default=0)  # open console sockets
    disconnected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AgentSessionRow(Base):
    """A console sign-in. Only the token's hash is stored."""

    __tablename__ = "agent_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    # The idle timeout counts from here (refreshed at most once a minute).
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HandoffRow(Base):
    """One request for a human, from the queue to its end: the queue and the metrics."""

    __tablename__ = "handoffs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(160), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), index=True)
    reason: Mapped[str] = mapped_column(String(30))
    department: Mapped[str | None] = mapped_column(String(40))  # short name: 公安 …
    entry_id: Mapped[str | None] = mapped_column(String(80))
    agent_id: Mapped[int | None] = mapped_column(Integer, index=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # last (re)queue
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(20))
    summary: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)
    told_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    agents_seen: Mapped[list[int]] = mapped_column(JSON)


class DeskProcessRow(Base):
    """A server process that holds console sockets, and its lease. The process renews the
    lease with a heartbeat; a process that stops renewing it (crashed, killed, cut off
    from the database) loses its sockets when the lease runs out."""

    __tablename__ = "desk_processes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(120))  # host:pid, for people reading the table
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AgentSocketRow(Base):
    """One open console socket and the process holding it. ``AgentRow.connections`` is
    the count of these rows, kept in the same transactions."""

    __tablename__ = "agent_sockets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, index=True)
    process_id: Mapped[str] = mapped_column(String(64), index=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Agent:
    id: int
    username: str
    display_name: str
    role: Role
    skills: tuple[str, ...]
    max_chats: int
    disabled: bool = False
    presence: Presence = Presence.OFFLINE
    connections: int = 0
    disconnected_at: datetime | None = None

    @property
    def sees_all(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)

    def serves(self, department: str | None) -> bool:
        """Routing by the item's department; an item of no known department, anyone."""
        return self.sees_all or department is None or department in self.skills

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "name": self.display_name,
                "role": self.role.value, "skills": list(self.skills),
                "max_chats": self.max_chats, "disabled": self.disabled,
                "presence": self.presence.value}


def _agent(r: AgentRow) -> Agent:
    return Agent(r.id, r.username, r.display_name, Role(r.role), tuple(r.skills or ()),
                 r.max_chats, r.disabled, Presence(r.presence), r.connections,
                 _aware(r.disconnected_at))


@dataclass(frozen=True)
class Handoff:
    id: int
    conversation_id: str
    channel: str
    status: HandoffStatus
    reason: str
    department: str | None
    entry_id: str | None
    agent_id: int | None
    requested_at: datetime
    queued_at: datetime
    claimed_at: datetime | None = None
    first_response_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    summary: str | None = None
    rating: int | None = None
    told_overdue: bool = False
    transfers: int = 0

    def metrics(self) -> dict[str, Any]:
        def secs(a: datetime | None, b: datetime | None) -> float | None:
            return None if a is None or b is None else round((b - a).total_seconds(), 3)

        return {
            "handoff_id": self.id, "conversation_id": self.conversation_id,
            "department": self.department, "reason": self.reason, "status": self.status.value,
            "wait_seconds": secs(self.requested_at, self.claimed_at),
            "first_response_seconds": secs(self.requested_at, self.first_response_at),
            "duration_seconds": secs(self.claimed_at, self.ended_at),
            "outcome": self.outcome, "rating": self.rating, "transfers": self.transfers,
            "agent_id": self.agent_id, "summary": self.summary,
        }



def _has_capacity(s: Session, agent_id: int) -> bool:
    """Under the agent's row lock: does the agent exist and have a free chat slot?"""
    a = s.get(AgentRow, agent_id, with_for_update=True)
    if a is None:
        return False
    busy = s.scalar(select(func.count()).select_from(HandoffRow).where(
        HandoffRow.agent_id == agent_id,
        HandoffRow.status == HandoffStatus.ACTIVE.value)) or 0
    return busy < a.max_chats


def _recount(s: Session, agent_id: int, closed_at: datetime) -> int:
    """Under the agent's row lock: ``connections`` from the agent's socket rows. At zero
    the grace period starts at ``closed_at``. Callers lock agents in id order (no
    deadlocks between processes) and change socket rows before (SQLite: write first)."""
    r = s.get(AgentRow, agent_id, with_for_update=True)
    if r is None:
        return 0
    n = s.scalar(select(func.count()).select_from(AgentSocketRow).where(
        AgentSocketRow.agent_id == agent_id)) or 0
    if n == 0 and (r.connections > 0 or r.disconnected_at is None):
        r.disconnected_at = closed_at
    elif n > 0:
        r.disconnected_at = None
    r.connections = n
    return n


def _close_sockets(s: Session, process_id: str, closed_at: datetime) -> list[int]:
    """Every socket row of one process, closed as of ``closed_at``: the agents affected."""
    gone = s.scalars(delete(AgentSocketRow).where(AgentSocketRow.process_id == process_id)
                     .returning(AgentSocketRow.agent_id))
    agents = sorted(set(gone))
    for agent_id in agents:
        _recount(s, agent_id, closed_at)
    return agents


def _handoff(r: HandoffRow) -> Handoff:
    return Handoff(
        r.id, r.conversation_id, r.channel, HandoffStatus(r.status), r.reason, r.department,
        r.entry_id, r.agent_id, _aware(r.requested_at) or _now(),
        _aware(r.queued_at) or _now(), _aware(r.claimed_at), _aware(r.first_response_at),
        _aware(r.ended_at), r.outcome, r.summary, r.rating, r.told_overdue, r.transfers,
    )


def _changed(result: object) -> bool:
    """Whether a guarded UPDATE changed a row (the race winner across processes)."""
    return bool(getattr(result, "rowcount", 0))


_SEEN_EVERY = timedelta(seconds=60)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def migrate(engine: Engine) -> None:
    migrate_package(engine, MIGRATIONS)


class SqlAgentStore:
    def __init__(self, engine: Engine, idle: timedelta | None = None) -> None:
        self.engine = engine
        self.idle = idle  # a session unused this long is over (None: only its lifetime)

    # --- accounts ------------------------------------------------------------------------

    def add(self, username: str, password: str, *, display_name: str | None = None,
            role: Role = Role.AGENT, skills: tuple[str, ...] = (), max_chats: int = 3) -> Agent:
        problem = password_problem(username, password)
        if problem:
            raise AgentError(problem)
        if max_chats < 1:
            raise AgentError("max_chats 至少为 1")
        with Session(self.engine) as s, s.begin():
            if s.scalar(select(AgentRow.id).where(AgentRow.username == username)) is not None:
                raise AgentExists(username)
            row = AgentRow(username=username, display_name=display_name or username,
                           password_hash=_hasher.hash(password), role=role.value,
                           skills=list(skills), max_chats=max_chats, disabled=False,
                           presence="offline", connections=0, created_at=_now())
            s.add(row)
            s.flush()
            return _agent(row)

    def all(self) -> list[Agent]:
        with Session(self.engine) as s:
            return [_agent(r) for r in s.scalars(select(AgentRow).order_by(AgentRow.id))]

    def get(self, agent_id: int) -> Agent | None:
        with Session(self.engine) as s:
            r = s.get(AgentRow, agent_id)
            return None if r is None else _agent(r)

    def by_username(self, username: str) -> Agent | None:
        with Session(self.engine) as s:
            r = s.scalar(select(AgentRow).where(AgentRow.username == username))
            return None if r is None else _agent(r)

    def disable(self, username: str) -> None:
        with Session(self.engine) as s, s.begin():
            r = s.scalar(select(AgentRow).where(AgentRow.username == username))
            if r is None:
                raise UnknownAgent(username)
            r.disabled = True
            r.presence = "offline"
            s.execute(delete(AgentSessionRow).where(AgentSessionRow.agent_id == r.id))

    # --- sign-in -------------------------------------------------------------------------

    def login(self, username: str, password: str, ttl: timedelta) -> tuple[str, Agent] | None:
        """A new session token, or None (wrong name or password, or disabled)."""
        with Session(self.engine) as s, s.begin():
            r = s.scalar(select(AgentRow).where(AgentRow.username == username))
            if r is None:
                _hasher.hash(password)  # same cost as a real check: no user enumeration
                return None
            try:
                _hasher.verify(r.password_hash, password)
            except (VerificationError, InvalidHashError):
                return None
            if r.disabled:
                return None
            if _hasher.check_needs_rehash(r.password_hash):
                r.password_hash = _hasher.hash(password)
            token = secrets.token_urlsafe(32)
            now = _now()
            s.execute(delete(AgentSessionRow).where(AgentSessionRow.expires_at < now))
            s.add(AgentSessionRow(token_hash=_token_hash(token), agent_id=r.id,
                                  expires_at=now + ttl, created_at=now, last_seen_at=now))
            return token, _agent(r)

    def authenticate(self, token: str | None) -> Agent | None:
        if not token or len(token) > 200:
            return None
        now = _now()
        with Session(self.engine) as s, s.begin():
            sess = s.get(AgentSessionRow, _token_hash(token))
            if sess is None or (_aware(sess.expires_at) or now) <= now:
                return None
            seen = _aware(sess.last_seen_at) or _aware(sess.created_at) or now
            if self.idle is not None and now - seen > self.idle:
                s.delete(sess)
                return None
            if now - seen > (_SEEN_EVERY if self.idle is None else min(_SEEN_EVERY, self.idle / 4)):
                sess.last_seen_at = now
            r = s.get(AgentRow, sess.agent_id)
            return None if r is None or r.disabled else _agent(r)

    def logout(self, token: str) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(delete(AgentSessionRow).where(AgentSessionRow.token_hash == _token_hash(token)))

    # --- presence ------------------------------------------------------------------------

    def connected(self, agent_id: int, socket_id: str, process_id: str,
                  presence: Presence = Presence.ONLINE) -> None:
        """A console socket opened, held by server process ``process_id``."""
        now = _now()
        with Session(self.engine) as s, s.begin():
            s.add(AgentSocketRow(id=socket_id, agent_id=agent_id, process_id=process_id,
                                 opened_at=now))
            s.flush()
            _recount(s, agent_id, now)
            s.execute(update(AgentRow).where(AgentRow.id == agent_id)
                      .values(presence=presence.value))

    def disconnected(self, socket_id: str) -> bool:
        """True when that was the agent's last console socket (the grace period starts).
        A socket already closed by ``reap`` (its process's lease ran out) counts once."""
        with Session(self.engine) as s, s.begin():
            agent_id = s.scalar(delete(AgentSocketRow).where(AgentSocketRow.id == socket_id)
                                .returning(AgentSocketRow.agent_id))
            return agent_id is not None and _recount(s, agent_id, _now()) == 0

    def set_presence(self, agent_id: int, presence: Presence) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(update(AgentRow).where(AgentRow.id == agent_id)
                      .values(presence=presence.value))

    def lost_agents(self, grace: timedelta, now: datetime | None = None) -> list[Agent]:
        """Agents whose last socket closed more than ``grace`` ago."""
        cutoff = (now or _now()) - grace
        with Session(self.engine) as s:
            rows = s.scalars(select(AgentRow).where(
                AgentRow.connections == 0, AgentRow.disconnected_at.is_not(None),
                AgentRow.disconnected_at < cutoff))
            return [_agent(r) for r in rows]

    def mark_offline(self, agent_id: int) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(update(AgentRow).where(AgentRow.id == agent_id, AgentRow.connections == 0)
                      .values(presence="offline", disconnected_at=None))

    # --- server processes and their leases ----------------------------------------------

    def heartbeat(self, process_id: str, label: str, lease: timedelta,
                  sockets: Mapping[str, int]) -> bool:
        """Renew the process's lease and make its socket rows match ``sockets`` (socket id
        → agent id), the console sockets this process really holds. False when anything
        had to be repaired: the process is new; its lease ran out (a stall, a database
        outage) and another process closed its sockets; a close was not recorded."""
        now = _now()
        with Session(self.engine) as s, s.begin():
            renewed = _changed(s.execute(update(DeskProcessRow).where(
                DeskProcessRow.id == process_id).values(heartbeat_at=now,
                                                        expires_at=now + lease)))
            if not renewed:
                s.add(DeskProcessRow(id=process_id, label=label[:120], started_at=now,
                                     heartbeat_at=now, expires_at=now + lease))
            held: dict[str, int] = {sid: aid for sid, aid in s.execute(select(
                AgentSocketRow.id, AgentSocketRow.agent_id).where(
                AgentSocketRow.process_id == process_id))}
            missing = {k: v for k, v in sockets.items() if k not in held}
            extra = {k: v for k, v in held.items() if k not in sockets}
            for socket_id, agent_id in missing.items():
                s.add(AgentSocketRow(id=socket_id, agent_id=agent_id, process_id=process_id,
                                     opened_at=now))
            if extra:
                s.execute(delete(AgentSocketRow).where(AgentSocketRow.id.in_(list(extra))))
            s.flush()
            for agent_id in sorted({*missing.values(), *extra.values()}):
                _recount(s, agent_id, now)
            for agent_id in sorted(set(missing.values())):
                # Marked offline while its sockets were wrongly counted as gone.
                s.execute(update(AgentRow).where(AgentRow.id == agent_id,
                                                 AgentRow.presence == Presence.OFFLINE.value,
                                                 AgentRow.disabled.is_(False))
                          .values(presence=Presence.ONLINE.value))
            return renewed and not missing and not extra

    def reap(self, now: datetime | None = None, keep: str | None = None) -> list[int]:
        """Close the sockets of processes whose lease ran out, as of the lease's expiry,
        and sockets of no known process, as of now; the agents affected. Guarded: exactly
        one process reaps each. ``keep``: the calling process, which never reaps itself."""
        now = now or _now()
        with Session(self.engine) as s:
            dead = s.execute(select(DeskProcessRow.id, DeskProcessRow.expires_at).where(
                DeskProcessRow.expires_at < now)).all()
            orphans = s.scalars(select(AgentSocketRow.process_id).where(
                AgentSocketRow.process_id.not_in(select(DeskProcessRow.id))).distinct()).all()
        affected: set[int] = set()
        for process_id, expired in dead:
            if process_id == keep:
                continue
            with Session(self.engine) as s, s.begin():
                if _changed(s.execute(delete(DeskProcessRow).where(
                        DeskProcessRow.id == process_id, DeskProcessRow.expires_at < now))):
                    affected.update(_close_sockets(s, process_id, _aware(expired) or now))
        for process_id in orphans:
            if process_id == keep:
                continue
            with Session(self.engine) as s, s.begin():
                if s.get(DeskProcessRow, process_id) is None:
                    affected.update(_close_sockets(s, process_id, now))
        return sorted(affected)

    def release(self, process_id: str) -> list[int]:
        """A process shutting down: its sockets are closed now and its lease is given up."""
        with Session(self.engine) as s, s.begin():
            s.execute(delete(DeskProcessRow).where(DeskProcessRow.id == process_id))
            return _close_sockets(s, process_id, _now())

    def load(self) -> dict[int, int]:
        """Active chats per agent."""
        with Session(self.engine) as s:
            rows = s.execute(select(HandoffRow.agent_id, func.count()).where(
                HandoffRow.status == HandoffStatus.ACTIVE.value).group_by(HandoffRow.agent_id))
            return {int(a): int(n) for a, n in rows if a is not None}

    # --- handoffs ------------------------------------------------------------------------

    def open_handoff(self, conversation_id: str) -> Handoff | None:
        with Session(self.engine) as s:
            r = s.scalar(select(HandoffRow).where(
                HandoffRow.conversation_id == conversation_id,
                HandoffRow.status != HandoffStatus.ENDED.value).order_by(HandoffRow.id.desc()))
            return None if r is None else _handoff(r)

    def last_handoff(self, conversation_id: str) -> Handoff | None:
        with Session(self.engine) as s:
            r = s.scalar(select(HandoffRow).where(HandoffRow.conversation_id == conversation_id)
                         .order_by(HandoffRow.id.desc()))
            return None if r is None else _handoff(r)

    def get_handoff(self, handoff_id: int) -> Handoff | None:
        with Session(self.engine) as s:
            r = s.get(HandoffRow, handoff_id)
            return None if r is None else _handoff(r)

    def request(self, conversation_id: str, channel: str, reason: str,
                department: str | None, entry_id: str | None) -> Handoff:
        """The open handoff of the conversation, or a new queued one."""
        now = _now()
        with Session(self.engine) as s, s.begin():
            r = s.scalar(select(HandoffRow).where(
                HandoffRow.conversation_id == conversation_id,
                HandoffRow.status != HandoffStatus.ENDED.value))
            if r is None:
                r = HandoffRow(conversation_id=conversation_id, channel=channel,
                               status=HandoffStatus.QUEUED.value, reason=reason,
                               department=department, entry_id=entry_id, requested_at=now,
                               queued_at=now, told_overdue=False, transfers=0, agents_seen=[])
                s.add(r)
                s.flush()
            return _handoff(r)

    def queue(self) -> list[Handoff]:
        with Session(self.engine) as s:
            rows = s.scalars(select(HandoffRow).where(
                HandoffRow.status == HandoffStatus.QUEUED.value).order_by(HandoffRow.queued_at))
            return [_handoff(r) for r in rows]

    def active(self, agent_id: int | None = None) -> list[Handoff]:
        with Session(self.engine) as s:
            q = select(HandoffRow).where(HandoffRow.status == HandoffStatus.ACTIVE.value)
            if agent_id is not None:
                q = q.where(HandoffRow.agent_id == agent_id)
            return [_handoff(r) for r in s.scalars(q.order_by(HandoffRow.claimed_at))]

    def claim(self, handoff_id: int, agent_id: int) -> bool:
        """Atomic: the first claimant wins; capacity is checked under the agent's row lock."""
        now = _now()
        with Session(self.engine) as s, s.begin():
            if not _has_capacity(s, agent_id):
                return False
            r = s.get(HandoffRow, handoff_id)
            seen = list(r.agents_seen or []) if r else []
            done = _changed(s.execute(update(HandoffRow).where(
                HandoffRow.id == handoff_id, HandoffRow.status == HandoffStatus.QUEUED.value
            ).values(status=HandoffStatus.ACTIVE.value, agent_id=agent_id,
                     claimed_at=func.coalesce(HandoffRow.claimed_at, now),
                     agents_seen=[*seen, agent_id])))
            return done

    def reassign(self, handoff_id: int, from_agent: int, to_agent: int) -> bool:
        with Session(self.engine) as s, s.begin():
            if not _has_capacity(s, to_agent):
                return False
            r = s.get(HandoffRow, handoff_id)
            seen = list(r.agents_seen or []) if r else []
            return _changed(s.execute(update(HandoffRow).where(
                HandoffRow.id == handoff_id, HandoffRow.status == HandoffStatus.ACTIVE.value,
                HandoffRow.agent_id == from_agent,
            ).values(agent_id=to_agent, transfers=HandoffRow.transfers + 1,
                     agents_seen=[*seen, to_agent])))

    def requeue(self, handoff_id: int, from_agent: int, department: str | None = None,
                transfer: bool = False) -> bool:
        values: dict[str, Any] = {"status": HandoffStatus.QUEUED.value, "agent_id": None,
                                  "queued_at": _now(), "told_overdue": False}
        if transfer:
            values["department"] = department
            values["transfers"] = HandoffRow.transfers + 1
        with Session(self.engine) as s, s.begin():
            return _changed(s.execute(update(HandoffRow).where(
                HandoffRow.id == handoff_id, HandoffRow.status == HandoffStatus.ACTIVE.value,
                HandoffRow.agent_id == from_agent).values(**values)))

    def end(self, handoff_id: int, outcome: str, summary: str | None = None) -> bool:
        with Session(self.engine) as s, s.begin():
            return _changed(s.execute(update(HandoffRow).where(
                HandoffRow.id == handoff_id, HandoffRow.status != HandoffStatus.ENDED.value
            ).values(status=HandoffStatus.ENDED.value, ended_at=_now(), outcome=outcome,
                     summary=None if summary is None else mask(summary))))

    def first_response(self, handoff_id: int) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(update(HandoffRow).where(
                HandoffRow.id == handoff_id, HandoffRow.first_response_at.is_(None)
            ).values(first_response_at=_now()))

    def mark_overdue(self, handoff_id: int) -> bool:
        """Atomic across processes: True for the one process that should tell the citizen."""
        with Session(self.engine) as s, s.begin():
            return _changed(s.execute(update(HandoffRow).where(
                HandoffRow.id == handoff_id, HandoffRow.told_overdue.is_(False),
                HandoffRow.status == HandoffStatus.QUEUED.value,
            ).values(told_overdue=True)))

    def rate(self, handoff_id: int, score: int) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(update(HandoffRow).where(HandoffRow.id == handoff_id).values(rating=score))

    def handoffs(self, limit: int = 200) -> list[Handoff]:
        with Session(self.engine) as s:
            rows = s.scalars(select(HandoffRow).order_by(HandoffRow.id.desc()).limit(limit))
            return [_handoff(r) for r in rows]

    def stranded(self, before: datetime, limit: int = 100) -> list[str]:
        """Conversations waiting for an agent (since before ``before``) without an open
        handoff: a request whose handoff record was never written (a crash between the
        two). The sweep queues them."""
        from assistant.store import ConversationRow

        open_ = select(HandoffRow.conversation_id).where(
            HandoffRow.status != HandoffStatus.ENDED.value)
        with Session(self.engine) as s:
            return list(s.scalars(select(ConversationRow.id).where(
                ConversationRow.mode == "WAITING_AGENT", ConversationRow.updated_at < before,
                ConversationRow.id.not_in(open_)).limit(limit)))

    def processes(self, now: datetime | None = None) -> list[tuple[str, str, datetime]]:
        """Live server processes (lease not expired): id, label, start."""
        with Session(self.engine) as s:
            rows = s.execute(select(DeskProcessRow.id, DeskProcessRow.label,
                                    DeskProcessRow.started_at).where(
                DeskProcessRow.expires_at >= (now or _now()))).all()
        return [(i, label, _aware(t) or _now()) for i, label, t in rows]
