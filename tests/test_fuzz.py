"""A bounded, deterministic fuzz suite against a real ``daoban serve`` on PostgreSQL (issue 15):
REST, the Rasa webhook, ``/ws/chat`` frames, ``/wechat`` XML and ``/d/`` tokens. Whatever
arrives, the server answers below 500, never closes a socket with 1011 and never logs a
traceback. Also the limits only a real server enforces (header timeout, websocket max size,
credentials kept out of the access log)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.servers import daoban_process

SEED = 15
CASES = {"rest": 600, "webhook": 450, "ws": 550, "wechat": 300, "doorplate": 300}
WECHAT_TOKEN = "fuzz-wechat-token"
API_TOKEN = "fuzz-api-token-0123456789abcdef"
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    pg: str = request.getfixturevalue("pg_url_module")
    workdir = tmp_path_factory.mktemp("fuzz")
    env = {"DAOBAN_DATABASE_URL": pg, "DAOBAN_WECHAT_TOKEN": WECHAT_TOKEN,
           "DAOBAN_API_TOKEN": API_TOKEN, "DAOBAN_HEADER_TIMEOUT": "2",
           "DAOBAN_DOORPLATE_KEYS": "fz:fuzz-doorplate-secret-0123", "DAOBAN_WS_IP_LIMIT": "100000",
           "DAOBAN_ALLOW_DEGRADED": "1"}
    with daoban_process(workdir, **env) as (base, _):
        yield base, workdir / "server.log"


@pytest.fixture(scope="module")
def pg_url_module() -> Iterator[str]:
    """A fresh PostgreSQL database for this module (see conftest.pg_url)."""
    import uuid

    import psycopg

    from tests.conftest import PG_ADMIN, _pg_available

    if not _pg_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"daoban_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}".replace("postgresql://",
                                                             "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- generators --------------------------------------------------------------------------------

NASTY = ["", " ", "\u0000", "a\u0000b", "\ud800", "\udfff x", "😀" * 50, "社保卡丢了咋整",
         "/human", "/rate:9", "/pick:../../etc", "<script>alert(1)</script>", "' OR 1=1 --",
         "%00", "\\", "\r\n\r\n", "=cmd|' /C calc'!A0", "x" * 1001, "长" * 3000,
         "${jndi:ldap://x}", "{{7*7}}", "\u202e反转", "\ufeff", "null", "true", "-1", "1e309"]


def text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(NASTY)
    n = rng.choice([1, 5, 40, 300])
    return "".join(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0x4E00, 0x9FA5),
                                   rng.randint(0, 0x1F), rng.randint(0xD800, 0xDFFF),
                                   rng.randint(0x10000, 0x10FFFF)])) for _ in range(n))


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 9 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**64), 10**40])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-320])
    if kind in (4, 5):
        return text(rng)
    if kind in (6, 7):
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {text(rng)[:20]: value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def body(rng: random.Random, fields: dict[str, Callable[[], Any]]) -> bytes:
    """A JSON body: mostly the expected shape with odd values, sometimes anything at all."""
    roll = rng.random()
    if roll < 0.08:
        depth = rng.choice([100, 1000, 5000])
        return b'{"text": ' + b"[" * depth + b"]" * depth + b"}"
    if roll < 0.16:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    if roll < 0.22:
        return rng.choice([b"", b"{", b"nul", b'{"text": "\\ud800"}', b'{"text": "a\\u0000"}',
                           b'{"text": NaN}', b'{"text": "x"' + b" " * 2000, b"[]", b'"x"'])
    if roll < 0.35:
        return json.dumps(value(rng)).encode()
    obj = {k: (make() if rng.random() < 0.7 else value(rng)) for k, make in fields.items()
           if rng.random() < 0.9}
    if rng.random() < 0.2:
        obj[text(rng)[:10]] = value(rng)
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


def door_token(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        kid = rng.choice([b"fz", b"k1", b"", b"\xff\xfe", b"x" * 16])
        raw = (bytes([rng.choice([1, 1, 0, 2, 255]), len(kid)]) + kid
               + struct.pack(">II", rng.choice([0, 1, 2**32 - 1, 1001]),
                             rng.choice([0, 2**32 - 1, 10**9, 1_500_000]))
               + bytes(rng.randrange(256) for _ in range(rng.choice([12, 12, 0, 30]))))
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    if roll < 0.6:
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 90)))
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() or "A"
    return quote(text(rng)[:120], safe="", errors="surrogatepass") or "%20"


# --- the fuzz run ---------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.cases = 0
        self.statuses: Counter[int] = Counter()
        self.bad: list[str] = []
        self.closes: Counter[int] = Counter()
        self.ws_sent = 0

    def http(self, where: str, r: httpx.Response) -> None:
        self.cases += 1
        self.statuses[r.status_code] += 1
        if r.status_code >= 500:
            self.bad.append(f"{where}: {r.status_code} {r.text[:200]}")


def fuzz_rest(http: httpx.Client, rng: random.Random, tally: Tally) -> None:
    convs = [{"token": "", **http.post("/api/v1/conversations").json()} for _ in range(3)]
    for _ in range(CASES["rest"]):
        conv = rng.choice(convs)
        cid = rng.choice([conv["id"], conv["id"], "rasa:alice", text(rng)[:50] or "x",
                          "a" * 200, "..", "%00"])
        auth = rng.choice([{"Authorization": f"Bearer {conv['token']}"}, {},
                           {"Authorization": "Bearer " + text(rng)[:60]},
                           {"X-Conversation-Token": conv["token"]},
                           {"Authorization": "Basic Zm9vOmJhcg=="},
                           {"Authorization": f"Bearer {API_TOKEN}"}])
        # Any bytes a client library will put in a header (no controls, no outer spaces).
        raw_auth: dict[bytes, bytes] = {
            k.encode(): bytes(c for c in v.encode("utf-8", "surrogatepass") if c >= 0x20
                              and c != 0x7F).strip() or b"x" for k, v in auth.items()}
        path = quote(cid, safe=":", errors="surrogatepass")
        b = body(rng, {"text": lambda: text(rng), "message_id": lambda: text(rng)[:30],
                       "channel": lambda: rng.choice(["rest", "web", "X", text(rng)[:5]])})
        kind = rng.random()
        if kind < 0.55:
            r = http.post(f"/api/v1/conversations/{path}/messages", content=b,
                          headers={b"content-type": b"application/json", **raw_auth})
        elif kind < 0.8:
            r = http.get(f"/api/v1/conversations/{path}", headers=raw_auth)
        elif kind < 0.9:
            r = http.post("/api/v1/conversations", content=b,
                          headers={"content-type": rng.choice(["application/json",
                                                               "text/plain", "x/y"])})
        else:
            r = http.request(rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS"]),
                             f"/api/v1/conversations/{path}", content=b)
        tally.http("rest", r)


def fuzz_webhook(http: httpx.Client, rng: random.Random, tally: Tally) -> None:
    senders = ["alice", "bob", "奇怪的 id/..", "x" * 1000]
    for _ in range(CASES["webhook"]):
        b = body(rng, {"sender": lambda: rng.choice(senders) if rng.random() < 0.6
                       else text(rng), "message": lambda: text(rng)})
        r = http.post("/webhooks/rest/webhook", content=b,
                      headers={"content-type": "application/json"})
        tally.http("webhook", r)


def wechat_xml(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.2:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    if roll < 0.3:
        return rng.choice([
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;'
            b'&a;&a;&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>',
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content>'
            b"</xml>", b"<xml>" * 2000, b"<xml><Content><![CDATA[", b"<xml></xml>", b""])
    fields = {"ToUserName": "gh_fuzz", "FromUserName": text(rng)[:40],
              "CreateTime": rng.choice(["0", "-1", "99999999999999999999", text(rng)[:10]]),
              "MsgType": rng.choice(["text", "event", "image", "voice", text(rng)[:8]]),
              "Content": text(rng), "Event": rng.choice(["subscribe", "CLICK", "x"]),
              "EventKey": text(rng)[:20], "MsgId": str(rng.randint(-5, 2**70))}
    parts = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()
                    if rng.random() < 0.85)
    return f"<xml>{parts}</xml>".encode("utf-8", "surrogatepass")


def fuzz_wechat(http: httpx.Client, rng: random.Random, tally: Tally) -> None:
    for i in range(CASES["wechat"]):
        ts, nonce = str(int(time.time())), f"n{i}-{rng.randrange(10**9)}"
        roll = rng.random()
        if roll < 0.4:  # correctly signed: the XML itself is parsed
            sig = hashlib.sha1("".join(sorted([WECHAT_TOKEN, ts, nonce])).encode()).hexdigest()
            q = {"signature": sig, "timestamp": ts, "nonce": nonce, "openid": "o-fuzz"}
        elif roll < 0.7:
            q = {"signature": text(rng)[:40], "timestamp": rng.choice([ts, "978307200", "x"]),
                 "nonce": text(rng)[:20]}
        elif roll < 0.85:
            q = {"encrypt_type": "aes", "msg_signature": "0" * 40, "timestamp": ts,
                 "nonce": nonce}
        else:
            q = {}
        q = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
             for k, v in q.items()}
        if rng.random() < 0.15:
            r = http.get("/wechat", params={**q, "echostr": text(rng)[:30]
                                            .encode("utf-8", "surrogatepass")
                                            .decode("utf-8", "replace")})
        else:
            r = http.post("/wechat", params=q, content=wechat_xml(rng),
                          headers={"content-type": "text/xml"})
        tally.http("wechat", r)


def fuzz_doorplate(http: httpx.Client, rng: random.Random, tally: Tally) -> None:
    for _ in range(CASES["doorplate"]):
        r = http.get("/d/" + door_token(rng))
        tally.http("doorplate", r)


def ws_frame(rng: random.Random, conv: dict[str, Any]) -> str | bytes:
    roll = rng.random()
    if roll < 0.07:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 100)))
    if roll < 0.12:
        depth = rng.choice([500, 2000, 4000])
        return "[" * depth + "]" * depth
    if roll < 0.17:
        return rng.choice(["", "{", "null", "[]", "1", '"x"', "x" * 9000, "{" * 20_000])
    kind = rng.choice(["hello", "message", "message", "message", "ping", "ack", "pong",
                       text(rng)[:10], None])
    frame: dict[str, Any] = {"type": kind}
    if kind == "hello":
        frame.update({"conversation_id": rng.choice([conv.get("id"), None, "rasa:alice",
                                                     value(rng)]),
                      "token": rng.choice([conv.get("token"), None, value(rng)]),
                      "last_seq": rng.choice([0, 5, -1, True, None, "3", 2**70, 1.5,
                                              value(rng)]),
                      "place": rng.choice([None, door_token(rng), value(rng)])})
    else:
        frame.update({"client_id": rng.choice([f"c{rng.randrange(10**6)}", "", None,
                                               value(rng)]),
                      "text": rng.choice([text(rng), value(rng)]),
                      "seq": value(rng)})
    return json.dumps(frame, ensure_ascii=rng.random() < 0.5)


def fuzz_ws(base: str, rng: random.Random, tally: Tally) -> None:
    url = base.replace("http", "ws", 1) + "/ws/chat"
    conv: dict[str, Any] = {}
    while tally.ws_sent < CASES["ws"]:
        with connect(url, open_timeout=10, max_size=2**20) as ws:
            if rng.random() < 0.8:
                ws.send(json.dumps({"type": "hello", "conversation_id": conv.get("id"),
                                    "token": conv.get("token"), "last_seq": 0}))
                w = json.loads(ws.recv(timeout=10))
                if "token" in w:
                    conv = {"id": w["conversation_id"], "token": w["token"]}
            ws_session(ws, rng, tally, conv)


def ws_session(ws: ClientConnection, rng: random.Random, tally: Tally,
               conv: dict[str, Any]) -> None:
    """Frames until the server closes the socket (a frame too large) or the cases run out."""
    while tally.ws_sent < CASES["ws"]:
        frame = ws_frame(rng, conv)
        tally.ws_sent += 1
        tally.cases += 1
        try:
            ws.send(frame.encode("utf-8", "surrogatepass") if isinstance(frame, str)
                    and not _utf8(frame) else frame)
            ws.send('{"type": "ping"}')
            while True:  # every frame is answered before the pong: the socket is alive
                got = json.loads(ws.recv(timeout=30))
                if got.get("type") == "pong":
                    break
                if got.get("type") == "error" and got.get("code") == "internal":
                    tally.bad.append(f"ws internal error after {str(frame)[:80]!r}")
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            tally.closes[code] += 1
            if code == 1011:
                tally.bad.append(f"ws closed 1011 after {str(frame)[:80]!r}")
            return


def _utf8(s: str) -> bool:
    try:
        s.encode()
        return True
    except UnicodeEncodeError:
        return False


def test_fuzz_no_5xx_no_1011_no_traceback(server: tuple[str, Path]) -> None:
    base, log = server
    rng = random.Random(SEED)
    tally = Tally()
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=30) as http:
        fuzz_rest(http, rng, tally)
        fuzz_webhook(http, rng, tally)
        fuzz_wechat(http, rng, tally)
        fuzz_doorplate(http, rng, tally)
    fuzz_ws(base, rng, tally)
    elapsed = time.monotonic() - started
    print(f"fuzz: {tally.cases} cases in {elapsed:.1f} s; statuses {dict(tally.statuses)}; "
          f"closes {dict(tally.closes)}")
    assert tally.cases >= 2000
    assert not tally.bad, "\n".join(tally.bad[:20])
    server_log = log.read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[server_log.find("Traceback") - 500:][:3000]
    assert " 500 " not in server_log and "Exception in ASGI" not in server_log


# --- limits a real server enforces while reading (issue 15, finding 4) --------------------------


def test_slow_headers_are_cut_off(server: tuple[str, Path]) -> None:
    base, _ = server
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        started = time.monotonic()
        got = b""
        while True:
            try:
                chunk = s.recv(1024)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        assert time.monotonic() - started < 6  # DAOBAN_HEADER_TIMEOUT=2 for this server
    with socket.create_connection((host, int(port)), timeout=10) as s:  # a silent one too
        started = time.monotonic()
        assert s.recv(1024) == b"" and time.monotonic() - started < 6


def test_websocket_frames_above_the_limit_are_refused_by_the_protocol(
    server: tuple[str, Path],
) -> None:
    base, _ = server
    with connect(base.replace("http", "ws", 1) + "/ws/chat", max_size=2**24) as ws:
        ws.send(json.dumps({"type": "hello", "conversation_id": None}))
        json.loads(ws.recv(timeout=10))
        ws.send("x" * (15 * 2**20))  # 15 MiB: closed with 1009 (message too big)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_credentials_stay_out_of_the_access_log(server: tuple[str, Path]) -> None:
    base, log = server
    with httpx.Client(base_url=base, timeout=30) as http:
        conv = http.post("/api/v1/conversations").json()
        r = http.get(f"/api/v1/conversations/{conv['id']}",
                     headers={"Authorization": f"Bearer {conv['token']}"})
        assert r.status_code == 200
        assert http.get("/api/v1/conversations/rasa:alice",
                        params={"token": API_TOKEN}).status_code in (200, 404)
    time.sleep(0.5)
    text_ = log.read_text(errors="replace")
    assert f"/api/v1/conversations/{conv['id']}" in text_  # the access log is on
    assert API_TOKEN not in text_ and conv["token"] not in text_
