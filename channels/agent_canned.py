"""Canned replies (常用语) of the agent console over REST, under ``/agent/api``:

- ``GET /agent/api/canned`` — the replies this agent may insert (shared, their
  departments', their own), each with ``editable``;
- ``POST /agent/api/canned {scope, department?, shortcut, text}`` — shared and department
  replies by supervisors and admins only, personal ones by anyone for themselves;
- ``PUT /agent/api/canned/{id} {shortcut, text}``, ``DELETE /agent/api/canned/{id}``;
- ``POST /agent/api/canned/{id}/render {conversation_id}`` — the text with its variables
  filled from a conversation the agent may see;
- ``GET /agent/api/conversations/{id}/materials`` — the checklist panel: every material of
  the item in hand with its state.

Storage and the variables: ``assistant/canned.py``.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from assistant.agents import Agent
from assistant.canned import Canned, CannedError, SqlCannedStore, materials, render, values
from assistant.desk import AgentDesk
from assistant.model import Conversation
from channels.staff import Staff, StaffRefused

router = APIRouter()


class NewReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    scope: str = Field(max_length=12)
    department: str | None = Field(default=None, max_length=40)
    shortcut: str = Field(max_length=30)
    text: str = Field(max_length=2000)


class ReplyChange(BaseModel):
    model_config = ConfigDict(extra="ignore")
    shortcut: str = Field(max_length=30)
    text: str = Field(max_length=2000)


class RenderFor(BaseModel):
    model_config = ConfigDict(extra="ignore")
    conversation_id: str = Field(min_length=1, max_length=160)


def _desk(request: Request) -> AgentDesk:
    desk: AgentDesk = request.app.state.desk
    return desk


def _store(request: Request) -> SqlCannedStore:
    store: SqlCannedStore | None = getattr(request.app.state, "canned", None)
    if store is None:
        store = SqlCannedStore(_desk(request).agents.engine)
        request.app.state.canned = store
    return store


def _refused(exc: CannedError) -> StaffRefused:
    code = {403: "forbidden", 404: "not_found", 409: "conflict"}.get(exc.status, "invalid")
    return StaffRefused(exc.status, str(exc), code)


async def _conversation(request: Request, agent: Agent, cid: str) -> Conversation:
    desk = _desk(request)
    if not await desk.may_view(agent, cid):
        raise StaffRefused(403, "无权查看这个会话", "forbidden")
    conv: Conversation | None = await anyio.to_thread.run_sync(desk.store.load, cid)
    if conv is None:
        raise StaffRefused(404, "会话不存在", "not_found")
    return conv


@router.get("/agent/api/canned")
async def list_replies(request: Request, agent: Staff) -> dict[str, Any]:
    got: list[Canned] = await anyio.to_thread.run_sync(_store(request).for_agent, agent)
    return {"replies": [c.as_dict(agent) for c in got], "manages_shared": agent.sees_all,
            "departments": None if agent.sees_all else list(agent.skills)}


@router.post("/agent/api/canned", status_code=201)
async def add_reply(request: Request, agent: Staff, body: NewReply) -> dict[str, Any]:
    store = _store(request)
    try:
        c: Canned = await anyio.to_thread.run_sync(lambda: store.add(
            agent, scope=body.scope, shortcut=body.shortcut, text=body.text,
            department=body.department))
    except CannedError as exc:
        raise _refused(exc) from None
    return c.as_dict(agent)


@router.put("/agent/api/canned/{reply_id}")
async def change_reply(request: Request, agent: Staff, reply_id: int,
                       body: ReplyChange) -> dict[str, Any]:
    store = _store(request)
    try:
        c: Canned = await anyio.to_thread.run_sync(lambda: store.update(
            agent, reply_id, shortcut=body.shortcut, text=body.text))
    except CannedError as exc:
        raise _refused(exc) from None
    return c.as_dict(agent)


@router.delete("/agent/api/canned/{reply_id}", status_code=204)
async def delete_reply(request: Request, agent: Staff, reply_id: int) -> Response:
    store = _store(request)
    try:
        await anyio.to_thread.run_sync(store.delete, agent, reply_id)
    except CannedError as exc:
        raise _refused(exc) from None
    return Response(status_code=204)


@router.post("/agent/api/canned/{reply_id}/render")
async def render_reply(request: Request, agent: Staff, reply_id: int,
                       body: RenderFor) -> dict[str, Any]:
    c: Canned | None = await anyio.to_thread.run_sync(_store(request).get, reply_id)
    visible = await anyio.to_thread.run_sync(_store(request).for_agent, agent)
    if c is None or all(v.id != c.id for v in visible):
        raise StaffRefused(404, "没有这条常用语", "not_found")
    conv = await _conversation(request, agent, body.conversation_id)
    ctx = _desk(request).assistant.ctx
    vals = await anyio.to_thread.run_sync(values, conv, ctx)
    return {"id": c.id, "shortcut": c.shortcut, "text": render(c.text, vals)}


@router.get("/agent/api/conversations/{cid}/materials")
async def conversation_materials(request: Request, agent: Staff, cid: str) -> dict[str, Any]:
    conv = await _conversation(request, agent, cid[:160])
    got = await anyio.to_thread.run_sync(materials, conv, _desk(request).assistant.ctx)
    return {"conversation_id": cid, "checklist": got}
