"""Issue 15 through the real app: conversation capabilities (finding 1), limits while
reading (4), headers, docs, door-sign statistics (8) and edge inputs (9)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import struct
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from assistant.agents import Role
from assistant.core import Assistant
from doorplate.service import Doorplates
from tests.consoles import PASSWORD
from tests.harness import doorplate_app

API_TOKEN = "server-api-token-0123456789abcdef"
KEYS = "k1:first-secret-0123456789"
ID_NUMBER = "230102199001011234"  # 示例 (a made-up number in the documented format)


def _app(folder: Path, **options: Any) -> tuple[TestClient, Doorplates]:
    app, dp = doorplate_app(folder, "sec", KEYS, **options)
    return TestClient(app, raise_server_exceptions=False), dp


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Doorplates]]:
    client, dp = _app(tmp_path_factory.mktemp("sec"), api_token=API_TOKEN, ws_per_address=3,
                      max_body_bytes=64 * 1024)
    with client:
        yield client, dp


@pytest.fixture
def client(env: tuple[TestClient, Doorplates]) -> TestClient:
    return env[0]


def recv(ws: WebSocketTestSession) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.receive_text())
    return frame


def frames_until(ws: WebSocketTestSession, pred: Any, limit: int = 40) -> list[dict[str, Any]]:
    out = []
    for _ in range(limit):
        out.append(recv(ws))
        if pred(out[-1]):
            return out
    raise AssertionError(out)


def hello(ws: WebSocketTestSession, **fields: Any) -> dict[str, Any]:
    ws.send_text(json.dumps({"type": "hello", "last_seq": 0, **fields}))
    return recv(ws)


def say(ws: WebSocketTestSession, client_id: str, words: str) -> list[dict[str, Any]]:
    ws.send_text(json.dumps({"type": "message", "client_id": client_id, "text": words}))
    return frames_until(ws, lambda f: f["type"] == "message" and f["from"] == "bot")


# --- finding 1: a conversation opens only with its capability --------------------------------


def test_rest_conversation_needs_its_token(client: TestClient) -> None:
    r = client.post("/api/v1/conversations")
    assert r.status_code == 201 and set(r.json()) == {"id", "token"}
    cid, token = r.json()["id"], r.json()["token"]
    assert len(token) >= 40  # 256 random bits
    url = f"/api/v1/conversations/{cid}"
    said = client.post(url + "/messages", json={"text": f"我的身份证号是{ID_NUMBER}"},
                       headers={"Authorization": f"Bearer {token}"})
    assert said.status_code == 200
    # Without a token: 401, whatever the id.
    for target in (url, "/api/v1/conversations/no-such-id"):
        r = client.get(target)
        assert r.status_code == 401 and r.json()["code"] == "conversation_token_required"
        assert ID_NUMBER not in r.text
    r = client.post(url + "/messages", json={"text": "你好"})
    assert r.status_code == 401
    # A wrong token, another conversation's token and a missing conversation: one answer.
    other = client.post("/api/v1/conversations").json()["token"]
    answers = {client.get(url, headers={"Authorization": f"Bearer {t}"}).text
               for t in ("wrong", other)}
    answers.add(client.get("/api/v1/conversations/no-such-id",
                           headers={"Authorization": f"Bearer {token}"}).text)
    assert len(answers) == 1 and ID_NUMBER not in answers.pop()
    assert client.post(url + "/messages", json={"text": "你好"},
                       headers={"X-Conversation-Token": other}).status_code == 404
    # The holder reads it, with either header.
    for headers in ({"Authorization": f"Bearer {token}"}, {"X-Conversation-Token": token}):
        r = client.get(url, headers=headers)
        assert r.status_code == 200 and ID_NUMBER in r.text


def test_only_the_token_hash_is_stored(client: TestClient) -> None:
    cid, token = client.post("/api/v1/conversations").json().values()
    assistant: Assistant = client.app.state.services.assistant  # type: ignore[attr-defined]
    with assistant.store.engine.connect() as c:
        row = c.execute(text("SELECT * FROM conversations WHERE id = :i"), {"i": cid}).one()
    assert token not in json.dumps([str(v) for v in row])
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()


def test_webhook_conversations_open_only_to_the_server_api_token(client: TestClient) -> None:
    r = client.post("/webhooks/rest/webhook",
                    json={"sender": "alice", "message": f"身份证号{ID_NUMBER}补办身份证"})
    assert r.status_code == 200
    mine = client.post("/api/v1/conversations").json()["token"]
    url = "/api/v1/conversations/rasa:alice"
    assert client.get(url).status_code == 401
    for headers in ({"Authorization": f"Bearer {mine}"}, {"X-Conversation-Token": "alice"},
                    {"Authorization": "Bearer " + API_TOKEN[:-1]}):
        r = client.get(url, headers=headers)
        assert r.status_code == 404 and ID_NUMBER not in r.text
        assert client.post(url + "/messages", json={"text": "我也要办"},
                           headers=headers).status_code == 404
    r = client.get(url, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code == 200 and ID_NUMBER in r.text
    assert client.get(url, params={"token": API_TOKEN}).status_code == 200  # as Rasa's ?token=


def test_without_an_api_token_webhook_conversations_are_closed(tmp_path: Path) -> None:
    c, _ = _app(tmp_path)
    with c:
        c.post("/webhooks/rest/webhook", json={"sender": "bob", "message": "你好"})
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            assert c.get("/api/v1/conversations/rasa:bob", headers=headers).status_code in (
                401, 404)


def test_web_chat_resumes_only_with_the_token_from_its_welcome(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        welcome = hello(ws, conversation_id=None)
        cid, token = welcome["conversation_id"], welcome["token"]
        say(ws, "m1", f"我的身份证号是{ID_NUMBER}")
    client.post("/webhooks/rest/webhook", json={"sender": "carol", "message": ID_NUMBER})
    attempts: list[dict[str, Any]] = [
        {"conversation_id": cid}, {"conversation_id": cid, "token": "guess"},
        {"conversation_id": cid, "token": None}, {"conversation_id": cid, "token": ["x"]},
        {"conversation_id": "rasa:carol"}, {"conversation_id": "rasa:carol", "token": token},
    ]
    for fields in attempts:
        with client.websocket_connect("/ws/chat") as ws:
            w = hello(ws, **fields)
            assert w["resumed"] is False and w["conversation_id"] not in (cid, "rasa:carol")
            assert w["last_seq"] == 0 and w["token"] != token
            ws.send_text(json.dumps({"type": "ping"}))
            assert recv(ws) == {"type": "pong"}  # nothing replayed before the pong
    with client.websocket_connect("/ws/chat") as ws:
        w = hello(ws, conversation_id=cid, token=token)
        assert w["resumed"] is True and "token" not in w
        replay = frames_until(ws, lambda f: f["type"] == "message" and f["from"] == "bot")
        assert ID_NUMBER in replay[0]["text"]


def test_chat_page_keeps_and_sends_the_token() -> None:
    js = (Path(__file__).parents[1] / "channels" / "static" / "chat.js").read_text()
    assert "save(KEY.token, token)" in js and "token: token || null" in js


# --- finding 4: limits while reading ---------------------------------------------------------


def test_chunked_body_is_refused_while_reading(client: TestClient) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"text": "'
        for _ in range(10_000):  # 10 MB offered, in 1 KB chunks without a Content-Length
            sent += 1
            yield b"x" * 1024
        yield b'"}'

    r = client.post("/webhooks/rest/webhook", content=body(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    assert "Content-Security-Policy" in r.headers


def test_websockets_per_address_are_capped(client: TestClient) -> None:
    opened = [client.websocket_connect("/ws/chat") for _ in range(3)]
    sockets = [s.__enter__() for s in opened]
    try:
        for ws in sockets:
            assert hello(ws, conversation_id=None)["type"] == "welcome"
        with pytest.raises(WebSocketDisconnect) as refused, \
                client.websocket_connect("/ws/chat") as extra:
            extra.receive_text()
        assert refused.value.code == 1008
    finally:
        for s in opened:
            s.__exit__(None, None, None)
    with client.websocket_connect("/ws/chat") as ws:  # slots come back when sockets close
        assert hello(ws, conversation_id=None)["type"] == "welcome"


# --- finding 8: headers, docs, door-sign statistics -------------------------------------------


def test_security_headers_on_every_response(client: TestClient) -> None:
    for path in ("/", "/health", "/static/chat.js", "/agent", "/no/such/path",
                 "/api/v1/conversations/x"):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-eval" not in csp
    assert "frame-ancestors" not in client.get("/").headers["content-security-policy"]
    assert "frame-ancestors 'none'" in client.get("/agent").headers["content-security-policy"]


def test_frame_ancestors_setting_and_docs_off_by_default(client: TestClient,
                                                         tmp_path: Path) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404
    c, dp = _app(tmp_path, frame_ancestors="https://www.example.gov.cn", api_docs=True)
    with c:
        assert "frame-ancestors https://www.example.gov.cn" in c.get(
            "/").headers["content-security-policy"]
        token = dp.issue(dp.places.places["zl-jiangpan-16"])
        assert "frame-ancestors https://www.example.gov.cn" in c.get(
            f"/d/{token}").headers["content-security-policy"]
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200


def _supervisor(client: TestClient) -> dict[str, str]:
    agents = client.app.state.desk.agents  # type: ignore[attr-defined]
    if agents.login("sec-boss", PASSWORD, timedelta(hours=1)) is None:
        agents.add("sec-boss", PASSWORD, display_name="值班长", role=Role.SUPERVISOR)
    got = agents.login("sec-boss", PASSWORD, timedelta(hours=1))
    return {"Authorization": f"Bearer {got[0]}"}


def test_stats_csv_defuses_formulas(env: tuple[TestClient, Doorplates]) -> None:
    client, dp = env
    attacks = ["=HYPERLINK(\"http://evil.example\",\"点我\")", "+1+1", "-2+3", "@SUM(A1)",
               "\tcmd", "\r=1"]
    for a in attacks:
        dp.record_message("zl-jiangpan-16", a, None)
    r = client.get("/doorplate/stats.csv", headers=_supervisor(client))
    assert r.status_code == 200
    cells = [c for row in csv.reader(io.StringIO(r.text)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=HYPERLINK(\"http://evil.example\",\"点我\")" in cells and "'+1+1" in cells


def test_revoked_and_forged_tokens_look_the_same(env: tuple[TestClient, Doorplates]) -> None:
    client, dp = env
    place = dp.places.places["sz-xinhua-33"]
    revoked = dp.issue(place)
    dp.revoke(place)
    good = dp.issue(dp.places.places["jw-toudao-25"])
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    a, b = client.get(f"/d/{revoked}"), client.get(f"/d/{forged}")
    assert (a.status_code, a.text) == (b.status_code, b.text) == (404, a.text)


def test_scans_count_once_per_client_per_plate_per_hour(
    env: tuple[TestClient, Doorplates],
) -> None:
    client, dp = env
    place = dp.places.places["jw-anping-18"]
    token = dp.issue(place)

    def scans() -> int:
        return next((n for pid, _, n, _ in dp.stats().plates if pid == place.id), 0)

    before = scans()
    for _ in range(5):
        assert client.get(f"/d/{token}").status_code == 200
    assert scans() == before + 1
    dp.record_scan(place.id, "203.0.113.7")  # another client counts
    assert scans() == before + 2
    later = dp.clock
    dp.clock = lambda: later() + timedelta(hours=1, minutes=1)
    try:
        client.get(f"/d/{token}")  # the same client an hour later counts again
    finally:
        dp.clock = later
    assert scans() == before + 3


# --- finding 9: edge inputs never give a 500, a 1011 or a traceback --------------------------


def overflowing_token() -> str:
    body = bytes([1, 2]) + b"k1" + struct.pack(">II", 1, 0xFFFFFFFF)
    return base64.urlsafe_b64encode(body + b"\0" * 12).rstrip(b"=").decode()


def test_edge_inputs_over_http(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    r = client.get(f"/d/{overflowing_token()}")
    assert r.status_code == 404 and "二维码暂时无法使用" in r.text
    for body in ({"sender": "a\u0000b", "message": "你好"}, {"sender": "x", "message": "a\u0000"},
                 {"sender": "x", "message": "\ud800"}):
        r = client.post("/webhooks/rest/webhook", content=json.dumps(body),
                        headers={"content-type": "application/json"})
        assert r.status_code == 422, body
    deep = b'{"sender": "x", "message": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert client.post("/webhooks/rest/webhook", content=deep,
                       headers={"content-type": "application/json"}).status_code == 400
    assert "Traceback" not in caplog.text


def test_edge_inputs_over_the_websocket(client: TestClient,
                                        caplog: pytest.LogCaptureFixture) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        assert hello(ws, conversation_id=None, last_seq=True)["code"] == "bad_frame"
        assert hello(ws, conversation_id=None, last_seq="3")["code"] == "bad_frame"
        assert hello(ws, conversation_id="a\u0000b", token="t")["resumed"] is False
        w = hello(ws, conversation_id=None, place=overflowing_token())
        assert w["type"] == "welcome"
        ws.send_bytes(b"\x00\x01binary")
        assert recv(ws)["code"] == "bad_frame"
        ws.send_text("[" * 4000 + "]" * 4000)  # under the 8 KB frame limit
        assert recv(ws)["code"] == "bad_frame"
        for bad in ("a\u0000b", "\ud800 lone"):
            ws.send_text(json.dumps({"type": "message", "client_id": "n", "text": bad}))
            assert recv(ws)["code"] == "bad_frame"
        ws.send_text(json.dumps({"type": "message", "client_id": "\u0000", "text": "你好"}))
        assert recv(ws)["code"] == "bad_frame"
        assert say(ws, "ok", "社保卡丢了咋整")[-1]["from"] == "bot"  # the socket lives
    assert "Traceback" not in caplog.text and "web chat frame failed" not in caplog.text
