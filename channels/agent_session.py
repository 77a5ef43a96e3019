"""One agent console socket (``/ws/agent``): frames in, events out.

Protocol (docs/agent-protocol.md): JSON frames with a "type". Every conversation event
reaches the console with its sequence number, authorised when it is pushed; a
reconnecting console sends the last one it saw per conversation (``hello.last_seqs``) and
gets exactly what it missed. Agent messages carry a client id and are processed once.
Internal notes are events of type "note": the citizen's channels never show them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import WebSocket

from assistant.agents import Agent, Presence
from assistant.desk import QUEUE, AgentDesk, DeskError, agent_topic, conv_topic

log = logging.getLogger(__name__)
MAX_FRAME = 16 * 1024
# Heartbeat: a ping every PING_EVERY seconds; a console that has answered one and then says
# nothing for PING_TIMEOUT seconds is gone (DAOBAN_AGENT_PING_SECONDS / _PING_TIMEOUT).
PING_EVERY, PING_TIMEOUT = 2.0, 7.0
GONE = 4408  # close code for a console that stopped answering
AUTH_TTL = 2.0  # seconds a console's access to a conversation is trusted without a change
SHOWN = ("user", "bot", "agent", "mode", "note", "rating", "rating_comment", "delivery")
TYPING = "typing"  # bus topic: a citizen is typing ({"cid"}); consoles filter by what they watch


def typing_topic(cid: str) -> str:
    """Bus topic: an agent is typing in conversation ``cid`` (its citizen's sockets)."""
    return f"typing:{cid}"


def search_items(desk: AgentDesk, q: str, limit: int = 10) -> list[dict[str, Any]]:
    q = q.strip()[:50]
    guide = desk.assistant.guide
    out = []
    for e in [*guide.items.values(), *guide.bundles.values()]:
        if not q or q in e.name or any(q in a for a in e.aliases):
            out.append({"id": e.id, "name": e.name, "department": desk.department_of(e.id)})
            if len(out) >= limit:
                break
    return out


class AgentSession:
    """One console socket of one signed-in agent."""

    def __init__(self, ws: WebSocket, desk: AgentDesk, agent: Agent, token: str) -> None:
        self.ws = ws
        self.desk = desk
        self.agent = agent
        self.token = token
        self.sent: dict[str, int] = {}  # watched conversation → highest seq passed
        self._subs: dict[str, Callable[[], None]] = {}
        self._other: list[Callable[[], None]] = []
        self._send_lock = asyncio.Lock()
        self._flush_locks: dict[str, asyncio.Lock] = {}
        # Conversations this agent just handed on (hand-back, close, transfer): the events
        # of that action are still theirs to see, up to this sequence number.
        self._grant: dict[str, int] = {}
        self._checked: dict[str, float] = {}  # conversation → when its access was last checked
        self.socket_id: str | None = None  # the desk's id for this socket, once counted
        self.closed = False
        self.welcomed = False
        settings = getattr(getattr(ws.app.state, "services", None), "settings", None)
        self.ping_every: float = getattr(settings, "agent_ping_seconds", PING_EVERY)
        self.ping_timeout: float = getattr(settings, "agent_ping_timeout", PING_TIMEOUT)
        self.heard = time.monotonic()  # when the console last sent anything
        # Set by its first pong: a console that answers pings is expected to keep answering
        # (the page does); a client that never answers is left to the protocol's own pings.
        self.answers = False
        self._beat: asyncio.Task[None] | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            if self.closed:
                return  # a bus wake-up that was already on its way when the socket closed
            await self.ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def error(self, code: str, message: str, client_id: str = "") -> None:
        """``client_id``: the refused message's, so the console marks it 未发送."""
        frame = {"type": "error", "code": code, "message": message}
        await self.send({**frame, "client_id": client_id} if client_id else frame)

    async def start(self) -> None:
        bus = self.desk.bus

        # Until the welcome is out, changes are not sent: the lists that follow the welcome
        # are read afterwards, so they already hold them (and "welcome" stays first).
        async def queue_changed(_: dict[str, Any]) -> None:
            if self.welcomed:
                await self.send_lists()

        async def mine_changed(_: dict[str, Any]) -> None:
            if not self.welcomed:
                return
            for cid in list(self.sent):
                await self.flush(cid, recheck=True)  # unwatches what is no longer ours
            await self.send_lists()

        async def citizen(m: dict[str, Any]) -> None:
            if m.get("cid") in self.sent:
                await self.send({"type": "citizen", "conversation_id": m["cid"],
                                 "online": bool(m.get("online"))})

        async def typing(m: dict[str, Any]) -> None:
            if m.get("cid") in self.sent:
                await self.send({"type": "typing", "conversation_id": m["cid"]})

        self._other = [bus.subscribe(QUEUE, queue_changed),
                       bus.subscribe(agent_topic(self.agent.id), mine_changed),
                       bus.subscribe("citizen", citizen), bus.subscribe(TYPING, typing)]
        self.socket_id = await self.desk.connected(self.agent)
        await self.refresh()
        self.welcomed = True
        await self.send({"type": "welcome", "agent": self.agent.as_dict()})
        await self.send_lists()
        self._beat = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        """Pings the console; one silent past ``ping_timeout`` (a dead network, a sleeping
        laptop: no close ever arrives) counts as closed now, so the agent's grace period
        starts and the citizens are told within seconds, instead of after TCP gives up."""
        while not self.closed:
            await asyncio.sleep(self.ping_every)
            silent = time.monotonic() - self.heard
            if self.answers and silent > self.ping_timeout:
                log.warning("agent console of %s silent for %.0f s: counted as closed",
                            self.agent.username, silent)
                await self.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(code=GONE), 2.0)
                return
            with contextlib.suppress(Exception):
                await self.send({"type": "ping"})

    async def refresh(self) -> None:
        fresh: Agent | None = await anyio.to_thread.run_sync(self.desk.agents.get, self.agent.id)
        if fresh is not None:
            self.agent = fresh

    async def stop(self) -> None:
        """Once: by the socket's end, or earlier by the heartbeat."""
        self.closed = True
        if self._beat is not None and self._beat is not asyncio.current_task():
            self._beat.cancel()
        for u in [*self._other, *self._subs.values()]:
            u()
        self._other = []
        self._subs.clear()
        socket_id, self.socket_id = self.socket_id, None
        if socket_id is not None:
            await self.desk.disconnected(self.agent, socket_id)

    async def send_lists(self) -> None:
        frame: dict[str, Any] = {"type": "lists", "queue": await self.desk.queue_view(self.agent),
                                 "chats": await self.desk.chats_view(self.agent)}
        frame["agents"] = await self.desk.agents_view()
        await self.send(frame)

    def watch(self, cid: str, last: int) -> None:
        if cid in self._subs:
            self.sent[cid] = max(0, last)  # the console asks again from ``last``
            return

        async def wake(message: dict[str, Any]) -> None:
            if newer(message, self.sent.get(cid, 0)):
                await self.flush(cid)

        self.sent[cid] = max(0, last)
        self._subs[cid] = self.desk.bus.subscribe(conv_topic(cid), wake)

    def unwatch(self, cid: str) -> None:
        u = self._subs.pop(cid, None)
        if u is not None:
            u()
        self.sent.pop(cid, None)
        self._grant.pop(cid, None)
        self._checked.pop(cid, None)

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._flush_locks.setdefault(cid, asyncio.Lock())

    async def flush(self, cid: str, recheck: bool = False) -> None:
        """Sends what the console has not seen, authorised now: events are read first,
        then the agent's right to them (a claim by someone else in between counts), and a
        conversation that is no longer the agent's is unwatched."""
        async with self._lock(cid):
            if cid not in self.sent:
                return
            after, agent, desk = self.sent[cid], self.agent, self.desk
            # Who may see a conversation changes only with a "mode" event in its log (claim,
            # transfer, requeue, end); an account is disabled or its role changed without
            # one, so the check is also repeated every AUTH_TTL seconds.
            checked = self._checked.get(cid, 0.0)
            fresh = not recheck and time.monotonic() - checked < AUTH_TTL

            def read() -> tuple[list[dict[str, Any]], Agent | None, bool]:
                events = desk.store.events_after(cid, after, None)
                if fresh and not any(e["type"] == "mode" for e in events):
                    return events, agent, False
                return events, desk.receiver(agent.id, cid), True

            events, who, asked = await anyio.to_thread.run_sync(read)
            if who is not None:
                self.agent = who
                if asked:
                    self._checked[cid] = time.monotonic()
            limit = None if who is not None else self._grant.get(cid, 0)
            for e in events:
                if e["seq"] <= self.sent.get(cid, 0):
                    continue
                if limit is not None and e["seq"] > limit:
                    break
                self.sent[cid] = e["seq"]
                if e["type"] in SHOWN:
                    await self.send(event_frame(cid, e))
            if who is None:
                self.unwatch(cid)
                await self.send({"type": "unwatched", "conversation_id": cid})

    async def hand_on(self, cid: str, action: Callable[[], Awaitable[int]]) -> None:
        """Hand-back, close, transfer: wake-ups wait until the agent's grant (the action's
        own events) is known."""
        async with self._lock(cid):
            self._grant[cid] = await action()

    async def open(self, cid: str, last: int) -> None:
        if not await self.desk.may_view(self.agent, cid):
            await self.error("forbidden", "无权查看这个会话")
            return
        self.watch(cid, last)
        self._checked[cid] = time.monotonic()  # a claim since then logs a "mode" event
        # last_seq: what the console is about to read is history (no new-message sound).
        upto = await anyio.to_thread.run_sync(self.desk.store.last_seq, cid)
        await self.send({"type": "context", **await self.desk.context(cid), "last_seq": upto})
        await self.flush(cid)

    async def run(self) -> None:
        while True:
            raw = await self.ws.receive_text()
            self.heard = time.monotonic()
            if len(raw.encode()) > MAX_FRAME:
                await self.error("too_large", "内容太长了")
                continue
            try:
                frame = json.loads(raw)
            except json.JSONDecodeError:
                frame = None
            if not isinstance(frame, dict):
                await self.error("bad_frame", "消息格式不对")
                continue
            kind = frame.get("type")
            if kind == "ping":
                await self.send({"type": "pong"})
                continue
            if kind in ("pong", "ack"):
                self.answers = self.answers or kind == "pong"
                continue
            # A long-lived socket outlives neither the sign-in nor a disabled account.
            agent = await anyio.to_thread.run_sync(self.desk.agents.authenticate, self.token)
            if agent is None:
                await self.error("unauthorized", "登录已过期，请重新登录")
                await self.ws.close(code=4401)
                return
            self.agent = agent
            client_id = str(frame.get("client_id") or "")[:100]
            try:
                await self.dispatch(kind, frame)
            except DeskError as exc:
                await self.error("refused", str(exc), client_id)
            except (KeyError, TypeError, ValueError):
                await self.error("bad_frame", "消息缺少字段或字段不对", client_id)

    async def dispatch(self, kind: Any, f: dict[str, Any]) -> None:
        cid = str(f.get("conversation_id") or "")[:160]
        client_id = str(f.get("client_id") or "")[:100]
        desk, agent = self.desk, self.agent
        if kind == "hello":
            for c, seq in dict(f.get("last_seqs") or {}).items():
                await self.open(str(c)[:160], int(seq))
        elif kind == "presence":
            await desk.set_presence(agent, Presence(f["status"]))
            await self.refresh()
            await self.send({"type": "presence", "status": f["status"]})
        elif kind == "open":
            await self.open(cid, int(f.get("last_seq") or 0))
        elif kind == "claim":
            await desk.claim(agent, cid)
            await self.open(cid, self.sent.get(cid, 0))
            await self.send({"type": "claimed", "conversation_id": cid})
        elif kind == "send":
            await desk.say(agent, cid, str(f["text"]), client_id or _need())
            await self.send({"type": "ack", "client_id": client_id})
        elif kind == "insert":
            await desk.insert(agent, cid, str(f["entry_id"]), str(f.get("kind") or "item"),
                              client_id or _need())
            await self.send({"type": "ack", "client_id": client_id})
        elif kind == "hold":  # an undelivered reply left as a 留言
            await desk.hold(agent, cid, int(f["seq"]))
            if client_id:
                await self.send({"type": "ack", "client_id": client_id})
        elif kind == "note":
            await desk.note(agent, cid, str(f["text"]), client_id or _need())
            await self.send({"type": "ack", "client_id": client_id})
        elif kind == "transfer":
            to_agent = f.get("to_agent")
            await self.hand_on(cid, lambda: desk.transfer(
                agent, cid, to_agent=int(to_agent) if to_agent else None,
                to_department=f.get("to_department") or None))
            await self.send({"type": "transferred", "conversation_id": cid})
        elif kind == "handback":
            await self.hand_on(cid, lambda: desk.hand_back(agent, cid))
            await self.send({"type": "ended", "conversation_id": cid, "outcome": "handed_back"})
        elif kind == "close":
            summary = str(f.get("summary") or "")
            await self.hand_on(cid, lambda: desk.close(agent, cid, summary))
            await self.send({"type": "ended", "conversation_id": cid, "outcome": "closed"})
        elif kind == "typing":  # shown to the citizen only for a conversation on screen
            if cid in self.sent:
                await desk.bus.publish(typing_topic(cid), {"from": "agent"})
            return
        elif kind == "search":
            await self.send({"type": "items", "items": search_items(desk, str(f.get("q", "")))})
        else:
            await self.error("bad_frame", "不认识的消息类型")
        if cid and cid in self.sent:
            await self.flush(cid)


def newer(message: dict[str, Any], sent: int) -> bool:
    """A wake-up with a sequence number past what was sent, or without one (the bus came
    back after an outage: read whatever was missed)."""
    seq = message.get("seq")
    return seq is None or int(seq) > sent


def _need() -> str:
    raise ValueError("client_id")


def event_frame(cid: str, e: dict[str, Any]) -> dict[str, Any]:
    """A stored event as the console sees it (everything, notes included)."""
    frm = {"user": "citizen", "bot": "bot", "agent": "agent", "mode": "system",
           "note": "note", "rating": "system", "rating_comment": "citizen",
           "delivery": "system"}[e["type"]]
    text = e.get("text", "")
    if e["type"] == "mode":
        text = {"WAITING_AGENT": "市民请求人工帮办", "WITH_AGENT": f"{e.get('agent', '帮办人员')}已接入",
                "BOT": "已交回导办助手", "CLOSED": "人工服务已结束"}.get(e.get("mode", ""), "")
        if e.get("reason") == "agent_lost":
            text = "帮办人员断线超时，已重新排队"
    elif e["type"] == "rating":
        text = f"市民评分：{e.get('score')} 分"
    elif e["type"] == "rating_comment":
        text = f"评价意见：{e.get('comment', '')}"
    return {"type": "event", "conversation_id": cid, "seq": e["seq"], "at": e["at"],
            "kind": e["type"], "from": frm, "text": text, "card": e.get("card"),
            "buttons": e.get("buttons", []), "agent": e.get("agent"),
            "mode": e.get("mode"), "client_id": e.get("message_id"),
            **({"of": e.get("of"), "ok": e.get("ok"), "held": bool(e.get("held")),
                "code": e.get("code")}
               if e["type"] == "delivery" else {})}
