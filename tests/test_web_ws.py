"""The /ws/chat protocol through the real app: ordering, resume, dedupe, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from assistant.model import ConversationMode
from channels import web
from channels.settings import Settings
from tests.harness import app_for


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("ws")
    settings = Settings(database_url=f"sqlite:///{d / 'ws.db'}", index_dir=d / "idx")
    app = app_for(settings)
    with TestClient(app) as c:
        yield c


def recv(ws: WebSocketTestSession) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.receive_text())
    return frame


def until(ws: WebSocketTestSession, pred: Any, limit: int = 30) -> list[dict[str, Any]]:
    """Frames up to and including the first that satisfies ``pred``."""
    out = []
    for _ in range(limit):
        f = recv(ws)
        out.append(f)
        if pred(f):
            return out
    raise AssertionError(f"no matching frame in {out}")


def hello(ws: WebSocketTestSession, cid: str | None = None, last: int = 0,
          token: str | None = None) -> dict[str, Any]:
    ws.send_text(json.dumps({"type": "hello", "conversation_id": cid, "token": token,
                             "last_seq": last}))
    return recv(ws)


def send(ws: WebSocketTestSession, client_id: str, text: str) -> list[dict[str, Any]]:
    ws.send_text(json.dumps({"type": "message", "client_id": client_id, "text": text}))
    frames = until(ws, lambda f: f["type"] == "ack" and f["client_id"] == client_id)
    return frames


def messages_until_bot(ws: WebSocketTestSession) -> list[dict[str, Any]]:
    return until(ws, lambda f: f["type"] == "message" and f["from"] == "bot")


def test_page_widget_and_static(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert client.get("/widget.js").status_code == 200
    assert client.get("/static/chat.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


@pytest.mark.parametrize("mode", list(ConversationMode))
def test_every_change_of_hands_has_a_line_for_the_page(mode: ConversationMode) -> None:
    frame = web.frame_of({"type": "mode", "seq": 1, "at": "2026-01-01T08:00:00+08:00",
                          "mode": mode.value, "reason": "closed"})
    assert frame["from"] == "system" and frame["mode"] == mode.value
    assert frame["text"].strip()  # the page shows it as a line of its own


def test_conversation_over_the_socket(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        w = hello(ws)
        assert w["type"] == "welcome" and w["resumed"] is False and w["conversation_id"]
        send(ws, "c-1", "社保卡丢了咋整")
        frames = messages_until_bot(ws)
        citizen = next(f for f in frames if f.get("from") == "citizen")
        assert citizen["text"] == "社保卡丢了咋整" and citizen["client_id"] == "c-1"
        bot = frames[-1]
        assert bot["card"]["name"] == "社会保障卡挂失补换"
        assert [b["title"] for b in bot["buttons"]][:2] == ["查看材料", "逐项核对材料"]
        seqs = [f["seq"] for f in frames if f["type"] == "message"]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        ws.send_text(json.dumps({"type": "ping"}))
        assert recv(ws) == {"type": "pong"}


def test_resume_gets_exactly_what_was_missed_and_resend_is_processed_once(
    client: TestClient,
) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        welcome = hello(ws)
        cid, token = welcome["conversation_id"], welcome["token"]
        send(ws, "m-1", "孩子出生了要办啥")
        first = messages_until_bot(ws)
        last_seen = first[0]["seq"]  # pretend only the citizen echo arrived before a drop
        all_seqs = [f["seq"] for f in first if f["type"] == "message"]
    with client.websocket_connect("/ws/chat") as ws:
        w = hello(ws, cid, last_seen, token)
        assert w["resumed"] is True and w["conversation_id"] == cid
        assert "token" not in w  # handed out once, when the conversation began
        replay = until(ws, lambda f: f["type"] == "message" and f["seq"] == all_seqs[-1])
        assert [f["seq"] for f in replay] == [s for s in all_seqs if s > last_seen]
        # The client re-sends the same message: acknowledged, not processed again.
        frames = send(ws, "m-1", "孩子出生了要办啥")
        assert [f["type"] for f in frames] == ["ack"]
    with client.websocket_connect("/ws/chat") as ws:  # a page reload: the whole transcript
        hello(ws, cid, 0, token)
        frames = until(ws, lambda f: f["type"] == "message" and f["seq"] == all_seqs[-1])
        citizen = [f for f in frames if f["from"] == "citizen"]
        assert [f["text"] for f in citizen] == ["孩子出生了要办啥"]


def test_unknown_conversation_starts_a_new_one(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        w = hello(ws, "does-not-exist", 5)
        assert w["resumed"] is False and w["conversation_id"] != "does-not-exist"


def test_bad_frames_get_error_frames_and_the_socket_lives(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_text("{not json")
        assert recv(ws)["code"] == "bad_frame"
        ws.send_text(json.dumps({"type": "message", "client_id": "x", "text": "你好"}))
        assert recv(ws)["code"] == "bad_frame"  # no hello yet
        hello(ws)
        ws.send_text("x" * (web.MAX_FRAME + 1))
        err = recv(ws)
        assert err["code"] == "too_large" and "太长" in err["message"]
        ws.send_text(json.dumps({"type": "message", "client_id": "e", "text": "  "}))
        frames = until(ws, lambda f: f["type"] == "error")
        assert frames[-1]["code"] == "empty"
        ws.send_text(json.dumps({"type": "message", "client_id": "l", "text": "长" * 1001}))
        frames = until(ws, lambda f: f["type"] == "error")
        assert frames[-1]["code"] == "too_long"
        ws.send_text(json.dumps([1, 2]))
        assert recv(ws)["code"] == "bad_frame"
        send(ws, "ok-1", "谢谢")  # still alive
        assert messages_until_bot(ws)[-1]["text"]


def test_rate_limit_per_connection(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "CONN_RATE", (3, 60.0))
    with client.websocket_connect("/ws/chat") as ws:
        hello(ws)
        codes = []
        for i in range(5):
            ws.send_text(json.dumps({"type": "message", "client_id": f"r{i}", "text": "谢谢"}))
            frames = until(ws, lambda f: f["type"] in ("error",) or (
                f["type"] == "message" and f["from"] == "bot"))
            codes.append(frames[-1].get("code", "ok"))
        assert codes == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
