"""What the agent console shows of the desk: the queue, the chats in hand, a conversation's
context. Blocking reads (run in a thread by ``AgentDesk``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assistant.agents import Agent
from assistant.model import ConversationMode
from assistant.walk import checklist

if TYPE_CHECKING:
    from assistant.desk import AgentDesk


def queue(desk: AgentDesk, agent: Agent) -> list[dict[str, Any]]:
    """The queue as ``agent`` may see it (their departments; supervisors: all)."""
    now = datetime.now(UTC)
    out = []
    for h in desk.agents.queue():
        if not (agent.sees_all or agent.serves(h.department)):
            continue
        e = desk.assistant.guide.entry(h.entry_id) if h.entry_id else None
        # Queued again (a transfer, a lost agent): that reason, and the wait since then.
        again = h.queued_at > h.requested_at  # both set at once by the first request
        out.append({"conversation_id": h.conversation_id, "handoff_id": h.id,
                    "reason": (again and requeued_why(desk, h.conversation_id)) or h.reason,
                    "department": h.department,
                    "item": None if e is None else e.name, "channel": h.channel,
                    "waiting_seconds": int((now - h.queued_at).total_seconds()),
                    "total_seconds": int((now - h.requested_at).total_seconds()),
                    "citizen_online": desk.citizens.get(h.conversation_id)})
    return out


def requeued_why(desk: AgentDesk, cid: str) -> str | None:
    """The reason of the conversation's latest return to the queue (its mode event)."""
    store = desk.store
    recent = store.events_after(cid, max(0, store.last_seq(cid) - 50), ("mode",))
    for e in reversed(recent):
        if e.get("mode") == ConversationMode.WAITING_AGENT:
            return str(e.get("reason") or "") or None
    return None


def chats(desk: AgentDesk, agent: Agent) -> list[dict[str, Any]]:
    """The chats in hand: the agent's own; a supervisor's, everyone's."""
    names = {a.id: a.display_name for a in desk.agents.all()}
    out = []
    for h in desk.agents.active(None if agent.sees_all else agent.id):
        e = desk.assistant.guide.entry(h.entry_id) if h.entry_id else None
        out.append({"conversation_id": h.conversation_id, "handoff_id": h.id,
                    "department": h.department, "item": None if e is None else e.name,
                    "agent_id": h.agent_id, "agent": names.get(h.agent_id or 0),
                    "mine": h.agent_id == agent.id, "channel": h.channel,
                    "citizen_online": desk.citizens.get(h.conversation_id)})
    return out


def context(desk: AgentDesk, cid: str) -> dict[str, Any]:
    """What the console shows beside an opened conversation."""
    from assistant.desk import Conflict

    conv = desk.store.load(cid)
    if conv is None:
        raise Conflict("会话不存在")
    e = desk.assistant.guide.entry(conv.current) if conv.current else None
    h = desk.agents.open_handoff(cid)
    return {
        "conversation_id": cid, "mode": conv.mode.value, "channel": conv.channel,
        "current_item": None if e is None else {
            "id": e.id, "name": e.name, "department": desk.department_of(e.id)},
        "checklist": checklist(conv, desk.assistant.ctx),
        "handoff": None if h is None else h.metrics(),
        "citizen_online": desk.citizens.get(cid),
    }
