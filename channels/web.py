"""Web chat: the citizen page, the embeddable widget and the ``/ws/chat`` protocol.

The protocol (docs/web-protocol.md) loses nothing: every server message carries the
conversation's sequence number, a reconnecting client sends the last one it saw and gets
exactly what it missed, and a client message re-sent after a reconnect (same client id)
is processed once. The conversation lives in the database, not in the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import anyio
import redis.exceptions
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, Response
from sqlalchemy import exc as sa

from assistant.core import Assistant, MessageRejected
from assistant.model import ConversationMode, UserMessage
from channels import capability
from channels.edge import storable

log = logging.getLogger(__name__)
router = APIRouter()
STATIC = Path(__file__).parent / "static"

MAX_FRAME = 8 * 1024  # bytes
CONN_RATE = (20, 10.0)  # messages per seconds, per connection
IP_RATE = (60, 10.0)  # per client address
PING_EVERY = 20.0
RETRY_AFTER = 2  # seconds: when the page should re-send a message that met an outage
RETRY_MAX = 30
UNAVAILABLE = "系统暂时繁忙，消息还没有发出，稍后会自动重发。"
SHOWN = ("user", "bot", "agent", "mode")
# The page's line for each change of hands. Every mode needs one: a mode missing here
# reached the page as an empty system line (CLOSED did, when an agent closed a handoff).
MODE_LINES: dict[ConversationMode, str] = {
    ConversationMode.BOT: "已回到导办助手。",
    ConversationMode.WAITING_AGENT: "正在为您转接人工帮办……",
    ConversationMode.WITH_AGENT: "人工帮办已接入。",
    ConversationMode.CLOSED: "人工帮办已结束本次服务，您可以继续向导办助手提问。",
}


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


@router.get("/widget.js", include_in_schema=False)
async def widget() -> FileResponse:
    return FileResponse(STATIC / "widget.js", media_type="text/javascript; charset=utf-8")


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or not path.is_file():
        return Response(status_code=404)
    types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
             ".svg": "image/svg+xml", ".png": "image/png"}
    return FileResponse(path, media_type=types.get(path.suffix, "application/octet-stream"))


class RateLimiter:
    """Sliding window: at most ``limit`` events per ``window`` seconds per key."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        """Counts an event for ``key``, unless the window is already full (False)."""
        if self.exceeded(key):
            return False
        self.record(key)
        return True

    def exceeded(self, key: str) -> bool:
        """Whether ``key`` has used up its window (nothing is counted)."""
        q = self._hits.get(key)
        if not q:
            return False
        now = time.monotonic()
        while q and now - q[0] > self.window:
            q.popleft()
        return len(q) >= self.limit

    def record(self, key: str) -> None:
        self._hits[key].append(time.monotonic())
        if len(self._hits) > 50_000:  # forget idle keys
            for k in [k for k, v in self._hits.items() if not v][:10_000]:
                del self._hits[k]


def transient(exc: BaseException) -> bool:
    """A failure that passes by itself — the database, the event bus or a timeout away
    for a while — so the page should re-send the message later. Anything else is a bug or
    bad data, and re-sending would only fail again."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (sa.OperationalError, sa.InterfaceError, sa.TimeoutError,
                             TimeoutError, ConnectionError, redis.exceptions.ConnectionError,
                             redis.exceptions.TimeoutError)):
            return True
        if isinstance(seen, sa.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__
    return False


def frame_of(event: dict[str, Any]) -> dict[str, Any]:
    """A stored event as the page sees it."""
    base = {"type": "message", "seq": event["seq"], "at": event["at"],
            "client_id": event.get("message_id")}
    if event["type"] == "user":
        return {**base, "from": "citizen", "text": event["text"], "buttons": [], "card": None}
    if event["type"] == "mode":
        text = MODE_LINES[ConversationMode(event["mode"])]
        return {**base, "from": "system", "text": text, "buttons": [], "card": None,
                "mode": event["mode"]}
    return {
        **base,
        "from": "agent" if event["type"] == "agent" else "bot",
        "text": event.get("text", ""),
        "buttons": event.get("buttons", []),
        "card": event.get("card"),
    }


class CitizenWatch(Protocol):
    """Wakes a citizen's socket when its conversation grows elsewhere (an agent's message,
    possibly on another server process); tells the agent desk whether the citizen is here."""

    async def watch(self, session: ChatSession) -> None: ...

    async def leave(self, session: ChatSession) -> None: ...

    async def typing(self, session: ChatSession) -> None: ...


class ChatSession:
    """One websocket connection of one conversation."""

    def __init__(self, ws: WebSocket, assistant: Assistant, ip_limiter: RateLimiter,
                 resolve_place: Callable[[str], str | None] | None = None,
                 conn_limit: int | None = None) -> None:
        self.ws = ws
        self.assistant = assistant
        self.ip_limiter = ip_limiter
        self.conn_limiter = RateLimiter(conn_limit or CONN_RATE[0], CONN_RATE[1])
        self.ip = ws.client.host if ws.client else "?"
        self.cid = ""
        self.sent = 0  # highest seq sent on this connection
        self.place: str | None = None  # a verified door-sign place id
        self.resolve_place = resolve_place  # door-sign token → place id, None if invalid
        self._send_lock = asyncio.Lock()
        self.citizens: CitizenWatch | None = None
        self.catch_up: asyncio.Task[None] | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "code": code, "message": message})

    async def unavailable(self, frame: dict[str, Any], exc: BaseException) -> None:
        """A frame that met an outage. Nothing of a message is stored then (its save is
        one transaction), so the page keeps it pending and re-sends it with the same
        client id; one that was stored after all is acknowledged and processed once."""
        log.warning("web chat: the database or event bus is unavailable (conversation %s): %s",
                    self.cid or "-", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        client_id = frame.get("client_id") if frame.get("type") == "message" else None
        await self.send({"type": "error", "code": "unavailable", "retryable": True,
                         "client_id": client_id if isinstance(client_id, str) else None,
                         "retry_after": RETRY_AFTER, "message": UNAVAILABLE})
        if frame.get("type") == "hello":
            self.cid = ""  # no welcome, no conversation: the page says hello again
        elif self.cid and (self.catch_up is None or self.catch_up.done()):
            self.catch_up = asyncio.create_task(self._catch_up())

    async def _catch_up(self) -> None:
        """After an outage, sends what this connection has not passed yet (replies stored
        just before a read failed, an agent's message) even if the citizen sends nothing."""
        delay: float = RETRY_AFTER
        while True:
            await asyncio.sleep(delay)
            try:
                await self.flush()
                return
            except Exception as exc:
                if not transient(exc):
                    return  # the socket is gone, or a bug the next frame will report
                delay = min(RETRY_MAX, delay * 2)

    async def flush(self) -> None:
        """Send every stored message after the last event this connection has passed."""
        store = self.assistant.store
        events = await anyio.to_thread.run_sync(
            store.events_after, self.cid, self.sent, None, limiter=self.assistant.limiter
        )
        await self._send_events(events)

    async def _send_events(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            if e["seq"] > self.sent:
                # ``sent`` passes hidden events too, so it always says "nothing before this
                # is missing" — the invariant resume relies on.
                self.sent = e["seq"]
                if e["type"] in SHOWN:
                    await self.send(frame_of(e))

    async def hello(self, frame: dict[str, Any]) -> None:
        cid = frame.get("conversation_id")
        token = frame.get("token")
        last = frame.get("last_seq", 0)
        place = frame.get("place")
        if last is None:
            last = 0
        # bool is an int in Python: ``last_seq: true`` must not pass as 1.
        if isinstance(last, bool) or not isinstance(last, int) or not 0 <= last < 2**62:
            await self.error("bad_frame", "消息格式不对，请刷新页面后重试。")
            return
        self.place = None
        if isinstance(place, str) and 0 < len(place) <= 200 and self.resolve_place is not None:
            # The token comes from the browser: only a verified one scopes the conversation.
            self.place = await anyio.to_thread.run_sync(self.resolve_place, place)
        # The conversation id alone opens nothing: the page must also hold the token it got
        # when the conversation began. Wrong, missing or unknown: a new conversation, the
        # same answer in every case.
        resumed = (isinstance(cid, str) and 0 < len(cid) <= 160 and storable(cid)
                   and isinstance(token, str) and 0 < len(token) <= 200
                   and await capability.opens(self.assistant, cid, token))
        welcome: dict[str, Any] = {"type": "welcome", "resumed": resumed}
        if resumed:
            assert isinstance(cid, str)
            self.cid = cid
        else:
            self.cid, welcome["token"] = await capability.create(self.assistant, "web")
        self.sent = last if resumed else 0
        server_last = await anyio.to_thread.run_sync(self.assistant.store.last_seq, self.cid)
        self.sent = min(self.sent, server_last)
        await self.send({**welcome, "conversation_id": self.cid, "last_seq": server_last})
        if self.citizens is not None:
            await self.citizens.watch(self)
        await self.flush()

    async def message(self, frame: dict[str, Any]) -> None:
        text = frame.get("text")
        client_id = frame.get("client_id")
        if not isinstance(text, str) or not isinstance(client_id, str) or not client_id:
            await self.error("bad_frame", "消息格式不对，请刷新页面后重试。")
            return
        if not storable(text) or not storable(client_id):
            await self.error("bad_frame", "消息里有无法识别的字符，请删掉后重新发送。")
            return
        if len(client_id) > 100:
            await self.error("bad_frame", "消息编号太长。")
            return
        if not (self.conn_limiter.allow("c") and self.ip_limiter.allow(self.ip)):
            await self.error("rate_limited", "您发送得太快了，请稍等几秒再发。")
            return
        try:
            handled = await self.assistant.handle_logged(
                UserMessage(self.cid, text, channel="web", message_id=client_id, place=self.place),
                create=True,
            )
        except MessageRejected as exc:
            await self.send({"type": "ack", "client_id": client_id, "rejected": True})
            code = "empty" if not text.strip() else "too_long"
            await self.error(code, str(exc))
            return
        await self.send({"type": "ack", "client_id": client_id})
        events = handled.events
        if events and events[0]["seq"] == self.sent + 1:
            await self._send_events(events)  # straight from the save: no second read
        else:
            await self.flush()  # something else was appended meanwhile (or a duplicate)

    async def run(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            raw = message.get("text")
            if raw is None:  # a binary frame: the protocol is JSON text only
                await self.error("bad_frame", "消息格式不对，请刷新页面后重试。")
                continue
            if len(raw.encode("utf-8", "surrogatepass")) > MAX_FRAME:
                await self.error("too_large", "消息太长了，请分几次发送。")
                continue
            try:
                frame = json.loads(raw)
            except (json.JSONDecodeError, RecursionError):  # RecursionError: deep nesting
                await self.error("bad_frame", "消息格式不对，请刷新页面后重试。")
                continue
            if not isinstance(frame, dict):
                await self.error("bad_frame", "消息格式不对，请刷新页面后重试。")
                continue
            try:
                await self.dispatch(frame)
            except WebSocketDisconnect:
                raise
            except Exception as exc:
                if transient(exc):
                    await self.unavailable(frame, exc)
                    continue
                # One bad message never kills the connection: logged, the user is told.
                log.exception("web chat frame failed (conversation %s)", self.cid or "-")
                await self.error("internal", "处理消息时出了点问题，请稍后再试或拨打 12345。")

    async def dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind in ("pong", "ack"):
            return
        elif kind == "hello":
            await self.hello(frame)
        elif not self.cid:
            await self.error("bad_frame", "请先发送 hello。")
        elif kind == "message":
            await self.message(frame)
        elif kind == "typing":  # shown on the console of an agent watching (no reply)
            if self.citizens is not None:
                await self.citizens.typing(self)
        else:
            await self.error("bad_frame", "不认识的消息类型。")

    async def pinger(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY)
            await self.send({"type": "ping"})


@router.websocket("/ws/chat")
async def chat_socket(ws: WebSocket) -> None:
    services = ws.app.state.services
    address = ws.client.host if ws.client else "?"
    if not services.ws_slots.take(address):
        # Refused at the handshake (HTTP 403): one address cannot hold every socket.
        log.warning("web chat: too many sockets from one address")
        await ws.close(code=1008)
        return
    try:
        await ws.accept()
        await _serve(ws, services)
    finally:
        services.ws_slots.give(address)


async def _serve(ws: WebSocket, services: Any) -> None:
    doorplates = getattr(services, "doorplates", None)
    session = ChatSession(ws, services.assistant, services.ip_limiter,
                          doorplates.resolve if doorplates is not None else None,
                          services.settings.ws_conn_limit)
    session.citizens = getattr(ws.app.state, "citizens", None)
    pinger = asyncio.create_task(session.pinger())
    try:
        await session.run()
    except WebSocketDisconnect:
        pass
    except Exception:
        # Nothing crashes the loop silently: logged, and the client is told before closing.
        log.exception("web chat socket failed (conversation %s)", session.cid or "-")
        with contextlib.suppress(Exception):
            await session.error("internal", "服务出了点问题，正在重新连接……")
            await ws.close(code=1011)
    finally:
        for task in (pinger, session.catch_up):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if session.citizens is not None:
            await session.citizens.leave(session)

