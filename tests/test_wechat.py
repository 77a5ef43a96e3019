"""The WeChat official account channel through the real app (no mocks of daoban code).

WeChat's own API is played by a small FastAPI app on 127.0.0.1, started here in a thread:
it hands out access tokens and records every 客服消息 and menu it receives.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from assistant.closing import RATING_BUTTONS
from assistant.core import Assistant
from assistant.desk import HANDED_BACK, JOINED, AgentDesk
from assistant.model import Button, Reply
from channels.app import Services, create_app
from channels.cli import main as cli_main
from channels.settings import Settings
from channels.wechat import (
    QueryFreeAccessLog,
    UnknownWeChatConversation,
    WeChatChannel,
    load_menu,
)
from channels.wechat_api import WeChatApi
from channels.wechat_crypto import (
    BadKey,
    BadPayload,
    WeChatCrypto,
    WeChatCryptoError,
    WrongAppId,
    signature,
)
from channels.wechat_render import MAX_BYTES, choice, render, split
from channels.wechat_store import MemoryNonces, RedisNonces, conversation_id
from tests.consoles import PASSWORD, agent_ws
from tests.consoles import token as agent_token
from tests.consoles import until as frames_until
from tests.harness import make_assistant

# WeChat's published WXBizMsgCrypt sample values.
S_TOKEN = "QDG6eK"
S_APPID = "wx5823bf96d3bd56c7"
S_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
S_ECHO = ("P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+"
          "FZXvnaqQ==")
S_MSG = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qc"
    "zcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs"
    "8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4z"
    "G4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0"
    "+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0"
    "lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
SECRET = "test-app-secret"
_seq = iter(range(10**6, 10**7))


# --- the fake WeChat API -------------------------------------------------------------------


@dataclass
class FakeWeChat:
    url: str = ""
    expires_in: int = 7200
    tokens_issued: list[str] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    menus: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/cgi-bin/token")
        async def token(grant_type: str, appid: str, secret: str) -> dict[str, Any]:
            if grant_type != "client_credential" or secret != SECRET:
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            tok = f"tok-{len(self.tokens_issued) + 1}"
            self.tokens_issued.append(tok)
            self.valid.add(tok)
            return {"access_token": tok, "expires_in": self.expires_in}

        async def authorised(request: Request) -> dict[str, Any] | None:
            tok = request.query_params.get("access_token", "")
            if tok not in self.valid:
                code = 42001 if tok in self.tokens_issued else 40001
                self.rejected.append(code)
                return {"errcode": code, "errmsg": "access_token expired"}
            return None

        @app.post("/cgi-bin/message/custom/send")
        async def send(request: Request) -> dict[str, Any]:
            bad = await authorised(request)
            if bad:
                return bad
            self.sent.append(await request.json())
            return {"errcode": 0, "errmsg": "ok"}

        @app.post("/cgi-bin/menu/create")
        async def menu(request: Request) -> dict[str, Any]:
            bad = await authorised(request)
            if bad:
                return bad
            self.menus.append(await request.json())
            return {"errcode": 0, "errmsg": "ok"}

        return app

    def texts_to(self, openid: str) -> list[str]:
        return [m["text"]["content"] for m in list(self.sent) if m["touser"] == openid]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWeChat]:
    f = FakeWeChat()
    config = uvicorn.Config(f.app(), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, what="the fake WeChat API to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    f.url = f"http://127.0.0.1:{port}"
    yield f
    server.should_exit = True
    thread.join(5)


def until(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- the app under test --------------------------------------------------------------------


@dataclass
class Bed:
    client: TestClient
    assistant: Assistant
    token: str
    crypto: WeChatCrypto

    @property
    def channel(self) -> WeChatChannel:
        ch: WeChatChannel = self.client.app.state.wechat  # type: ignore[attr-defined]
        return ch


def _bed(tmp: Path, fake: FakeWeChat, timeout: float, aes: bool = False) -> Iterator[Bed]:
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'wx.db'}", index_dir=tmp / "idx",
        wechat_token=S_TOKEN, wechat_appid=S_APPID, wechat_appsecret=SECRET,
        wechat_aes_key=S_KEY if aes else None, wechat_api_base=fake.url,
        wechat_reply_timeout=timeout,
        public_url="https://daoban.example.gov.cn",
    )
    assistant = make_assistant(settings.database_url, settings.index_dir)
    app = create_app(settings, Services(settings, assistant, "test"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield Bed(c, assistant, S_TOKEN, WeChatCrypto(S_TOKEN, S_KEY, S_APPID))


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, fake: FakeWeChat) -> Iterator[Bed]:
    yield from _bed(tmp_path_factory.mktemp("wx"), fake, 4.5)


@pytest.fixture(scope="module")
def safe(tmp_path_factory: pytest.TempPathFactory, fake: FakeWeChat) -> Iterator[Bed]:
    """Safe mode (安全模式): an EncodingAESKey is configured."""
    yield from _bed(tmp_path_factory.mktemp("wxsafe"), fake, 4.5, aes=True)


@contextmanager
def clock_at(bed: Bed, now: float) -> Iterator[None]:
    """The server's clock set to ``now``: WeChat's published samples are from 2014."""
    bed.channel.clock = lambda: now
    try:
        yield
    finally:
        bed.channel.clock = time.time


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory, fake: FakeWeChat) -> Iterator[Bed]:
    """Every answer misses the (zero) deadline: the 5-second path, without a slow mock."""
    yield from _bed(tmp_path_factory.mktemp("wxslow"), fake, 0.0)


def openid() -> str:
    return "oTest" + base64.urlsafe_b64encode(os.urandom(15)).decode().rstrip("=")


def signed(token: str = S_TOKEN, **extra: str) -> dict[str, str]:
    ts, nonce = str(int(time.time())), str(next(_seq))
    return {"timestamp": ts, "nonce": nonce, "signature": signature(token, ts, nonce), **extra}


def msg(user: str, kind: str = "text", **fields: str) -> bytes:
    fields.setdefault("CreateTime", str(int(time.time())))
    if kind != "event":
        fields.setdefault("MsgId", str(next(_seq)))
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (f"<xml><ToUserName><![CDATA[gh_daoban]]></ToUserName><FromUserName><![CDATA[{user}]]>"
            f"</FromUserName><MsgType><![CDATA[{kind}]]></MsgType>{body}</xml>").encode()


def post(bed: Bed, body: bytes, params: dict[str, str] | None = None) -> httpx2.Response:
    return bed.client.post("/wechat", params=params or signed(), content=body,
                           headers={"Content-Type": "text/xml"})


def content(r: httpx2.Response) -> str:
    assert r.status_code == 200, r.text
    assert r.text != "success", "expected a passive reply"
    root = ET.fromstring(r.text)
    assert root.findtext("MsgType") == "text"
    assert len((root.findtext("Content") or "").encode()) <= MAX_BYTES
    return root.findtext("Content") or ""


def said(bed: Bed, user: str) -> list[str]:
    events = bed.assistant.store.events(conversation_id(user))
    return [e["text"] for e in events if e["type"] == "user"]


# --- signatures and crypto -----------------------------------------------------------------


def test_sample_signatures() -> None:
    assert signature(S_TOKEN, "1409659589", "263014780", S_ECHO) == (
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3")
    assert signature(S_TOKEN, "1409659813", "1372623149", S_MSG) == (
        "477715d11cdb4164915debcba66cb864d751f3e6")


def test_sample_decrypts() -> None:
    c = WeChatCrypto(S_TOKEN, S_KEY, S_APPID)
    assert c.decrypt(S_ECHO) == "1616140317555161061"
    xml = ET.fromstring(c.decrypt(S_MSG))
    assert xml.findtext("Content") == "hello" and xml.findtext("FromUserName") == "mycreate"
    with pytest.raises(WrongAppId):
        WeChatCrypto(S_TOKEN, S_KEY, "wx0000000000000000").decrypt(S_ECHO)


@pytest.mark.parametrize("n", range(6))
def test_random_key_round_trip(n: int) -> None:
    key = base64.b64encode(os.urandom(32)).decode()[:-1]
    app_id = "wx" + os.urandom(8).hex()
    c = WeChatCrypto("tok", key, app_id)
    for message in ("", "a", "导办" * n * 7, "<xml>" + "x" * (31 + n) + "</xml>"):
        enc = c.encrypt(message)
        assert len(base64.b64decode(enc)) % 32 == 0
        assert c.decrypt(enc) == message
    assert c.encrypt("同一条") != c.encrypt("同一条")  # a fresh random prefix each time
    with pytest.raises(WrongAppId):
        WeChatCrypto("tok", key, "wxother").decrypt(c.encrypt("hi"))
    other = base64.b64encode(os.urandom(32)).decode()[:-1]
    with pytest.raises(WeChatCryptoError):
        WeChatCrypto("tok", other, app_id).decrypt(c.encrypt("hi"))
    with pytest.raises(BadPayload):
        c.decrypt("not base64!!")


def test_bad_key() -> None:
    with pytest.raises(BadKey):
        WeChatCrypto("tok", S_KEY[:-1], S_APPID)
    with pytest.raises(BadKey):
        WeChatCrypto("tok", "!" * 43, S_APPID)


# --- URL verification ----------------------------------------------------------------------


def test_get_verification(bed: Bed, safe: Bed) -> None:
    r = bed.client.get("/wechat", params=signed(echostr="abc123"))
    assert r.status_code == 200 and r.text == "abc123"
    bad = signed(echostr="abc123")
    bad["signature"] = "0" * 40
    assert bed.client.get("/wechat", params=bad).status_code == 403
    wrong_token = signed("not-the-token", echostr="abc123")
    assert bed.client.get("/wechat", params=wrong_token).status_code == 403
    sample = {"msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
              "timestamp": "1409659589", "nonce": "263014780", "echostr": S_ECHO}
    with clock_at(safe, 1409659589 + 100):
        r = safe.client.get("/wechat", params=sample)
    assert r.status_code == 200 and r.text == "1616140317555161061"
    # The same signed sample, replayed today: refused.
    assert safe.client.get("/wechat", params=sample).status_code == 403


# --- messages and events -------------------------------------------------------------------


def test_text_gets_passive_reply_with_numbered_options(bed: Bed) -> None:
    user = openid()
    r = post(bed, msg(user, Content="社保卡丢了咋整"))
    root = ET.fromstring(r.text)
    assert root.findtext("ToUserName") == user and root.findtext("FromUserName") == "gh_daoban"
    text = content(r)
    assert "社会保障卡挂失补换" in text
    assert "回复 1 查看材料" in text and "回复 2 逐项核对材料" in text
    assert "https://daoban.example.gov.cn/" in text  # a card: the page shows more
    # The bare number picks the option just offered.
    text = content(post(bed, msg(user, Content="1")))
    assert "《" in text
    assert said(bed, user) == ["社保卡丢了咋整", "/materials"]
    # The conversation id hides the openid; the assistant never sees it.
    cid = conversation_id(user)
    assert cid.startswith("wx:") and user not in cid
    assert all(user not in str(e) for e in bed.assistant.store.events(cid))


def test_number_without_options_is_plain_text(bed: Bed) -> None:
    user = openid()
    content(post(bed, msg(user, Content="谢谢")))
    content(post(bed, msg(user, Content="7")))
    assert said(bed, user) == ["谢谢", "7"]


def test_voice(bed: Bed) -> None:
    user = openid()
    text = content(post(bed, msg(user, "voice", MediaId="m1", Format="amr",
                                 Recognition="社保卡丢了咋整。")))
    assert "听到您说：社保卡丢了咋整" in text and "社会保障卡" in text
    text = content(post(bed, msg(user, "voice", MediaId="m2", Format="amr", Recognition="")))
    assert "没听清" in text
    assert said(bed, user) == ["社保卡丢了咋整"]


@pytest.mark.parametrize("kind", ["image", "location", "link", "video", "shortvideo"])
def test_other_types_get_a_polite_text(bed: Bed, kind: str) -> None:
    user = openid()
    assert "只能看懂文字和语音" in content(post(bed, msg(user, kind, MediaId="x")))
    assert said(bed, user) == []


def test_subscribe_greets(bed: Bed) -> None:
    user = openid()
    text = content(post(bed, msg(user, "event", Event="subscribe", EventKey="")))
    assert "感谢关注" in text and "回复 1 " in text
    conv = bed.assistant.store.load(conversation_id(user))
    assert conv is not None and conv.channel == "wechat" and conv.place is None


def test_subscribe_with_scene_names_the_place(bed: Bed) -> None:
    user = openid()
    r = post(bed, msg(user, "event", Event="subscribe", EventKey="qrscene_daoli-hall-3",
                      Ticket="TICKET"))
    assert "扫码" in content(r)
    conv = bed.assistant.store.load(conversation_id(user))
    assert conv is not None and conv.place == "daoli-hall-3"


def test_scan_names_the_place(bed: Bed) -> None:
    user = openid()
    assert "欢迎回来" in content(post(bed, msg(user, "event", Event="SCAN",
                                              EventKey="nangang-center", Ticket="T")))
    conv = bed.assistant.store.load(conversation_id(user))
    assert conv is not None and conv.place == "nangang-center"


@pytest.mark.parametrize("event", ["unsubscribe", "VIEW", "LOCATION"])
def test_quiet_events(bed: Bed, event: str) -> None:
    user = openid()
    r = post(bed, msg(user, "event", Event=event, EventKey="https://example.com"))
    assert r.status_code == 200 and r.text == "success"
    assert bed.assistant.store.load(conversation_id(user)) is None


def test_menu_clicks(bed: Bed) -> None:
    user = openid()
    text = content(post(bed, msg(user, "event", Event="CLICK", EventKey="ASK_SOCIAL_CARD")))
    assert "社会保障卡挂失补换" in text
    text = content(post(bed, msg(user, "event", Event="CLICK", EventKey="HUMAN",
                                 CreateTime=str(int(time.time()) + 1))))
    assert "人工" in text
    assert bed.assistant.store.load(conversation_id(user)).mode.value == "WAITING_AGENT"  # type: ignore[union-attr]
    text = content(post(bed, msg(user, "event", Event="CLICK", EventKey="NO_SUCH_KEY",
                                 CreateTime=str(int(time.time()) + 2))))
    assert "菜单" in text


def test_safe_mode_sample_message(safe: Bed) -> None:
    """WeChat's own encrypted sample, end to end; the reply comes back encrypted."""
    bed = safe
    body = (f"<xml><ToUserName><![CDATA[{S_APPID}]]></ToUserName><Encrypt><![CDATA[{S_MSG}]]>"
            "</Encrypt><AgentID><![CDATA[218]]></AgentID></xml>").encode()
    params = {"msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
              "timestamp": "1409659813", "nonce": "1372623149", "encrypt_type": "aes"}
    with clock_at(bed, 1409659813 - 200):
        r = post(bed, body, params)
    assert r.status_code == 200, r.text
    outer = ET.fromstring(r.text)
    enc, ts = outer.findtext("Encrypt") or "", outer.findtext("TimeStamp") or ""
    assert outer.findtext("Nonce") == "1372623149"
    assert outer.findtext("MsgSignature") == signature(S_TOKEN, ts, "1372623149", enc)
    inner = ET.fromstring(bed.crypto.decrypt(enc))
    assert inner.findtext("ToUserName") == "mycreate" and inner.findtext("Content")
    assert said(bed, "mycreate") == ["hello"]
    # A retry of the same message is not processed again.
    with clock_at(bed, 1409659813 + 200):
        assert post(bed, body, params).text == "success"
    assert said(bed, "mycreate") == ["hello"]
    # Replayed today (a captured request with a valid signature): refused.
    assert post(bed, body, params).status_code == 403


def encrypted(bed: Bed, inner: bytes, crypto: WeChatCrypto | None = None,
              sig: str | None = None) -> httpx2.Response:
    enc = (crypto or bed.crypto).encrypt(inner.decode())
    p = signed()
    p.update(encrypt_type="aes",
             msg_signature=sig or signature(S_TOKEN, p["timestamp"], p["nonce"], enc))
    body = f"<xml><ToUserName><![CDATA[gh_daoban]]></ToUserName><Encrypt>{enc}</Encrypt></xml>"
    return post(bed, body.encode(), p)


def test_safe_mode_round_trip_and_rejections(safe: Bed) -> None:
    bed = safe
    user = openid()
    r = encrypted(bed, msg(user, Content="孩子出生了要办啥"))
    inner = ET.fromstring(bed.crypto.decrypt(ET.fromstring(r.text).findtext("Encrypt") or ""))
    assert inner.findtext("ToUserName") == user and "回复 1" in (inner.findtext("Content") or "")
    other = openid()
    assert encrypted(bed, msg(other, Content="你好"), sig="0" * 40).status_code == 403
    wrong_app = WeChatCrypto(S_TOKEN, S_KEY, "wx1111111111111111")
    assert encrypted(bed, msg(other, Content="你好"), crypto=wrong_app).status_code == 403
    assert bed.assistant.store.load(conversation_id(other)) is None


# --- replay --------------------------------------------------------------------------------


def signed_at(ts: int, nonce: str | None = None) -> dict[str, str]:
    n = nonce or str(next(_seq))
    return {"timestamp": str(ts), "nonce": n, "signature": signature(S_TOKEN, str(ts), n)}


@pytest.mark.parametrize("age", [int(time.time()) - 978307200, 301, -301],
                         ids=["2001", "past", "future"])
def test_stale_or_future_timestamp_refused(bed: Bed, age: int) -> None:
    """A valid signature from 2001, or more than 300 s either side of now: refused, every time."""
    user = openid()
    params = signed_at(int(time.time()) - age)
    for _ in range(2):
        assert post(bed, msg(user, Content="社保卡丢了咋整"), params).status_code == 403
    assert bed.client.get("/wechat", params={**params, "echostr": "e"}).status_code == 403
    assert bed.assistant.store.load(conversation_id(user)) is None
    # Within the window it is fine.
    assert "社会保障卡" in content(post(bed, msg(user, Content="社保卡丢了咋整"),
                                    signed_at(int(time.time()) - 250)))


def test_nonce_reused_for_other_content_refused(bed: Bed) -> None:
    first, second = openid(), openid()
    params = signed()
    content(post(bed, msg(first, Content="你好"), params))
    r = post(bed, msg(second, Content="转人工"), params)
    assert r.status_code == 403
    assert bed.assistant.store.load(conversation_id(second)) is None
    assert bed.client.get("/wechat", params={**params, "echostr": "x"}).status_code == 403


def test_plaintext_refused_in_safe_mode(safe: Bed) -> None:
    user = openid()
    r = post(safe, msg(user, Content="社保卡丢了咋整"))  # correctly signed, not encrypted
    assert r.status_code == 403
    assert safe.assistant.store.load(conversation_id(user)) is None
    assert safe.channel.users.openid(conversation_id(user)) is None


def test_nonce_memory_is_bounded_and_expires() -> None:
    now = [0.0]
    mem = MemoryNonces(size=3, clock=lambda: now[0])

    async def run() -> None:
        assert await mem.first("1:a", "d1", 600)
        assert await mem.first("1:a", "d1", 600)  # WeChat's retry: same content
        assert not await mem.first("1:a", "d2", 600)
        for k in ("1:b", "1:c", "1:d"):
            assert await mem.first(k, "d", 600)
        assert sum(len(c) for c in mem._seen.values()) == 3
        now[0] = 601.0
        assert await mem.first("1:b", "other", 600)  # forgotten after the window

    anyio.run(run)


@pytest.mark.redis
def test_redis_nonces_are_shared_between_processes() -> None:
    url = os.environ.get("DAOBAN_TEST_REDIS", "redis://127.0.0.1:6379/0")
    prefix = f"daoban-test-{uuid.uuid4().hex[:10]}:"

    async def run() -> None:
        a, b = RedisNonces(url, prefix), RedisNonces(url, prefix)
        try:
            await a._redis.ping()
        except Exception:
            pytest.skip("Redis is not running")
        try:
            assert await a.first("1:n", "d1", 660)
            assert await b.first("1:n", "d1", 660)  # the retry reached the other process
            assert not await b.first("1:n", "d2", 660)
            assert 0 < await a._redis.ttl(prefix + "wechat:nonce:1:n") <= 660
            other = RedisNonces(url, prefix + "other:")  # another deployment
            assert await other.first("1:n", "d2", 660)
            await other._redis.delete(prefix + "other:wechat:nonce:1:n")
            await other.close()
            await a._redis.delete(prefix + "wechat:nonce:1:n")
        finally:
            await a.close()
            await b.close()

    anyio.run(run)


def test_redis_away_nonces_are_remembered_in_the_process() -> None:
    async def run() -> None:
        n = RedisNonces("redis://127.0.0.1:1/0", "daoban-test:")  # nothing listens there
        try:
            assert await n.first("1:n", "d1", 660)
            assert not await n.first("1:n", "d2", 660)
        finally:
            await n.close()

    anyio.run(run)


def test_access_log_has_no_query_string(bed: Bed) -> None:
    """uvicorn's access line for ``/wechat`` would carry the openid and the signature."""
    access = logging.getLogger("uvicorn.access")
    assert any(isinstance(f, QueryFreeAccessLog) for f in access.filters)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/wechat?signature=abc123&timestamp=1&nonce=2&openid=oAbc",
         "1.1", 200), None)
    assert access.filter(record)
    line = record.getMessage()
    assert line == '127.0.0.1:5000 - "POST /wechat HTTP/1.1" 200'


# --- bad requests --------------------------------------------------------------------------


def test_bad_signature_processes_nothing(bed: Bed) -> None:
    user = openid()
    bad = signed()
    bad["signature"] = signature("guess", bad["timestamp"], bad["nonce"])
    r = post(bed, msg(user, Content="社保卡丢了咋整"), bad)
    assert r.status_code == 403
    assert post(bed, msg(user, Content="x"), {"timestamp": "1", "nonce": "2"}).status_code == 403
    assert bed.assistant.store.load(conversation_id(user)) is None
    assert bed.channel.users.openid(conversation_id(user)) is None


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><Content>unclosed",
        b"not xml at all",
        b"",
        b"<html><body/></html>",
        # Entity expansion ("billion laughs") and an external entity: refused, not expanded.
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<xml><Content>&b;</Content></xml>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<xml><FromUserName>o1</FromUserName><MsgType>text</MsgType>"
        b"<Content>&e;</Content></xml>",
        b"<xml><ToUserName>gh</ToUserName><MsgType>text</MsgType><Content>hi</Content></xml>",
    ],
)
def test_bad_xml_is_400(bed: Bed, body: bytes) -> None:
    assert post(bed, body).status_code == 400


def test_oversized_bodies(bed: Bed) -> None:
    user = openid()
    big = msg(user, Content="很" * 6000)  # ~18 KB: over the channel's 16 KB
    assert post(bed, big).status_code == 413
    assert post(bed, msg(user, Content="x" * 70_000)).status_code == 413  # the app's limit

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
        for _ in range(40):
            yield b"<xml>" + b"x" * 1000

    r = bed.client.post("/wechat", params=signed(), content=chunks())
    assert r.status_code == 413
    assert bed.assistant.store.load(conversation_id(user)) is None


# --- retries: processed once, answered once ------------------------------------------------


def test_triple_delivery_answered_once(bed: Bed) -> None:
    user = openid()
    body = msg(user, Content="孩子出生了要办啥")
    first = post(bed, body)
    assert "回复 1" in content(first)
    assert [post(bed, body).text for _ in range(2)] == ["success", "success"]
    assert said(bed, user) == ["孩子出生了要办啥"]
    ev = msg(user, "event", Event="subscribe", EventKey="")
    answers = [post(bed, ev).text for _ in range(3)]
    assert sum(a != "success" for a in answers) == 1
    assert said(bed, user) == ["孩子出生了要办啥", "你好"]


def test_concurrent_retries_answered_once(bed: Bed, fake: FakeWeChat) -> None:
    user = openid()
    body = msg(user, Content="异地就医备案怎么办")
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: post(bed, body).text, range(3)))
    assert sum(a != "success" for a in answers) == 1
    assert said(bed, user) == ["异地就医备案怎么办"]
    time.sleep(0.3)
    assert fake.texts_to(user) == []  # answered passively, so no 客服消息


# --- the 5-second rule ---------------------------------------------------------------------


def test_late_answer_goes_out_as_customer_service_message(slow: Bed, fake: FakeWeChat) -> None:
    user = openid()
    body = msg(user, Content="社保卡丢了咋整")
    # WeChat's retries. The first delivery is always late (deadline 0); a retry that comes
    # after the answer is ready may carry it passively. Either way: answered exactly once.
    replies = [post(slow, body).text for _ in range(3)]
    assert replies[0] == "success"
    passive = [r for r in replies if r != "success"]
    assert len(passive) <= 1
    if passive:
        assert "社会保障卡挂失补换" in passive[0] and "回复 1 查看材料" in passive[0]
        time.sleep(0.3)
        assert fake.texts_to(user) == []  # not sent a second time as 客服消息
    else:
        until(lambda: fake.texts_to(user), what="the 客服消息")
        time.sleep(0.3)
        texts = fake.texts_to(user)
        assert len(texts) == 1 and "社会保障卡挂失补换" in texts[0] and "回复 1 查看材料" in texts[0]
    assert said(slow, user) == ["社保卡丢了咋整"]
    # The number still works against options delivered late.
    sent_before = len(fake.texts_to(user))
    assert post(slow, msg(user, Content="1")).text == "success"
    until(lambda: len(fake.texts_to(user)) == sent_before + 1, what="the next 客服消息")
    assert said(slow, user)[-1] == "/materials"


def test_expired_token_is_refreshed_once(slow: Bed, fake: FakeWeChat) -> None:
    user = openid()
    post(slow, msg(user, Content="你好"))
    until(lambda: fake.texts_to(user), what="the first 客服消息")
    issued, rejected = len(fake.tokens_issued), len(fake.rejected)
    fake.valid.clear()  # WeChat expired every token early
    post(slow, msg(user, Content="社保卡丢了咋整"))
    until(lambda: len(fake.texts_to(user)) == 2, what="the retried 客服消息")
    assert len(fake.tokens_issued) == issued + 1
    assert fake.rejected[rejected:] == [42001]


def test_push_sends_in_order_and_splits_long_text(bed: Bed, fake: FakeWeChat) -> None:
    user = openid()
    content(post(bed, msg(user, Content="你好")))
    cid = conversation_id(user)
    long = "\n".join(f"第{i}条：" + "材料说明" * 30 for i in range(20))  # ~7 KB
    replies = [Reply("人工帮办：您好，我来帮您看看。"), Reply(long),
               Reply("请选择：", (Button("查看材料", "/materials"),))]
    bed.client.portal.call(bed.channel.push, cid, replies)  # type: ignore[union-attr]
    texts = fake.texts_to(user)
    assert len(texts) >= 4 and all(len(t.encode()) <= MAX_BYTES for t in texts)
    assert texts[0].startswith("人工帮办：您好") and texts[-1].endswith("回复 1 查看材料")
    joined = "\n".join(texts)
    assert all(f"第{i}条：" in joined for i in range(20))
    with pytest.raises(UnknownWeChatConversation):
        bed.client.portal.call(bed.channel.push, "rest-conversation", replies)  # type: ignore[union-attr]


# --- a human 帮办 talks to a WeChat citizen -------------------------------------------------


def test_agent_reaches_wechat_citizen_then_hands_back(bed: Bed, fake: FakeWeChat) -> None:
    """转人工 on WeChat → an agent claims on /ws/agent → the agent's words arrive as 客服消息
    → hand back → the bot answers the citizen's next message again."""
    desk: AgentDesk = bed.client.app.state.desk  # type: ignore[attr-defined]
    desk.agents.add("wx-zhang", PASSWORD, display_name="张帮办", skills=("人社",))
    user = openid()
    cid = conversation_id(user)
    with agent_ws(bed.client, agent_token(bed.client, "wx-zhang")) as agent:
        frames_until(agent, lambda f: f["type"] == "welcome")
        assert "社会保障卡挂失补换" in content(post(bed, msg(user, Content="社保卡丢了咋整")))
        assert "转人工" in content(post(bed, msg(user, Content="转人工")))
        frames = frames_until(agent, lambda f: f["type"] == "lists" and any(
            q["conversation_id"] == cid for q in f["queue"]))
        (q,) = [q for q in frames[-1]["queue"] if q["conversation_id"] == cid]
        assert q["channel"] == "wechat" and q["department"] == "人社"

        agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
        frames = frames_until(agent, lambda f: f["type"] == "claimed")
        said_by_citizen = [f["text"] for f in frames
                           if f["type"] == "event" and f["from"] == "citizen"]
        assert said_by_citizen == ["社保卡丢了咋整", "转人工"]
        until(lambda: JOINED in fake.texts_to(user), what="the 已接入 客服消息")

        # Citizen → agent: the bot stays silent (WeChat gets "success").
        assert post(bed, msg(user, Content="补卡要多久")).text == "success"
        frames_until(agent, lambda f: f["type"] == "event" and f["text"] == "补卡要多久")

        # Agent → citizen: 客服消息 to the citizen's openid, in order.
        before = len(fake.sent)
        for i, text in enumerate(["您好，我是张帮办。", "一般当场就能补办，请带上身份证。"]):
            agent.send_text(json.dumps({"type": "send", "conversation_id": cid,
                                        "client_id": f"wx{i}", "text": text}))
            frames_until(agent, lambda f, i=i: f["type"] == "ack" and f["client_id"] == f"wx{i}")
        until(lambda: len(fake.sent) >= before + 2, what="the agent's 客服消息")
        assert fake.sent[before:before + 2] == [
            {"touser": user, "msgtype": "text", "text": {"content": "您好，我是张帮办。"}},
            {"touser": user, "msgtype": "text", "text": {"content": "一般当场就能补办，请带上身份证。"}},
        ]
        # A re-sent client id is not delivered twice.
        agent.send_text(json.dumps({"type": "send", "conversation_id": cid,
                                    "client_id": "wx1", "text": "一般当场就能补办，请带上身份证。"}))
        frames_until(agent, lambda f: f["type"] == "ack" and f["client_id"] == "wx1")
        assert fake.texts_to(user).count("一般当场就能补办，请带上身份证。") == 1

        agent.send_text(json.dumps({"type": "handback", "conversation_id": cid}))
        frames_until(agent, lambda f: f["type"] == "ended")
    until(lambda: any(HANDED_BACK in t for t in fake.texts_to(user)), what="the hand-back")
    (ended,) = [t for t in fake.texts_to(user) if HANDED_BACK in t]
    assert "回复 1 非常满意" in ended
    # "1" picks the first rating option offered with the hand-back, not a score of 1.
    assert "非常满意" in content(post(bed, msg(user, Content="1")))
    handoff = desk.agents.last_handoff(cid)
    assert handoff is not None and handoff.outcome == "handed_back" and handoff.rating == 5
    assert "好的" in content(post(bed, msg(user, Content="没有")))
    # The bot answers again.
    assert "居住证" in content(post(bed, msg(user, Content="居住证怎么办")))
    conv = bed.assistant.store.load(cid)
    assert conv is not None and conv.mode.value == "BOT"
    assert all(m["touser"] == user for m in fake.sent if m["text"]["content"] in (
        "您好，我是张帮办。", "一般当场就能补办，请带上身份证。"))


def test_token_refreshed_before_expiry(fake: FakeWeChat) -> None:
    now = [1000.0]

    async def run() -> list[str]:
        async with httpx.AsyncClient() as client:
            api = WeChatApi(fake.url, S_APPID, SECRET, client, clock=lambda: now[0])
            first = await api.token()
            now[0] += 7200 - 600  # still well within its life
            second = await api.token()
            now[0] += 400  # inside the refresh margin
            third = await api.token()
            return [first, second, third]

    a, b, c = anyio.run(run)
    assert a == b and c != a


# --- rendering -----------------------------------------------------------------------------


def test_split_keeps_everything_within_the_limit() -> None:
    text = "\n\n".join(["短句。", "很长" * 1500, "x" * 5000, "尾巴"])
    parts = split(text)
    assert all(0 < len(p.encode()) <= MAX_BYTES for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    assert split("你好") == ["你好"]


def test_render_and_choice() -> None:
    replies = [Reply("a", (Button("查看材料", "/materials"), Button("在哪办", "/where"))),
               Reply("b", (Button("在哪办", "/where"), Button("转人工", "/human")),
                     {"type": "checklist"})]
    [text] = render(replies, "https://x.gov.cn/")
    assert "回复 1 查看材料\n回复 2 在哪办\n回复 3 转人工" in text and "https://x.gov.cn/" in text
    events = [{"type": "user", "text": "q"}, *({"type": "bot", **r.as_dict()} for r in replies)]
    assert choice("3", events) == "/human" and choice("２", events) == "/where"
    assert choice("4", events) == "4" and choice("查看材料", events) == "查看材料"
    assert choice("1", [*events, {"type": "agent", "text": "您好"}]) == "1"
    # The hand-back's options follow the agent's last words: they are the fresh ones.
    handed_back = [{"type": "user", "text": "q"}, {"type": "agent", "text": "您好"},
                   {"type": "bot", **Reply("打个分", RATING_BUTTONS).as_dict()}]
    assert choice("1", handed_back) == "/rate:5" and choice("5", handed_back) == "/rate:1"


# --- the menu ------------------------------------------------------------------------------


def test_menu_file_is_valid() -> None:
    data = load_menu()
    top = data["menu"]["button"]
    assert 1 <= len(top) <= 3
    for b in top:
        assert len(b["name"].encode()) <= 16 and len(b.get("sub_button", [])) <= 5
        for s in [b, *b.get("sub_button", [])]:
            assert len(s["name"].encode()) <= 60
            if s.get("type") == "click":
                assert s["key"] in data["clicks"]


def test_menu_command(capsys: pytest.CaptureFixture[str], fake: FakeWeChat,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli_main(["wechat", "menu"]) == 0
    assert '"常办事项"' in capsys.readouterr().out
    monkeypatch.delenv("DAOBAN_WECHAT_APPSECRET", raising=False)
    assert cli_main(["wechat", "menu", "--push"]) == 2
    monkeypatch.setenv("DAOBAN_WECHAT_APPID", S_APPID)
    monkeypatch.setenv("DAOBAN_WECHAT_APPSECRET", SECRET)
    monkeypatch.setenv("DAOBAN_WECHAT_API_BASE", fake.url)
    assert cli_main(["wechat", "menu", "--push"]) == 0
    assert fake.menus[-1] == load_menu()["menu"]


def test_channel_off_without_token(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'off.db'}",
                        index_dir=tmp_path / "idx")
    assistant = make_assistant(settings.database_url, settings.index_dir)
    with TestClient(create_app(settings, Services(settings, assistant, "t"))) as c:
        assert c.get("/wechat", params=signed(echostr="x")).status_code == 404
        assert c.post("/wechat", params=signed(), content=b"<xml/>").status_code == 404
