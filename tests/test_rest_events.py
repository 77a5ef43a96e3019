"""REST long-poll (issue 16.5): ``GET /api/v1/conversations/{id}/events?after=&wait=``
brings an agent's reply to a REST citizen, through the real app and across two processes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.agents import Role
from assistant.desk import AgentDesk
from channels import rest_events
from channels.settings import Settings
from tests.consoles import PASSWORD, agent_ws, token, until
from tests.harness import app_for, rest_conversation
from tests.servers import daoban_process
from tests.test_agent_multiprocess import REDIS_URL, _redis_up

API_TOKEN = "events-api-token-0123456789abcdef"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("events")
    settings = Settings(database_url=f"sqlite:///{d / 'e.db'}", index_dir=d / "idx",
                        agent_wait_limit=600, agent_grace_seconds=600, api_token=API_TOKEN)
    app = app_for(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        desk: AgentDesk = app.state.desk
        desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))
        desk.agents.add("boss", PASSWORD, display_name="李值班长", role=Role.SUPERVISOR)
        yield c


def _poll(client: TestClient, cid: str, auth: dict[str, str], after: int,
          wait: float = 0) -> dict[str, Any]:
    r = client.get(f"/api/v1/conversations/{cid}/events",
                   params={"after": after, "wait": wait}, headers=auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _waiting_citizen(client: TestClient) -> tuple[str, dict[str, str], int]:
    """A REST conversation that asked for a person: (id, its token headers, last seq)."""
    cid, auth = rest_conversation(client)
    for text in ("社保卡丢了咋整", "转人工"):
        r = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": text},
                        headers=auth)
        assert r.status_code == 200, r.text
    got = _poll(client, cid, auth, 0)
    kinds = [(f["from"], f.get("mode")) for f in got["events"]]
    assert ("citizen", None) in kinds and ("system", "WAITING_AGENT") in kinds
    return cid, auth, got["last_seq"]


def test_long_poll_brings_the_agents_reply_and_hides_notes(client: TestClient) -> None:
    cid, auth, last = _waiting_citizen(client)
    with agent_ws(client, token(client)) as agent, ThreadPoolExecutor(2) as pool:
        until(agent, lambda f: f["type"] == "lists" and any(
            q["conversation_id"] == cid for q in f["queue"]))
        # Held before the claim; the claim's mode change answers it.
        joined: Future[dict[str, Any]] = pool.submit(_poll, client, cid, auth, last, 20)
        agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
        until(agent, lambda f: f["type"] == "claimed")
        got = joined.result(timeout=20)
        assert [(f["from"], f["mode"]) for f in got["events"]] == [("system", "WITH_AGENT")]
        last = got["last_seq"]

        # An internal note wakes the poll but is not the citizen's to see: it keeps waiting.
        reply: Future[dict[str, Any]] = pool.submit(_poll, client, cid, auth, last, 20)
        agent.send_text(json.dumps({"type": "note", "conversation_id": cid, "client_id": "n1",
                                    "text": "内部备注：核实身份"}))
        until(agent, lambda f: f["type"] == "ack" and f["client_id"] == "n1")
        assert not reply.done()
        sent = time.monotonic()
        agent.send_text(json.dumps({"type": "send", "conversation_id": cid, "client_id": "a1",
                                    "text": "您好，我是王帮办，补卡要带身份证。"}))
        got = reply.result(timeout=20)
        latency = time.monotonic() - sent
        assert [(f["from"], f["text"]) for f in got["events"]] == [
            ("agent", "您好，我是王帮办，补卡要带身份证。")]
        assert got["events"][0]["seq"] == got["last_seq"] > last
        assert latency < 2.0, latency

    # Immediately, without waiting, once it is stored; nothing is given twice.
    everything = _poll(client, cid, auth, 0)["events"]
    assert [f["seq"] for f in everything] == sorted({f["seq"] for f in everything})
    assert not [f for f in everything if "内部备注" in f["text"]]
    assert _poll(client, cid, auth, got["last_seq"])["events"] == []


def test_a_poll_with_nothing_new_waits_then_answers_empty(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    cid, auth = rest_conversation(client)
    client.post(f"/api/v1/conversations/{cid}/messages", json={"text": "你好"}, headers=auth)
    last = _poll(client, cid, auth, 0)["last_seq"]
    t0 = time.monotonic()
    assert _poll(client, cid, auth, last, wait=0.4) == {"events": [], "last_seq": last}
    assert time.monotonic() - t0 >= 0.4
    monkeypatch.setattr(rest_events, "MAX_WAIT", 0.5)  # a longer ask is cut to the cap
    t0 = time.monotonic()
    assert _poll(client, cid, auth, last, wait=600)["events"] == []
    assert 0.5 <= time.monotonic() - t0 < 5


def test_the_poll_is_opened_by_the_conversations_token_only(client: TestClient) -> None:
    cid, auth = rest_conversation(client)
    _, other_auth = rest_conversation(client)
    url = f"/api/v1/conversations/{cid}/events"
    none = client.get(url)
    assert none.status_code == 401 and none.json()["code"] == "conversation_token_required"
    for headers in ({"Authorization": "Bearer not-the-token"}, other_auth,
                    {"X-Conversation-Token": "forged"}):
        r = client.get(url, params={"wait": 5}, headers=headers)
        # A wrong token and an unknown conversation look alike (as GET /conversations/{id}).
        assert r.status_code == 404 and r.json()["code"] == "conversation_not_found"
    assert client.get("/api/v1/conversations/nope/events", headers=auth).status_code == 404
    assert client.get(url, headers={"X-Conversation-Token": auth["Authorization"][7:]}
                      ).status_code == 200
    assert client.get(url, headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200
    for bad in ({"after": -1}, {"after": "x"}, {"wait": -1}, {"wait": 1e9}):
        assert client.get(url, params=bad, headers=auth).status_code == 422


# --- two processes: the citizen's poll on a ``daoban serve``, the agent on this one --------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_long_poll_on_one_process_gets_the_reply_sent_on_another(
        pg_url: str, tmp_path: Path) -> None:
    """The agent's console is on this test's app, the REST citizen's poll on a real server
    process; PostgreSQL and Redis between them (one server start, not two)."""
    if not _redis_up():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    prefix = f"daoban-test-{uuid.uuid4().hex[:10]}:"
    settings = Settings(database_url=pg_url, index_dir=tmp_path / "idx", redis_url=REDIS_URL,
                        redis_prefix=prefix, agent_wait_limit=600, agent_grace_seconds=600)
    app = app_for(settings)
    with TestClient(app) as here:
        app.state.desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))
        with daoban_process(tmp_path, DAOBAN_DATABASE_URL=pg_url, DAOBAN_REDIS_URL=REDIS_URL,
                            DAOBAN_REDIS_PREFIX=prefix) as (there, _):

            def call(method: str, path: str, body: Any = None, auth: str = "") -> Any:
                req = urllib.request.Request(
                    there + path, method=method,
                    data=None if body is None else json.dumps(body).encode(),
                    headers={"Content-Type": "application/json",
                             **({"Authorization": f"Bearer {auth}"} if auth else {})})
                with urllib.request.urlopen(req, timeout=40) as r:
                    return json.loads(r.read())

            made = call("POST", "/api/v1/conversations", {})
            cid, cap = made["id"], made["token"]
            for text in ("社保卡丢了咋整", "转人工"):
                call("POST", f"/api/v1/conversations/{cid}/messages", {"text": text}, cap)
            events = f"/api/v1/conversations/{cid}/events"
            last = call("GET", events, auth=cap)["last_seq"]
            with pytest.raises(urllib.error.HTTPError) as refused:
                call("GET", events + "?wait=1", auth="wrong")
            assert refused.value.code == 404

            with agent_ws(here, token(here)) as agent, ThreadPoolExecutor(1) as pool:
                until(agent, lambda f: f["type"] == "lists" and any(
                    q["conversation_id"] == cid for q in f["queue"]))
                joined = pool.submit(call, "GET", f"{events}?after={last}&wait=25", None, cap)
                agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
                until(agent, lambda f: f["type"] == "claimed")
                got = joined.result(timeout=30)
                assert [f.get("mode") for f in got["events"]] == ["WITH_AGENT"]
                reply = pool.submit(call, "GET", f"{events}?after={got['last_seq']}&wait=25",
                                    None, cap)
                sent = time.monotonic()
                agent.send_text(json.dumps({"type": "send", "conversation_id": cid,
                                            "client_id": "x1",
                                            "text": "您好，这里是王帮办（另一个进程）。"}))
                answer = reply.result(timeout=30)
                latency = time.monotonic() - sent
    assert [(f["from"], f["text"]) for f in answer["events"]] == [
        ("agent", "您好，这里是王帮办（另一个进程）。")]
    assert latency < 3.0, latency
