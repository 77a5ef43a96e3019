"""The WeChat official account (公众号) channel: ``GET/POST /wechat``.

XML, signatures, encryption and openids stop here; the assistant gets a ``UserMessage``.

WeChat waits 5 seconds for the HTTP answer and then retries (up to three times). So the
assistant is awaited for ``wechat_reply_timeout`` (4.5 s): an answer ready in time goes back
in the HTTP response (被动回复); a late one is answered ``success`` and delivered as
客服消息 when ready. Every delivery of one message shares one answer task, and exactly
one of them (or the late delivery) sends it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import anyio
import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response

from assistant.core import Assistant, MessageRejected
from assistant.model import Reply, UserMessage
from channels.settings import Settings
from channels.wechat_api import WeChatApi, WeChatApiError
from channels.wechat_crypto import BadPayload, WeChatCrypto, WrongAppId, signature_ok
from channels.wechat_render import (
    checklist_reply,
    choice,
    is_checklist_command,
    is_choice,
    render,
)
from channels.wechat_store import (
    MemoryNonces,
    Nonces,
    SqlWeChatUsers,
    TtlCache,
    conversation_id,
    make_nonces,
)
from nlu.pii import MaskingLogFilter

log = logging.getLogger(__name__)

MAX_XML = 16 * 1024  # bytes; WeChat's messages are well under 4 KB
MENU_FILE = Path(__file__).parent / "data" / "wechat_menu.json"
_OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PLACE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")

WELCOME = "感谢关注哈尔滨政务服务导办！"
WELCOME_PLACE = "感谢关注哈尔滨政务服务导办！您是在办事地点扫码进来的，有什么要办的直接问我。"
SCANNED = "欢迎回来！您刚扫了办事地点的二维码，有什么要办的直接问我。"
NOT_HEARD = "抱歉，没听清您的语音。请再说一遍，或者直接打字告诉我要办的事。"
ONLY_TEXT = "抱歉，我目前只能看懂文字和语音。请用一句话说说您要办的事，比如“社保卡丢了咋整”。"
UNKNOWN_MENU = "这个菜单暂时不能用了，请直接打字告诉我要办的事。"
SORRY = "服务暂时出了点问题，请稍后再试，或拨打 12345。"
# Events that need no answer (the citizen left, opened a link, reported a location).
QUIET_EVENTS = {"unsubscribe", "view", "location", "templatesendjobfinish",
                "masssendjobfinish", "view_miniprogram"}


class WeChatNotConfigured(RuntimeError):
    pass


class UnknownWeChatConversation(LookupError):
    """``push`` to a conversation that did not come from WeChat."""


def load_menu() -> dict[str, Any]:
    menu: dict[str, Any] = json.loads(MENU_FILE.read_text(encoding="utf-8"))
    return menu


def parse_xml(body: bytes) -> dict[str, str]:
    """The children of WeChat's flat ``<xml>`` document. No DTDs, no entities."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise HTTPException(400, "消息不是合法的 XML") from exc
    if root.tag != "xml":
        raise HTTPException(400, "消息不是微信的 XML 格式")
    return {child.tag: (child.text or "").strip() for child in root}


def _cdata(s: str) -> str:
    return "<![CDATA[" + s.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_xml(to_user: str, from_user: str, content: str) -> str:
    return (f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
            f"<FromUserName>{_cdata(from_user)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
            f"<Content>{_cdata(content)}</Content></xml>")


def dedupe_key(m: dict[str, str]) -> str:
    if m.get("MsgId"):
        return "msg:" + m["MsgId"][:100]
    # WeChat's rule for events is sender + CreateTime + Event; the key is added so two
    # menu clicks within one second stay two (a retry repeats the key too).
    return f"ev:{m.get('CreateTime', '')[:20]}:{m.get('Event', '')[:40]}:{m.get('EventKey', '')[:60]}"


@dataclass
class _Pending:
    """One message's answer, shared by WeChat's retries of it."""

    task: asyncio.Task[list[str]]
    waiting: int = 0  # HTTP requests currently awaiting it
    claimed: bool = False  # sent (or being sent) once: never again


@dataclass
class WeChatChannel:
    settings: Settings
    assistant: Assistant
    users: SqlWeChatUsers
    api: WeChatApi | None
    crypto: WeChatCrypto | None
    client: httpx.AsyncClient
    clicks: dict[str, str] = field(default_factory=lambda: dict(load_menu()["clicks"]))
    nonces: Nonces = field(default_factory=MemoryNonces)
    clock: Callable[[], float] = time.time  # WeChat's timestamps are Unix seconds
    # Outlives the replay window, so an exact replay of a signed request (accepted as a
    # retry) finds its message here and is never processed twice.
    _inflight: TtlCache[_Pending] = field(default_factory=lambda: TtlCache(ttl=660.0))
    _answers: set[asyncio.Task[list[str]]] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _send_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.settings.wechat_token or ""

    @property
    def web_url(self) -> str | None:
        """The web chat, linked where a card reads better on a page; not when it is a
        local address the citizen's phone cannot open."""
        url = self.settings.public_url.rstrip("/")
        local = re.match(r"^https?://(127\.|localhost|\[::1\])", url)
        return None if local else url + "/"

    # --- inbound -------------------------------------------------------------------------

    async def receive(self, m: dict[str, str]) -> str | None:
        """The passive reply text, or None for ``success`` (answered later, or nothing to say)."""
        openid = m.get("FromUserName", "")
        if not _OPENID.match(openid):
            raise HTTPException(400, "消息缺少发送者")
        if m.get("MsgType") == "event" and m.get("Event", "").lower() in QUIET_EVENTS:
            return None
        cid = await anyio.to_thread.run_sync(self.users.remember, openid)
        key = f"{cid}|{dedupe_key(m)}"
        entry = self._inflight.get(key)
        if entry is None:
            entry = _Pending(asyncio.create_task(self._answer(cid, m)))
            self._inflight.put(key, entry)
            self._answers.add(entry.task)
            entry.task.add_done_callback(self._answers.discard)
            entry.task.add_done_callback(lambda _t: self._settle(entry, openid))
        return await self._wait(entry, openid)

    async def _wait(self, entry: _Pending, openid: str) -> str | None:
        entry.waiting += 1
        try:
            await asyncio.wait({entry.task}, timeout=self.settings.wechat_reply_timeout)
            if entry.task.done() and not entry.task.cancelled() and not entry.claimed:
                texts = entry.task.result()
                if len(texts) == 1:
                    entry.claimed = True
                    return texts[0]
            return None
        finally:
            entry.waiting -= 1
            self._settle(entry, openid)

    def _settle(self, entry: _Pending, openid: str) -> None:
        """A finished answer that no waiting request returned goes out as 客服消息:
        it was late, or too long for one passive reply."""
        if not entry.task.done() or entry.claimed or entry.waiting:
            return
        entry.claimed = True
        if entry.task.cancelled():
            return
        texts = entry.task.result()
        if texts:
            self._spawn(self._deliver(openid, texts))

    def _request(self, m: dict[str, str]) -> tuple[str | None, str | None, str]:
        """(text for the assistant or None, door-sign place, channel text to put first)."""
        kind = m.get("MsgType", "")
        if kind == "text":
            return m.get("Content", ""), None, ""
        if kind == "voice":
            heard = m.get("Recognition", "").strip().rstrip("。")
            return (heard, None, f"（听到您说：{heard}）") if heard else (None, None, NOT_HEARD)
        if kind == "event":
            event, key = m.get("Event", "").lower(), m.get("EventKey", "")
            if event == "subscribe":
                place = _place(key.removeprefix("qrscene_")) if key.startswith("qrscene_") else None
                return "你好", place, WELCOME_PLACE if place else WELCOME
            if event == "scan":
                return "你好", _place(key), SCANNED
            if event == "click":
                asked = self.clicks.get(key)
                return (asked, None, "") if asked else (None, None, UNKNOWN_MENU)
        return None, None, ONLY_TEXT

    async def _answer(self, cid: str, m: dict[str, str]) -> list[str]:
        try:
            text, place, lead = self._request(m)
            if text is None:
                return [lead]
            if m.get("MsgType") == "text" and is_choice(text):
                recent = await anyio.to_thread.run_sync(self._recent, cid)
                text = choice(text, recent)
            if is_checklist_command(text):  # the whole checklist as one message
                return await anyio.to_thread.run_sync(checklist_reply, self.assistant, cid)
            msg = UserMessage(cid, text, channel="wechat", message_id=dedupe_key(m), place=place)
            try:
                replies = await self.assistant.handle(msg, create=True)
            except MessageRejected as exc:
                return [str(exc)]
            return render(replies, self.web_url, lead)
        except Exception:
            # The channel's error boundary: logged with traceback, the citizen gets a reply.
            log.exception("WeChat message for %s failed", cid)
            return [SORRY]

    def _recent(self, cid: str) -> list[dict[str, Any]]:
        store = self.assistant.store
        last = store.last_seq(cid)
        return store.events_after(cid, max(0, last - 30), ("user", "bot", "agent"))

    # --- outbound (客服消息) ---------------------------------------------------------------

    async def push(self, conversation_id: str, replies: Sequence[Reply]) -> None:
        """Send replies to a WeChat conversation as 客服消息, in order (the agent desk's
        way to talk to a WeChat citizen). Raises when it cannot be delivered."""
        openid = await anyio.to_thread.run_sync(self.users.openid, conversation_id)
        if openid is None:
            raise UnknownWeChatConversation(conversation_id)
        await self._send(openid, render(replies, self.web_url))

    async def _send(self, openid: str, texts: Sequence[str]) -> None:
        if self.api is None:
            raise WeChatNotConfigured("DAOBAN_WECHAT_APPID / DAOBAN_WECHAT_APPSECRET are not set")
        # One sender at a time per citizen: a late bot answer and an agent's messages
        # must not interleave.
        lock = self._send_locks.setdefault(openid, asyncio.Lock())
        async with lock:
            for t in texts:
                await self.api.send_text(openid, t)
        if len(self._send_locks) > 10_000:
            for k in [k for k, v in self._send_locks.items() if not v.locked()]:
                del self._send_locks[k]

    async def _deliver(self, openid: str, texts: Sequence[str]) -> None:
        try:
            await self._send(openid, texts)
        except (WeChatApiError, WeChatNotConfigured, httpx.HTTPError):
            log.exception("could not deliver a late WeChat answer as 客服消息")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._answers:
            await asyncio.wait(set(self._answers), timeout=5.0)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        for t in list(self._tasks):
            t.cancel()
        await self.nonces.close()
        await self.client.aclose()

    async def check_fresh(self, timestamp: str, nonce: str, content: str | bytes) -> None:
        """Refuse a signed request from outside the replay window, or a (timestamp, nonce)
        already used for other content. Called after the signature check, so only WeChat
        (or whoever holds the token) can fill the nonce memory."""
        skew = self.settings.wechat_max_clock_skew
        if (not timestamp.isdigit() or len(timestamp) > 12
                or abs(int(timestamp) - self.clock()) > skew):
            raise HTTPException(403, "请求已过期")
        if not nonce or len(nonce) > 64:
            raise HTTPException(403, "请求缺少随机数")
        data = content.encode() if isinstance(content, str) else content
        digest = hashlib.sha256(data).hexdigest()
        # The memory outlives the window on both sides of the server's clock.
        if not await self.nonces.first(f"{timestamp}:{nonce}", digest, 2 * skew + 60):
            raise HTTPException(403, "重复的请求")


def _place(key: str) -> str | None:
    return key if _PLACE.match(key) else None


async def build_channel(settings: Settings, assistant: Assistant) -> WeChatChannel | None:
    """None when ``DAOBAN_WECHAT_TOKEN`` is unset; a bad key or half a configuration
    fails the start-up rather than the first message."""
    if not settings.wechat_token:
        return None
    crypto = None
    if settings.wechat_aes_key:
        if not settings.wechat_appid:
            raise WeChatNotConfigured("DAOBAN_WECHAT_AES_KEY needs DAOBAN_WECHAT_APPID")
        crypto = WeChatCrypto(settings.wechat_token, settings.wechat_aes_key,
                              settings.wechat_appid)
    if bool(settings.wechat_appid) != bool(settings.wechat_appsecret) and not crypto:
        raise WeChatNotConfigured("set both DAOBAN_WECHAT_APPID and DAOBAN_WECHAT_APPSECRET")
    users = SqlWeChatUsers(assistant.store.engine)
    await anyio.to_thread.run_sync(users.create_table)
    client = httpx.AsyncClient(timeout=10.0)
    api = None
    if settings.wechat_appid and settings.wechat_appsecret:
        api = WeChatApi(settings.wechat_api_base, settings.wechat_appid,
                        settings.wechat_appsecret, client)
    else:
        log.warning("WeChat: no AppSecret, so late answers and agent messages cannot be sent")
    nonces = make_nonces(settings.redis_url, settings.redis_prefix)
    return WeChatChannel(settings, assistant, users, api, crypto, client, nonces=nonces)


class QueryFreeAccessLog(logging.Filter):
    """Drops the query string from uvicorn's access lines. WeChat's carries the citizen's
    openid and the request signature; other routes' may carry access tokens (Rasa's
    ``?token=``). None of them belongs in a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def private_logs() -> None:
    """No query strings in access lines; no 身份证号, 手机号 or card numbers in any line.
    Installed when the app starts, after the server has set up its log handlers."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QueryFreeAccessLog) for f in access.filters):
        access.addFilter(QueryFreeAccessLog())
    handlers = [logging.lastResort] if logging.lastResort else []
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        handlers += logging.getLogger(name).handlers
    for h in handlers:
        if not any(isinstance(f, MaskingLogFilter) for f in h.filters):
            h.addFilter(MaskingLogFilter())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    private_logs()
    services = app.state.services
    channel = await build_channel(services.settings, services.assistant)
    app.state.wechat = channel
    try:
        yield
    finally:
        if channel is not None:
            await channel.close()


router = APIRouter(lifespan=lifespan)


def _channel(request: Request) -> WeChatChannel:
    channel: WeChatChannel | None = getattr(request.app.state, "wechat", None)
    if channel is None:
        raise HTTPException(404, "微信公众号渠道未启用")
    return channel


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_XML):
        raise HTTPException(413, "请求内容太大")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_XML:
            raise HTTPException(413, "请求内容太大")
    return body


@router.get("/wechat", include_in_schema=False)
async def verify(request: Request) -> PlainTextResponse:
    """The URL check WeChat makes when the server address is saved in the admin."""
    ch = _channel(request)
    q = request.query_params
    ts, nonce, echo = q.get("timestamp", ""), q.get("nonce", ""), q.get("echostr", "")
    if "msg_signature" in q and ch.crypto is not None:
        if not signature_ok(q["msg_signature"], ch.token, ts, nonce, echo):
            raise HTTPException(403, "签名不对")
        await ch.check_fresh(ts, nonce, echo)
        return PlainTextResponse(_decrypt(ch.crypto, echo))
    if not signature_ok(q.get("signature", ""), ch.token, ts, nonce):
        raise HTTPException(403, "签名不对")
    await ch.check_fresh(ts, nonce, echo)
    return PlainTextResponse(echo)


@router.post("/wechat", include_in_schema=False)
async def receive(request: Request) -> Response:
    ch = _channel(request)
    q = request.query_params
    ts, nonce = q.get("timestamp", ""), q.get("nonce", "")
    body = await _body(request)
    safe = q.get("encrypt_type") == "aes"
    if not safe and ch.crypto is not None:
        # With an EncodingAESKey, plaintext is a downgrade: WeChat itself always encrypts.
        raise HTTPException(403, "本公众号只接收加密消息")
    if not safe and not signature_ok(q.get("signature", ""), ch.token, ts, nonce):
        raise HTTPException(403, "签名不对")
    outer = parse_xml(body)
    if safe:
        if ch.crypto is None:
            log.error("WeChat sent an encrypted message but DAOBAN_WECHAT_AES_KEY is not set")
            raise HTTPException(400, "未配置消息加解密密钥")
        encrypted = outer.get("Encrypt", "")
        if not signature_ok(q.get("msg_signature", ""), ch.token, ts, nonce, encrypted):
            raise HTTPException(403, "签名不对")
        await ch.check_fresh(ts, nonce, body)
        m = parse_xml(_decrypt(ch.crypto, encrypted).encode())
    else:
        await ch.check_fresh(ts, nonce, body)
        m = outer
    text = await ch.receive(m)
    if text is None:
        return PlainTextResponse("success")
    reply = text_xml(m["FromUserName"], m.get("ToUserName", ""), text)
    if safe and ch.crypto is not None:
        enc = ch.crypto.encrypt(reply)
        stamp = str(int(time.time()))
        sig = ch.crypto.msg_signature(stamp, nonce, enc)
        reply = (f"<xml><Encrypt>{_cdata(enc)}</Encrypt><MsgSignature>{_cdata(sig)}"
                 f"</MsgSignature><TimeStamp>{stamp}</TimeStamp>"
                 f"<Nonce>{_cdata(nonce)}</Nonce></xml>")
    return Response(reply, media_type="application/xml")


def _decrypt(crypto: WeChatCrypto, encrypted: str) -> str:
    try:
        return crypto.decrypt(encrypted)
    except WrongAppId as exc:
        raise HTTPException(403, "消息不是发给本公众号的") from exc
    except BadPayload as exc:
        raise HTTPException(400, "消息解密失败") from exc


__all__ = ["WeChatChannel", "build_channel", "conversation_id", "router"]
