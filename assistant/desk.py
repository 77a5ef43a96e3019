"""The human 帮办 desk: queue, claim, transfer, hand-back, close, grace periods, limits.

The rules (who may take what, what the citizen is told) are plain functions at the top;
``AgentDesk`` applies them at the edges: the database (conversation state, event log,
handoff records) and the bus that wakes sockets in every server process. Every change to
a conversation runs under the same per-conversation lock as a citizen message (and, on
PostgreSQL, the same advisory lock), so an agent's claim and a citizen's message never
overwrite each other, and the bot never answers a conversation an agent owns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from assistant import delivery, desk_views
from assistant.agents import Agent, Handoff, HandoffStatus, Presence, SqlAgentStore
from assistant.bus import EventBus
from assistant.closing import RATING_BUTTONS
from assistant.core import Assistant
from assistant.delivery import ReplySink as ReplySink  # re-exported: channels name it here
from assistant.desk_hours import BACK, OfficeHours, away_text, busy_text, nobody_text
from assistant.model import Conversation, ConversationMode, Reply, Stage
from assistant.render import HOTLINE, applicable, card, card_text, material_line
from assistant.store import Event
from knowledge.schema import ServiceItem

log = logging.getLogger(__name__)

QUEUE = "queue"


def conv_topic(cid: str) -> str:
    return f"conv:{cid}"


def agent_topic(agent_id: int) -> str:
    return f"agent:{agent_id}"


class DeskError(Exception):
    """An agent action that cannot be done; the message is shown in the console."""


class NotAllowed(DeskError):
    pass


class Conflict(DeskError):
    pass


# --- the rules (pure) --------------------------------------------------------------------

# What a waiting citizen is told (assistant/desk_hours.py): nobody on duty (no office hours
# configured, or inside them with nobody online), and all busy with the first place.
NOBODY = nobody_text(None, datetime.now(UTC))
OVERDUE = busy_text(1, late=True)
AGENT_LOST = f"帮办人员的连接中断了，已为您重新排队，请稍候。您可以继续留言；急事请拨打 {HOTLINE}。"
# Pushed to citizens without a chat page (WeChat); the web page shows the mode change.
JOINED = "人工帮办已接入，请直接说您的问题。"
HANDED_BACK = "人工服务已结束，已回到导办助手，您可以继续问我。请为刚才的人工帮办打个分："
CLOSED = "本次人工服务已结束，感谢您的耐心。请为刚才的人工帮办打个分："


def can_take(agent: Agent, department: str | None, busy: int) -> bool:
    """Routing: only an online agent with the department's skill and spare capacity."""
    return (not agent.disabled and agent.presence is Presence.ONLINE
            and agent.serves(department) and busy < agent.max_chats)


def candidates(agents: Sequence[Agent], load: dict[int, int],
               department: str | None) -> list[Agent]:
    """Who can take a chat of ``department`` now, least busy first."""
    ok = [a for a in agents if can_take(a, department, load.get(a.id, 0))]
    return sorted(ok, key=lambda a: (load.get(a.id, 0) / a.max_chats, a.id))


def anyone_online(agents: Sequence[Agent], department: str | None) -> bool:
    return any(not a.disabled and a.presence is Presence.ONLINE and a.serves(department)
               for a in agents)


def may_view(agent: Agent, h: Handoff | None) -> bool:
    if agent.sees_all:
        return True
    if h is None:
        return False
    if h.status is HandoffStatus.ACTIVE:
        return h.agent_id == agent.id
    return h.status is HandoffStatus.QUEUED and agent.serves(h.department)


def overdue(h: Handoff, now: datetime, limit: timedelta) -> bool:
    return h.status is HandoffStatus.QUEUED and not h.told_overdue and now - h.queued_at > limit


def position(queue: Sequence[Handoff], cid: str) -> int:
    """The conversation's place among those queued for the same department (those the same
    agents take first), oldest first."""
    mine = next((h for h in queue if h.conversation_id == cid), None)
    if mine is None:
        return 1
    ahead = [h for h in queue if h.queued_at < mine.queued_at
             and (mine.department is None or h.department in (None, mine.department))]
    return len(ahead) + 1


def latest_notice(events: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The last desk notice about the agent's connection in ``events``."""
    return next((e for e in reversed(events) if e.get("notice")), None)


def _delivered(seq: int) -> Callable[[Conversation], list[Event]]:
    return lambda conv: [Event("delivery", {"of": seq, "ok": True, "text": "留言已送达"})]


def _last_seq(logged: list[dict[str, Any]]) -> int:
    return int(logged[-1]["seq"]) if logged else 0


def _bot(text: str, buttons: Sequence[Any] = ()) -> Event:
    return Event("bot", Reply(text, tuple(buttons)).as_dict())


# --- the desk ----------------------------------------------------------------------------


class AgentDesk:
    def __init__(self, assistant: Assistant, agents: SqlAgentStore, bus: EventBus, *,
                 wait_limit: float = 180.0, grace: float = 30.0, lease: float = 20.0,
                 sink: Callable[[str], ReplySink | None] | None = None,
                 hours: OfficeHours | None = None, away_after: float = 3.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.assistant = assistant
        self.store = assistant.store
        self.agents = agents
        self.bus = bus
        self.wait_limit = timedelta(seconds=wait_limit)
        self.grace = timedelta(seconds=grace)
        # This process's console sockets are counted as open only while its lease (renewed
        # by ``heartbeat``) lasts: a crashed process cannot close them.
        self.lease = timedelta(seconds=lease)
        self.process_id = uuid.uuid4().hex
        self.process_label = f"{socket.gethostname()}:{os.getpid()}"
        self._sockets: dict[str, int] = {}  # console socket id → agent id, in this process
        self._lease_lock = asyncio.Lock()
        self.sink = sink or (lambda channel: None)  # channel name → where to push
        self.citizens: dict[str, bool] = {}  # conversation → citizen socket open (any process)
        # Pushes to channels without a socket to wake (WeChat, webhook callbacks), in order.
        self.outbound = delivery.Outbound(self.sink, self._channel_of, self._change)
        self.hours = hours  # None: no office hours configured (nothing checked on the clock)
        # A console gone this long (its agent not back) is announced to the agent's citizens.
        self.away_after = timedelta(seconds=away_after)
        self.clock = clock
        self._told_away: set[tuple[int, datetime]] = set()  # (agent, since) handled here

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    async def _channel_of(self, cid: str) -> str | None:
        conv: Conversation | None = await self._run(self.store.load, cid)
        return None if conv is None else conv.channel

    async def _push(self, cid: str, replies: list[Reply], *, of: int | None = None,
                    then: Callable[[], Awaitable[None]] | None = None,
                    mark: bool = True) -> BaseException | None:
        return await self.outbound.push(cid, replies, of=of, then=then, mark=mark)

    def department_of(self, entry_id: str | None) -> str | None:
        """The current item's department as a skill name (公安, 人社 …)."""
        guide = self.assistant.guide
        e = guide.entry(entry_id) if entry_id else None
        if e is None:
            return None
        dep_id = e.department if isinstance(e, ServiceItem) else e.lead_department
        dep = guide.departments.get(dep_id)
        return dep.short if dep is not None else dep_id

    # --- the conversation, changed under its locks ----------------------------------------

    async def _change(self, cid: str, fn: Callable[[Conversation], list[Event]],
                      message_id: str | None = None) -> list[dict[str, Any]]:
        def sync() -> list[dict[str, Any]]:
            with self.store.exclusive(cid):
                if message_id is not None and self.store.processed(cid, message_id) is not None:
                    return []  # a re-sent agent message: processed once
                conv = self.store.load(cid)
                if conv is None:
                    raise Conflict("会话不存在")
                events = fn(conv)
                if not events:
                    return []
                return self.store.save(conv, events, message_id=message_id)

        async with self.assistant._lock(cid):
            logged: list[dict[str, Any]] = await anyio.to_thread.run_sync(
                sync, limiter=self.assistant.limiter)
        if logged:
            await self.bus.publish(conv_topic(cid), {"cid": cid, "seq": logged[-1]["seq"]})
        return logged

    # --- what citizens' messages set off --------------------------------------------------

    async def after_message(self, conversation_id: str, events: list[dict[str, Any]]) -> None:
        """The database first (the handoff record, a cancellation, a rating), then the bus,
        which never fails the message: a Redis outage at 转人工 strands nobody."""
        if any(e["type"] == "user" and self.sink(str(e.get("channel"))) is not None
               for e in events):
            await self._deliver_held(conversation_id)
        for e in events:
            if e["type"] == "mode" and e.get("mode") == ConversationMode.WAITING_AGENT:
                await self.request(conversation_id, str(e.get("reason") or "requested"))
            elif e["type"] == "mode" and e.get("mode") == ConversationMode.BOT and e.get(
                    "reason") == "citizen":
                await self._cancel(conversation_id)
            elif e["type"] == "rating" and str(e.get("entry") or "").startswith("agent:"):
                hid = str(e["entry"]).split(":", 1)[1]
                if hid.isdigit():
                    await self._run(self.agents.rate, int(hid), int(e["score"]))
        await self.bus.publish(conv_topic(conversation_id),
                               {"cid": conversation_id, "seq": events[-1]["seq"]})

    async def request(self, cid: str, reason: str) -> Handoff:
        conv = await self._run(self.store.load, cid)
        if conv is None:
            raise Conflict("会话不存在")
        dept = self.department_of(conv.current)
        h: Handoff = await self._run(self.agents.request, cid, conv.channel, reason, dept,
                                     conv.current)
        everyone: list[Agent] = await self._run(self.agents.all)
        if not anyone_online(everyone, dept):
            await self._tell(cid, nobody_text(self.hours, self.clock()))
        elif not candidates(everyone, await self._run(self.agents.load), dept):
            queue = await self._run(self.agents.queue)
            await self._tell(cid, busy_text(position(queue, cid), late=False))
        await self.bus.publish(QUEUE, {"cid": cid})
        return h

    async def _cancel(self, cid: str) -> None:
        h = await self._run(self.agents.open_handoff, cid)
        if h is not None and h.status is HandoffStatus.QUEUED:
            await self._run(self.agents.end, h.id, "cancelled", None)
            await self.bus.publish(QUEUE, {"cid": cid})

    async def _tell(self, cid: str, text: str) -> None:
        logged = await self._change(cid, lambda conv: [_bot(text)])
        await self._push(cid, [Reply(text)], of=_last_seq(logged) or None)

    # --- agent actions --------------------------------------------------------------------

    async def _own(self, agent: Agent, cid: str) -> Handoff:
        h: Handoff | None = await self._run(self.agents.open_handoff, cid)
        if h is None or h.status is not HandoffStatus.ACTIVE:
            raise Conflict("这个会话现在不在人工服务中")
        if h.agent_id != agent.id and not agent.sees_all:
            raise NotAllowed("这个会话由其他帮办人员负责")
        return h

    async def claim(self, agent: Agent, cid: str) -> Handoff:
        h: Handoff | None = await self._run(self.agents.open_handoff, cid)
        if h is None or h.status is not HandoffStatus.QUEUED:
            raise Conflict("这个会话已被接入或已结束")
        fresh = await self._run(self.agents.get, agent.id)
        load = await self._run(self.agents.load)
        if fresh is None or not can_take(fresh, h.department, load.get(agent.id, 0)):
            if fresh is not None and fresh.presence is not Presence.ONLINE:
                raise NotAllowed("请先把状态设为“在线”")
            if fresh is not None and not fresh.serves(h.department):
                raise NotAllowed(f"这个会话属于{h.department}，不在您的业务范围内")
            raise NotAllowed("您接待的会话已达上限")

        def take(conv: Conversation) -> list[Event]:
            if conv.mode is not ConversationMode.WAITING_AGENT:
                raise Conflict("市民已取消转人工")
            if not self.agents.claim(h.id, agent.id):
                raise Conflict("这个会话已被其他帮办人员接入")
            conv.transition(ConversationMode.WITH_AGENT)
            conv.stage = Stage.IDLE
            return [Event("mode", {"mode": conv.mode.value, "reason": "claimed",
                                   "agent": agent.display_name, "handoff": h.id})]

        await self._change(cid, take)
        await self._joined(cid)
        await self.bus.publish(QUEUE, {"cid": cid})
        await self.bus.publish(agent_topic(agent.id), {"cid": cid})
        return h

    async def _joined(self, cid: str) -> None:
        """The web page shows the mode change; a WeChat citizen has no page, so is told
        (before any of the agent's messages: same lock as ``say``)."""
        async with self.outbound.lock(cid):
            # Carried on the change of hands (the log's last event now).
            await self._push(cid, [Reply(JOINED)], of=await self._run(self.store.last_seq, cid))

    async def say(self, agent: Agent, cid: str, text: str, client_id: str,
                  card_: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        text = text.strip()
        if not text or len(text) > 2000:
            raise DeskError("消息不能为空，且不超过 2000 字")
        h = await self._own(agent, cid)
        lock = self.outbound.lock(cid)
        async with lock:  # the citizen's channel gets agent messages in the order sent

            def append(conv: Conversation) -> list[Event]:
                if conv.mode is not ConversationMode.WITH_AGENT:
                    raise Conflict("这个会话现在不在人工服务中")
                return [Event("agent", {"text": text, "buttons": [], "card": card_,
                                        "agent": agent.display_name, "agent_id": agent.id})]

            logged = await self._change(cid, append, message_id=f"agent:{agent.id}:{client_id}")
            if logged:
                await self._run(self.agents.first_response, h.id)
                seq = int(logged[-1]["seq"])
                exc = await self._push(cid, [Reply(text, (), card_)], of=seq)
                if exc is not None:
                    await self.outbound.failed(cid, seq, exc)
        return logged

    async def hold(self, agent: Agent, cid: str, seq: int) -> None:
        """The agent leaves an undelivered reply as a 留言: it goes out when the citizen
        writes again (``after_message``)."""
        await self._own(agent, cid)

        def mark(conv: Conversation) -> list[Event]:
            events = self.store.events(cid)
            if not any(e["seq"] == seq and e["type"] == "agent" for e in events):
                raise Conflict("只有帮办人员的回复可以留作留言")
            if not delivery.failed(events, seq):
                raise Conflict("这条消息没有发送失败，或已留作留言")
            return [Event("delivery", {"of": seq, "held": True,
                                       "text": "已留作留言：市民下次发消息时自动送达"})]

        await self._change(cid, mark)

    async def _deliver_held(self, cid: str) -> None:
        """The citizen wrote again (WeChat's window is open): send the 留言 left for them."""
        waiting = delivery.held(await self._run(self.store.events, cid))
        async with self.outbound.lock(cid):
            for e in waiting:
                reply = Reply(str(e.get("text", "")), (), e.get("card"))
                seq = int(e["seq"])

                async def delivered(seq: int = seq) -> None:
                    await self._change(cid, _delivered(seq))

                # Still refused: it stays held (not marked failed again).
                if await self._push(cid, [reply], of=seq, then=delivered,
                                    mark=False) is not None:
                    return

    async def insert(self, agent: Agent, cid: str, entry_id: str, kind: str,
                     client_id: str) -> list[dict[str, Any]]:
        """An item card or its material list from the guide base, sent as the agent."""
        guide = self.assistant.guide
        e = guide.entry(entry_id)
        if e is None:
            raise DeskError("没有这个事项")
        conv = await self._run(self.store.load, cid)
        mats = applicable(guide, e, conv.situations if conv is not None else {})
        if kind == "materials":
            lines = [f"“{e.name}”需要{len(mats)}项材料："]
            lines += [f"{i}. {material_line(guide, m)}" for i, m in enumerate(mats, 1)]
            return await self.say(agent, cid, "\n".join(lines), client_id)
        return await self.say(agent, cid, card_text(guide, e, len(mats)), client_id,
                              card(guide, e, len(mats)))

    async def note(self, agent: Agent, cid: str, text: str, client_id: str) -> None:
        """Internal: stored in the log, shown only in the console, never to the citizen."""
        text = text.strip()
        if not text or len(text) > 2000:
            raise DeskError("备注不能为空，且不超过 2000 字")
        h: Handoff | None = await self._run(self.agents.open_handoff, cid)
        if not may_view(agent, h):
            raise NotAllowed("无权查看这个会话")
        await self._change(cid, lambda conv: [Event("note", {
            "text": text, "agent": agent.display_name, "agent_id": agent.id})],
            message_id=f"note:{agent.id}:{client_id}")

    async def transfer(self, agent: Agent, cid: str, *, to_agent: int | None = None,
                       to_department: str | None = None) -> int:
        """The sequence number of the transfer's last event (the last one the transferring
        agent may still see)."""
        h = await self._own(agent, cid)
        owner = h.agent_id or agent.id
        if to_agent is not None:
            target = await self._run(self.agents.get, to_agent)
            load = await self._run(self.agents.load)
            # A named colleague is the agent's own choice: skills route the queue, not this
            # (the console lists everyone; it was refused for a colleague of another skill).
            if target is None or not can_take(target, None, load.get(to_agent, 0)):
                raise NotAllowed("对方不在线或接待已满，请刷新列表后重试")
            if not await self._run(self.agents.reassign, h.id, owner, to_agent):
                raise Conflict("转接失败，请刷新后重试")
            logged = await self._change(cid, lambda conv: [Event("mode", {
                "mode": conv.mode.value, "reason": "transferred", "agent": target.display_name,
                "handoff": h.id})])
            await self._joined(cid)
            await self.bus.publish(agent_topic(owner), {"cid": cid})
            await self.bus.publish(agent_topic(to_agent), {"cid": cid})
            return _last_seq(logged)
        dept = to_department or h.department
        if not await self._run(self.agents.requeue, h.id, owner, dept, True):
            raise Conflict("转接失败，请刷新后重试")
        seq = await self._back_to_queue(cid, "transfer",
                                        f"正在为您转接{dept or ''}帮办人员，请稍候。您可以继续留言。")
        everyone = await self._run(self.agents.all)
        if not anyone_online(everyone, dept):
            await self._tell(cid, nobody_text(self.hours, self.clock()))
        await self.bus.publish(agent_topic(owner), {"cid": cid})
        return seq

    async def _back_to_queue(self, cid: str, reason: str, text: str) -> int:
        def requeue(conv: Conversation) -> list[Event]:
            if conv.mode is not ConversationMode.WITH_AGENT:
                return []
            conv.transition(ConversationMode.WAITING_AGENT)
            return [Event("mode", {"mode": conv.mode.value, "reason": reason}), _bot(text)]

        logged = await self._change(cid, requeue)
        await self._push(cid, [Reply(text)], of=_last_seq(logged) or None)
        await self.bus.publish(QUEUE, {"cid": cid})
        return _last_seq(logged)

    async def hand_back(self, agent: Agent, cid: str) -> int:
        """Like ``close``: the sequence number of the last event the agent may see."""
        h = await self._own(agent, cid)
        return await self._finish(cid, h, ConversationMode.BOT, "handed_back", None, HANDED_BACK)

    async def close(self, agent: Agent, cid: str, summary: str) -> int:
        h = await self._own(agent, cid)
        return await self._finish(cid, h, ConversationMode.CLOSED, "closed", summary.strip()[:2000],
                           CLOSED)

    async def _finish(self, cid: str, h: Handoff, to: ConversationMode, outcome: str,
                      summary: str | None, text: str) -> int:
        def end(conv: Conversation) -> list[Event]:
            if conv.mode is not ConversationMode.WITH_AGENT:
                raise Conflict("这个会话现在不在人工服务中")
            conv.transition(to)
            # The next citizen message answers the rating of the human session.
            conv.stage = Stage.RATING
            conv.rating_for = f"agent:{h.id}"
            events = [Event("mode", {"mode": conv.mode.value, "reason": outcome,
                                     "handoff": h.id})]
            if summary:
                events.append(Event("note", {"text": f"小结：{summary}", "summary": True}))
            return [*events, _bot(text, RATING_BUTTONS)]

        logged = await self._change(cid, end)
        await self._run(self.agents.end, h.id, outcome, summary)
        await self._push(cid, [Reply(text, RATING_BUTTONS)], of=_last_seq(logged) or None)
        await self.bus.publish(QUEUE, {"cid": cid})
        if h.agent_id is not None:
            await self.bus.publish(agent_topic(h.agent_id), {"cid": cid})
        return _last_seq(logged)

    # --- presence, grace periods and waiting limits ----------------------------------------

    async def set_presence(self, agent: Agent, presence: Presence) -> None:
        await self._run(self.agents.set_presence, agent.id, presence)
        await self.bus.publish(QUEUE, {"agent": agent.id})

    async def connected(self, agent: Agent) -> str:
        """A console socket opened in this process; its id, for ``disconnected``."""
        socket_id = uuid.uuid4().hex
        before: Agent | None = await self._run(self.agents.get, agent.id)
        async with self._lease_lock:  # the heartbeat sees the sockets as the database does
            await self._run(self.agents.connected, agent.id, socket_id, self.process_id,
                            Presence.ONLINE)
            self._sockets[socket_id] = agent.id
        await self.bus.publish(QUEUE, {"agent": agent.id})
        if before is not None and before.connections == 0 and before.disconnected_at:
            for h in await self._run(self.agents.active, agent.id):  # back within the grace
                await self._notice(h.conversation_id, "agent_back", None)
        return socket_id

    async def _notice(self, cid: str, kind: str, since: datetime | None) -> None:
        """Tell the citizen the agent's console went away (``agent_away``, once per
        disconnection: ``since``) or came back (``agent_back``, only after an away notice).
        Decided under the conversation's lock from its log: one process tells, once."""
        text = away_text(self.grace.total_seconds()) if kind == "agent_away" else BACK
        stamp = since.isoformat() if since else None

        def fn(conv: Conversation) -> list[Event]:
            if conv.mode is not ConversationMode.WITH_AGENT:
                return []
            recent = self.store.events_after(cid, max(0, self.store.last_seq(cid) - 200))
            last = latest_notice(recent)
            if kind == "agent_away" and last is not None and last.get("since") == stamp:
                return []
            if kind == "agent_back" and (last is None or last["notice"] != "agent_away"):
                return []
            return [Event("bot", {**Reply(text).as_dict(), "notice": kind, "since": stamp})]

        logged = await self._change(cid, fn)
        if logged:
            await self._push(cid, [Reply(text)], of=_last_seq(logged))

    async def _announce_away(self, now: datetime) -> None:
        """Citizens of an agent whose last console closed ``away_after`` ago (and who has
        not come back) are told within seconds, not when the grace period ends."""
        gone = await self._run(self.agents.lost_agents, self.away_after, now)
        keys = {(a.id, a.disconnected_at) for a in gone if a.disconnected_at is not None}
        self._told_away &= keys
        for a in gone:
            key = (a.id, a.disconnected_at)
            if a.disconnected_at is None or key in self._told_away:
                continue
            for h in await self._run(self.agents.active, a.id):
                await self._notice(h.conversation_id, "agent_away", a.disconnected_at)
            self._told_away.add((a.id, a.disconnected_at))

    async def disconnected(self, agent: Agent, socket_id: str) -> None:
        async with self._lease_lock:
            # Forgotten first: should the database call fail, the next heartbeat closes it.
            self._sockets.pop(socket_id, None)
            await self._run(self.agents.disconnected, socket_id)

    async def heartbeat(self) -> None:
        """Renew this process's lease (and take it: the first call registers it)."""
        async with self._lease_lock:
            sockets = dict(self._sockets)
            in_order = await self._run(self.agents.heartbeat, self.process_id,
                                       self.process_label, self.lease, sockets)
        if not in_order and sockets:
            log.warning("process %s: console sockets re-registered (lease lost or a close "
                        "not recorded)", self.process_label)
            await self.bus.publish(QUEUE, {"process": self.process_id})

    async def run_heartbeat(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.heartbeat()
            except Exception:
                log.exception("agent desk heartbeat failed")

    async def release(self) -> None:
        """Shutting down: this process's sockets count as closed now (grace starts); pushes
        still being retried are stopped and recorded as not delivered."""
        await self.outbound.close()
        async with self._lease_lock:
            self._sockets.clear()
            await self._run(self.agents.release, self.process_id)

    async def sweep(self, now: datetime | None = None) -> None:
        """Run by every process every second or so; the database updates are guarded so
        that exactly one process acts on each expiry. Sockets of processes whose lease
        ran out are closed first, as of the lease's expiry: their grace period runs from
        there."""
        now = now or self.clock()
        reaped = await self._run(self.agents.reap, now, self.process_id)
        if reaped:
            log.warning("closed the console sockets of agents %s: their server process "
                        "stopped renewing its lease", reaped)
        for a in await self._run(self.agents.lost_agents, self.grace, now):
            for h in await self._run(self.agents.active, a.id):
                if await self._run(self.agents.requeue, h.id, a.id):
                    await self._back_to_queue(h.conversation_id, "agent_lost", AGENT_LOST)
            await self._run(self.agents.mark_offline, a.id)
            await self.bus.publish(QUEUE, {"agent": a.id})
        await self._announce_away(now)
        queue: list[Handoff] = await self._run(self.agents.queue)
        late = [h for h in queue if overdue(h, now, self.wait_limit)]
        everyone: list[Agent] = await self._run(self.agents.all) if late else []
        for h in late:
            if await self._run(self.agents.mark_overdue, h.id):
                # "All busy" (with the place in the queue) only when someone who could take
                # it is on duty; otherwise nobody (office hours, 12345, 留言).
                busy = anyone_online(everyone, h.department)
                cid = h.conversation_id
                await self._tell(cid, busy_text(position(queue, cid), late=True) if busy
                                 else nobody_text(self.hours, now))
        for cid in await self._run(self.agents.stranded, now - timedelta(seconds=10)):
            if await self._run(self._requeue_stranded, cid):
                log.warning("conversation %s was waiting for an agent without a queue entry "
                            "(its request was interrupted): queued now", cid)
                await self.bus.publish(QUEUE, {"cid": cid})

    def _requeue_stranded(self, cid: str) -> bool:
        with self.store.exclusive(cid):  # one process repairs it
            conv = self.store.load(cid)
            if (conv is None or conv.mode is not ConversationMode.WAITING_AGENT
                    or self.agents.open_handoff(cid) is not None):
                return False
            self.agents.request(cid, conv.channel, "requested",
                                self.department_of(conv.current), conv.current)
            return True

    async def run_sweeper(self, every: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("agent desk sweep failed")
            await asyncio.sleep(every)

    # --- what the console shows -----------------------------------------------------------

    async def queue_view(self, agent: Agent) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._run(desk_views.queue, self, agent)
        return result

    async def chats_view(self, agent: Agent) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._run(desk_views.chats, self, agent)
        return result

    async def agents_view(self) -> list[dict[str, Any]]:
        everyone: list[Agent] = await self._run(self.agents.all)
        load = await self._run(self.agents.load)
        return [{**a.as_dict(), "busy": load.get(a.id, 0)} for a in everyone if not a.disabled]

    def receiver(self, agent_id: int, cid: str) -> Agent | None:
        """Push-time authorisation (blocking: run in a thread): the agent as stored now,
        if it may still receive the conversation's events: not disabled, and its current
        owner, a viewer of its queue entry, or a supervisor."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.disabled:
            return None
        return agent if agent.sees_all or may_view(agent, self.agents.open_handoff(cid)) else None

    async def may_view(self, agent: Agent, cid: str) -> bool:
        h = await self._run(self.agents.open_handoff, cid)
        if h is None and agent.sees_all:
            return await self.assistant.exists(cid)
        return may_view(agent, h)

    async def context(self, cid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(desk_views.context, self, cid)
        return result

    async def metrics(self) -> list[dict[str, Any]]:
        rows: list[Handoff] = await self._run(self.agents.handoffs)
        return [h.metrics() for h in rows]

    async def citizen_presence(self, cid: str, online: bool) -> None:
        await self.bus.publish("citizen", {"cid": cid, "online": online})
