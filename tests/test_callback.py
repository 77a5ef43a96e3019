"""Rasa's callback convention (issue 16.5): a webhook client's agent replies and desk notices
are POSTed, signed, to DAOBAN_CALLBACK_URL — a real HTTP receiver on a loopback port that
fails first and then answers — retried with back-off, and a final failure is shown to the
agent on the message."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.agents import Role
from assistant.desk import HANDED_BACK, JOINED, NOBODY, AgentDesk
from channels.callback import recipient
from channels.rest import rasa_conversation_id
from channels.settings import Settings
from tests.consoles import PASSWORD, agent_ws, token, until
from tests.harness import app_for

SECRET = "callback-secret-0123456789"


class Receiver:
    """A webhook client's callback endpoint: answers the statuses in ``plan`` first, then
    200; keeps every request it got."""

    def __init__(self) -> None:
        self.plan: list[int] = []
        self.got: list[tuple[dict[str, str], bytes, int]] = []
        self.changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.changed:
                    status = outer.plan.pop(0) if outer.plan else 200
                    outer.got.append(({k.lower(): v for k, v in self.headers.items()},
                                      body, status))
                    outer.changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b, status in self.got if status == 200]

    def wait(self, pred: Any, timeout: float = 20.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: pred(self), timeout):
                raise AssertionError(f"receiver got {[(s, b) for _, b, s in self.got]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("callback")
    settings = Settings(database_url=f"sqlite:///{d / 'c.db'}", index_dir=d / "idx",
                        agent_wait_limit=600, agent_grace_seconds=600,
                        callback_url=receiver.url, callback_secret=SECRET,
                        callback_attempts=4, callback_backoff=0.05)
    app = app_for(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        desk: AgentDesk = app.state.desk
        desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))
        desk.agents.add("boss", PASSWORD, display_name="李值班长", role=Role.SUPERVISOR)
        yield c


def _webhook(client: TestClient, sender: str, text: str) -> list[dict[str, Any]]:
    r = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert r.status_code == 200, r.text
    replies: list[dict[str, Any]] = r.json()
    return replies


def _verified(headers: dict[str, str], body: bytes) -> bool:
    stamp = headers["x-daoban-timestamp"]
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(stamp)) < 60
    return fresh and hmac.compare_digest(headers["x-daoban-signature"], "sha256=" + mac)


def _claimed(client: TestClient, agent: Any, sender: str) -> str:
    """The webhook citizen ``sender`` asks for a person; the agent claims."""
    cid = rasa_conversation_id(sender)
    _webhook(client, sender, "社保卡丢了咋整")
    _webhook(client, sender, "转人工")
    until(agent, lambda f: f["type"] == "lists" and any(
        q["conversation_id"] == cid for q in f["queue"]))
    agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
    until(agent, lambda f: f["type"] == "claimed")
    return cid


def test_agent_replies_reach_the_callback_signed_after_failures(
        client: TestClient, receiver: Receiver) -> None:
    with agent_ws(client, token(client)) as agent:
        until(agent, lambda f: f["type"] == "welcome")
        before = len(receiver.got)
        receiver.plan = [503, 500]  # the receiver is down for two attempts
        cid = _claimed(client, agent, "citizen-1")
        receiver.wait(lambda r: r.delivered())
        joined = receiver.got[before:]
        # What rode on the webhook's answers is not sent again; the claim's notice is,
        # after two failures, as one delivery (the same id on every attempt).
        assert [s for _, _, s in joined] == [503, 500, 200]
        assert len({h["x-daoban-delivery"] for h, _, _ in joined}) == 1
        assert json.loads(joined[-1][1]) == {"recipient_id": "citizen-1", "text": JOINED}
        assert all(_verified(h, b) for h, b, _ in joined)

        agent.send_text(json.dumps({"type": "send", "conversation_id": cid, "client_id": "a1",
                                    "text": "您好，我是王帮办。补卡请带身份证。"}))
        until(agent, lambda f: f["type"] == "ack" and f["client_id"] == "a1")
        receiver.wait(lambda r: len(r.delivered()) == 2)
        assert receiver.delivered()[-1] == {"recipient_id": "citizen-1",
                                            "text": "您好，我是王帮办。补卡请带身份证。"}
        headers, body, _ = receiver.got[-1]
        assert _verified(headers, body)
        assert not _verified({**headers, "x-daoban-timestamp": "1"}, body)  # signs the time too
        assert headers["content-type"].startswith("application/json")

        agent.send_text(json.dumps({"type": "handback", "conversation_id": cid}))
        until(agent, lambda f: f["type"] == "ended")
        receiver.wait(lambda r: len(r.delivered()) == 3)
        back = receiver.delivered()[-1]
        assert back["text"] == HANDED_BACK and back["recipient_id"] == "citizen-1"
        assert back["buttons"] and {"title", "payload"} == set(back["buttons"][0])
    desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
    assert not [e for e in desk.store.events(cid) if e["type"] == "delivery"]


def test_a_reply_the_callback_never_takes_is_shown_to_the_agent_then_held(
        client: TestClient, receiver: Receiver) -> None:
    with agent_ws(client, token(client)) as agent:
        until(agent, lambda f: f["type"] == "welcome")
        cid = _claimed(client, agent, "citizen-2")
        receiver.wait(lambda r: r.delivered() and r.delivered()[-1]["recipient_id"] == "citizen-2")
        tries = len(receiver.got)
        receiver.plan = [500, 502, 503, 504]  # every attempt fails
        agent.send_text(json.dumps({"type": "send", "conversation_id": cid, "client_id": "b1",
                                    "text": "材料清单我稍后发给您。"}))
        frames = until(agent, lambda f: f["type"] == "ack" and f["client_id"] == "b1")
        frames += until(agent, lambda f: f["type"] == "event" and f["kind"] == "delivery")
        said = next(f for f in frames if f["type"] == "event" and f["kind"] == "agent"
                    and f["text"] == "材料清单我稍后发给您。")
        failed = frames[-1]
        assert failed["of"] == said["seq"] and failed["ok"] is False and failed["code"] == 504
        assert "回调未送达" in failed["text"] and "已尝试 4 次" in failed["text"]
        assert "留作留言" in failed["text"]
        assert len(receiver.got) - tries == 4
        assert len({h["x-daoban-delivery"] for h, _, _ in receiver.got[tries:]}) == 1

        # Left as a 留言, it goes out when the citizen writes again.
        agent.send_text(json.dumps({"type": "hold", "conversation_id": cid,
                                    "seq": said["seq"], "client_id": "h1"}))
        until(agent, lambda f: f["type"] == "event" and f["kind"] == "delivery" and f["held"])
        receiver.plan = [503]  # the first attempt fails: the second message comes meanwhile
        _webhook(client, "citizen-2", "还在吗？")
        _webhook(client, "citizen-2", "喂？")
        until(agent, lambda f: f["type"] == "event" and f["kind"] == "delivery" and f["ok"])
        agent.send_text(json.dumps({"type": "send", "conversation_id": cid, "client_id": "b3",
                                    "text": "在的。"}))
        receiver.wait(lambda r: r.delivered()[-1]["text"] == "在的。")  # the pushes keep order
        texts = [m["text"] for m in receiver.delivered()]
        assert texts.count("材料清单我稍后发给您。") == 1  # once, though the citizen wrote twice
        assert texts[-2:] == ["材料清单我稍后发给您。", "在的。"]

        # A receiver that refuses outright (a 4xx other than 408/425/429) is not retried.
        tries = len(receiver.got)
        receiver.plan = [410]
        agent.send_text(json.dumps({"type": "send", "conversation_id": cid, "client_id": "b2",
                                    "text": "还有别的问题吗？"}))
        failed = until(agent, lambda f: f["type"] == "event" and f["kind"] == "delivery")[-1]
        assert failed["code"] == 410 and "对方拒收" in failed["text"]
        assert len(receiver.got) - tries == 1


def test_nobody_on_duty_is_pushed_to_the_callback(client: TestClient, receiver: Receiver) -> None:
    # Only a 人社 agent exists: a 公安 request finds nobody, and the citizen is told so
    # through the callback (it does not ride on the 转人工 answer).
    sender = "citizen with spaces"
    _webhook(client, sender, "身份证丢了怎么补办")
    replies = _webhook(client, sender, "转人工")
    assert all(r["text"] != NOBODY for r in replies)
    cid = rasa_conversation_id(sender)
    hashed = recipient(cid)
    assert hashed == "h-" + hashlib.sha256(sender.encode()).hexdigest()[:32]
    receiver.wait(lambda r: any(m["recipient_id"] == hashed and m["text"] == NOBODY
                                for m in r.delivered()))


def test_callback_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="DAOBAN_CALLBACK_URL"):
        Settings(callback_url="ftp://example.invalid/x")
