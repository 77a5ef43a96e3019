"""Canned replies (常用语) of the agent console: shared, per department and personal.

Stored in the agent-desk database (table ``canned_replies``, migration ``g004``) so every
server process sees the same set. Who may change what: shared and department replies are
managed by supervisors and admins; a personal reply only by its owner. An agent sees the
shared ones, those of the departments they serve (supervisors: all) and their own.

A reply's text may hold variables, filled from the conversation it is inserted into:
``{item}`` (the item in hand), ``{checklist}`` (the citizen's materials and their state)
and ``{citizen_channel}`` (网页, 微信公众号 …). Synchronous on purpose: called from worker
threads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Engine, Integer, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from assistant.agents import Agent, Base
from assistant.checklist import STATES, snapshot
from assistant.context import Ctx
from assistant.model import Conversation

MAX_TEXT = 2000
SHORTCUT = re.compile(r"^[0-9A-Za-z_\-\u4e00-\u9fff]{1,30}$")
VARIABLES = ("item", "checklist", "citizen_channel")
CHANNEL_NAMES = {"web": "网页导办", "wechat": "微信公众号", "rest": "接口", "cli": "终端",
                 "rasa": "接口"}
# A material's walk state → what the console's checklist panel groups it under.
CATEGORY = {"ready": "ready", "skipped": "ready", "missing": "missing", "deferrable": "missing",
            "commitment": "missing", "unsure": "missing", "pending": "unchecked",
            "listed": "unchecked"}


def _now() -> datetime:
    return datetime.now(UTC)


class Scope(StrEnum):
    SHARED = "shared"
    DEPARTMENT = "department"
    PERSONAL = "personal"


class CannedError(Exception):
    """A refused change; ``status`` is the HTTP status the console is answered with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CannedRow(Base):
    __tablename__ = "canned_replies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(12), index=True)
    department: Mapped[str | None] = mapped_column(String(40))
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)  # personal replies
    shortcut: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


@dataclass(frozen=True)
class Canned:
    id: int
    scope: Scope
    department: str | None
    owner_id: int | None
    shortcut: str
    text: str

    def as_dict(self, agent: Agent) -> dict[str, Any]:
        return {"id": self.id, "scope": self.scope.value, "department": self.department,
                "shortcut": self.shortcut, "text": self.text,
                "editable": may_change(agent, self.scope, self.owner_id)}


def _canned(r: CannedRow) -> Canned:
    return Canned(r.id, Scope(r.scope), r.department, r.owner_id, r.shortcut, r.text)


def may_change(agent: Agent, scope: Scope, owner_id: int | None) -> bool:
    if scope is Scope.PERSONAL:
        return owner_id == agent.id
    return agent.sees_all


def visible(agent: Agent, c: Canned) -> bool:
    if c.scope is Scope.PERSONAL:
        return c.owner_id == agent.id
    if c.scope is Scope.DEPARTMENT:
        return agent.sees_all or c.department in agent.skills
    return True


def _checked(shortcut: str, text: str) -> tuple[str, str]:
    shortcut, text = shortcut.strip(), text.strip()
    if not SHORTCUT.match(shortcut):
        raise CannedError(422, "快捷词为 1–30 个字母、数字、汉字、下划线或连字符")
    if not text or len(text) > MAX_TEXT:
        raise CannedError(422, f"内容不能为空，且不超过 {MAX_TEXT} 字")
    return shortcut, text


# Personal first: an agent's own reply hides a shared one with the same shortcut.
_ORDER = {Scope.PERSONAL: 0, Scope.DEPARTMENT: 1, Scope.SHARED: 2}


class SqlCannedStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def for_agent(self, agent: Agent) -> list[Canned]:
        """The replies ``agent`` may insert, by shortcut, personal before department
        before shared."""
        with Session(self.engine) as s:
            rows = s.scalars(select(CannedRow).where(or_(
                CannedRow.scope != Scope.PERSONAL.value, CannedRow.owner_id == agent.id)))
            out = [c for c in map(_canned, rows) if visible(agent, c)]
        return sorted(out, key=lambda c: (c.shortcut, _ORDER[c.scope], c.id))

    def get(self, reply_id: int) -> Canned | None:
        with Session(self.engine) as s:
            r = s.get(CannedRow, reply_id)
            return None if r is None else _canned(r)

    def add(self, agent: Agent, *, scope: str, shortcut: str, text: str,
            department: str | None = None) -> Canned:
        try:
            sc = Scope(scope)
        except ValueError:
            raise CannedError(422, "范围只能是 shared、department 或 personal") from None
        shortcut, text = _checked(shortcut, text)
        dept = (department or "").strip() or None
        if sc is Scope.DEPARTMENT and (dept is None or len(dept) > 40):
            raise CannedError(422, "部门常用语要写明部门，如 人社")
        if sc is not Scope.DEPARTMENT:
            dept = None
        owner = agent.id if sc is Scope.PERSONAL else None
        if not may_change(agent, sc, owner):
            raise CannedError(403, "共享和部门常用语只有值班长或管理员可以管理")
        with Session(self.engine) as s, s.begin():
            self._unique(s, sc, dept, owner, shortcut, None)
            row = CannedRow(scope=sc.value, department=dept, owner_id=owner, shortcut=shortcut,
                            text=text, updated_by=agent.id, updated_at=_now())
            s.add(row)
            s.flush()
            return _canned(row)

    def update(self, agent: Agent, reply_id: int, *, shortcut: str, text: str) -> Canned:
        shortcut, text = _checked(shortcut, text)
        with Session(self.engine) as s, s.begin():
            row = self._own(s, agent, reply_id)
            self._unique(s, Scope(row.scope), row.department, row.owner_id, shortcut, row.id)
            row.shortcut, row.text, row.updated_by, row.updated_at = (
                shortcut, text, agent.id, _now())
            return _canned(row)

    def delete(self, agent: Agent, reply_id: int) -> None:
        with Session(self.engine) as s, s.begin():
            s.delete(self._own(s, agent, reply_id))

    @staticmethod
    def _own(s: Session, agent: Agent, reply_id: int) -> CannedRow:
        row = s.get(CannedRow, reply_id, with_for_update=True)
        if row is None or not visible(agent, _canned(row)):
            raise CannedError(404, "没有这条常用语")
        if not may_change(agent, Scope(row.scope), row.owner_id):
            raise CannedError(403, "共享和部门常用语只有值班长或管理员可以管理")
        return row

    @staticmethod
    def _unique(s: Session, scope: Scope, department: str | None, owner: int | None,
                shortcut: str, reply_id: int | None) -> None:
        same = select(CannedRow.id).where(
            CannedRow.scope == scope.value, CannedRow.shortcut == shortcut,
            CannedRow.department.is_(None) if department is None
            else CannedRow.department == department,
            CannedRow.owner_id.is_(None) if owner is None else CannedRow.owner_id == owner)
        if any(i != reply_id for i in s.scalars(same)):
            raise CannedError(409, f"快捷词“{shortcut}”已经有了")


# --- the conversation's side: the checklist panel and the variables ---------------------


def materials(conv: Conversation, ctx: Ctx) -> dict[str, Any] | None:
    """The item in hand with every material and its state, grouped as the console shows
    them: ready / missing / unchecked (not walked through yet)."""
    snap = snapshot(conv, ctx)
    if snap is None:
        return None
    rows = []
    for g in snap["groups"]:
        for m in g["materials"]:
            mark, label = STATES.get(m["state"], ("☐", m.get("label", "")))
            rows.append({"name": m["name"], "amount": m["amount"], "group": g["title"],
                         "state": m["state"], "category": CATEGORY.get(m["state"], "unchecked"),
                         "mark": mark, "label": label})
    counts = {k: sum(1 for r in rows if r["category"] == k)
              for k in ("ready", "missing", "unchecked")}
    return {"entry": snap["entry"], "name": snap["name"], "walked": snap["walked"],
            "materials": rows, "counts": counts}


def checklist_text(conv: Conversation, ctx: Ctx) -> str:
    got = materials(conv, ctx)
    if got is None or not got["materials"]:
        return "（还没有确定事项，暂无材料清单）"
    return "\n".join(f"{m['mark']} {m['name']}（{m['label']}）" for m in got["materials"])


def values(conv: Conversation, ctx: Ctx) -> dict[str, str]:
    e = ctx.guide.entry(conv.current) if conv.current else None
    if e is None and conv.walk is not None:
        e = ctx.guide.entry(conv.walk.entry_id)
    return {"item": e.name if e is not None else "您咨询的事项",
            "checklist": checklist_text(conv, ctx),
            "citizen_channel": CHANNEL_NAMES.get(conv.channel, conv.channel)}


def render(text: str, vals: dict[str, str]) -> str:
    """``text`` with its known variables filled; any other braces stay as written."""
    return re.sub(r"\{(" + "|".join(VARIABLES) + r")\}", lambda m: vals[m.group(1)], text)
