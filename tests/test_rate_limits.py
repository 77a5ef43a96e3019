"""Rate limits (issue 15, finding 5): conversation creation, REST and webhook messages, web
chat connections and 转人工, per address and per conversation, refused before any work."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from assistant.core import Assistant
from channels.ratelimit import MemoryBuckets, RedisBuckets
from tests.harness import rest_client


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with rest_client(tmp_path_factory.mktemp("limits"), "limits", rate_limits=True,
                     limit_new_conversations=5, limit_messages=6,
                     limit_conversation_messages=3, limit_chat_connections=2,
                     limit_human_requests=2) as c:
        yield c


def at(app: TestClient, address: str) -> TestClient:
    return TestClient(app.app, client=(address, 40000))


def _assistant(app: TestClient) -> Assistant:
    a: Assistant = app.app.state.services.assistant  # type: ignore[attr-defined]
    return a


def test_conversation_creation_per_address(app: TestClient) -> None:
    c = at(app, "10.10.0.1")
    assert [c.post("/api/v1/conversations").status_code for _ in range(5)] == [201] * 5
    r = c.post("/api/v1/conversations")
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert "频繁" in r.json()["error"] and r.headers["retry-after"] == "60"
    assert at(app, "10.10.0.2").post("/api/v1/conversations").status_code == 201


def test_messages_per_conversation_and_per_address(app: TestClient) -> None:
    c = at(app, "10.11.0.1")
    made = c.post("/api/v1/conversations").json()
    cid, headers = made["id"], {"Authorization": f"Bearer {made['token']}"}
    url = f"/api/v1/conversations/{cid}/messages"
    codes = [c.post(url, json={"text": "你好"}, headers=headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    said = [e for e in _assistant(app).store.events(cid) if e["type"] == "user"]
    assert len(said) == 3  # the refused one never reached the assistant
    # The webhook: per address (6 a minute), whatever the sender.
    w = at(app, "10.11.0.2")
    codes = [w.post("/webhooks/rest/webhook", json={"sender": f"s{i}-{uuid.uuid4().hex[:6]}",
                                                    "message": "你好"}).status_code
             for i in range(7)]
    assert codes == [200] * 6 + [429]


def test_human_requests_per_address(app: TestClient) -> None:
    c = at(app, "10.12.0.1")
    codes = [c.post("/webhooks/rest/webhook", json={"sender": f"h{i}-{uuid.uuid4().hex[:6]}",
                                                    "message": "转人工"}).status_code
             for i in range(3)]
    assert codes == [200, 200, 429]
    r = c.post("/webhooks/rest/webhook", json={"sender": "h9", "message": "转人工"})
    assert r.status_code == 429 and "12345" in r.json()["error"]
    # Other questions from the same address still go through.
    assert c.post("/webhooks/rest/webhook",
                  json={"sender": "h9", "message": "社保卡丢了咋整"}).status_code == 200


def test_web_chat_connections_and_human_frames(app: TestClient) -> None:
    c = at(app, "10.13.0.1")
    for _ in range(2):
        with c.websocket_connect("/ws/chat") as ws:
            ws.send_text(json.dumps({"type": "hello"}))
            assert json.loads(ws.receive_text())["type"] == "welcome"
    with c.websocket_connect("/ws/chat") as ws:
        frame = json.loads(ws.receive_text())
        assert frame["type"] == "error" and frame["code"] == "rate_limited"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1013
    # 转人工 frames over one socket: the third is answered with an error, not processed.
    d = at(app, "10.13.0.2")
    with d.websocket_connect("/ws/chat") as ws:
        ws.send_text(json.dumps({"type": "hello"}))
        cid = json.loads(ws.receive_text())["conversation_id"]
        for i in range(3):
            ws.send_text(json.dumps({"type": "message", "client_id": f"h{i}", "text": "转人工"}))
        seen = []
        while True:
            f = json.loads(ws.receive_text())
            seen.append(f)
            if f["type"] == "error" or (f["type"] == "ack" and f["client_id"] == "h2"):
                break
        assert f["type"] == "error" and f["code"] == "rate_limited" and f["client_id"] == "h2"
    said = [e["text"] for e in _assistant(app).store.events(cid) if e["type"] == "user"]
    assert said.count("转人工") <= 2


def test_memory_bucket_refills() -> None:
    b = MemoryBuckets()

    async def run() -> None:
        assert all([await b.take("k", 60) for _ in range(60)])
        assert not await b.take("k", 60)
        await anyio.sleep(1.1)  # 60 a minute: one a second
        assert await b.take("k", 60)
        assert not await b.take("k", 60)

    anyio.run(run)


@pytest.mark.redis
def test_redis_buckets_are_shared_between_processes() -> None:
    url = os.environ.get("DAOBAN_TEST_REDIS", "redis://127.0.0.1:6379/0")
    prefix = f"daoban-test-{uuid.uuid4().hex[:10]}:"

    async def run() -> None:
        a, b = RedisBuckets(url, prefix), RedisBuckets(url, prefix)
        try:
            await a._redis.ping()
        except Exception:
            pytest.skip("Redis is not running")
        try:
            got = [await (a, b)[i % 2].take("new:10.0.0.1", 4) for i in range(6)]
            assert got == [True] * 4 + [False] * 2
            assert await a.take("new:10.0.0.2", 4)
            assert 0 < await a._redis.ttl(prefix + "limit:new:10.0.0.1") <= 61
        finally:
            await a._redis.delete(prefix + "limit:new:10.0.0.1", prefix + "limit:new:10.0.0.2")
            await a.close()
            await b.close()

    anyio.run(run)


def test_off_when_disabled(tmp_path: Path) -> None:
    with rest_client(tmp_path, "off", rate_limits=False, limit_new_conversations=1) as c:
        assert [c.post("/api/v1/conversations").status_code for _ in range(3)] == [201] * 3


def test_bad_bodies_are_the_apps_to_refuse(app: TestClient) -> None:
    c = at(app, "10.14.0.1")
    for body in (b"[" * 5000 + b"]" * 5000, b"\xff\xfe", b"{\"sender\": 1, \"message\": []}"):
        r = c.post("/webhooks/rest/webhook", content=body,
                   headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (body[:20], r.status_code)


def test_redis_away_limits_in_the_process() -> None:
    async def run() -> None:
        b = RedisBuckets("redis://127.0.0.1:1/0", "daoban-test:")  # nothing listens there
        try:
            assert [await b.take("k", 2) for _ in range(3)] == [True, True, False]
        finally:
            await b.close()

    anyio.run(run)
