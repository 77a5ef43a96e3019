"""Every event pushed to a console is authorised at push time: an agent who was watching a
conversation stops receiving it (notes and closing summary included) once another agent
owns it (issue 15, finding 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.agents import Role
from assistant.desk import AgentDesk
from channels.settings import Settings
from tests.consoles import PASSWORD, agent_ws, citizen_send, recv, token, until
from tests.harness import app_for


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("authz")
    settings = Settings(database_url=f"sqlite:///{d / 'a.db'}", index_dir=d / "idx",
                        agent_wait_limit=600, agent_grace_seconds=600)
    app = app_for(settings)
    with TestClient(app) as c:
        desk: AgentDesk = app.state.desk
        desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))
        desk.agents.add("zhao", PASSWORD, display_name="赵帮办", skills=("人社",))
        desk.agents.add("boss", PASSWORD, display_name="李值班长", role=Role.SUPERVISOR)
        yield c


def _queued(client: TestClient, citizen: Any, tag: str) -> str:
    citizen.send_text(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
    cid: str = recv(citizen)["conversation_id"]
    citizen_send(citizen, f"{tag}1", "社保卡丢了咋整")
    citizen_send(citizen, f"{tag}2", "转人工")
    return cid


def _drain(ws: Any) -> list[dict[str, Any]]:
    """Everything the socket has been sent so far (a ping round-trip marks the end)."""
    ws.send_text(json.dumps({"type": "ping"}))
    return until(ws, lambda f: f["type"] == "pong", limit=200)


def _secret(frames: list[dict[str, Any]], cid: str) -> list[str]:
    return [f["text"] for f in frames if f["type"] == "event" and f["conversation_id"] == cid
            and (f["from"] in ("note", "agent", "citizen") or "小结" in f["text"])]


def test_a_watcher_loses_the_chat_when_another_agent_claims_it(client: TestClient) -> None:
    with agent_ws(client, token(client, "wang")) as wang, \
            agent_ws(client, token(client, "zhao")) as zhao, \
            client.websocket_connect("/ws/chat") as citizen:
        until(wang, lambda f: f["type"] == "welcome")
        until(zhao, lambda f: f["type"] == "welcome")
        cid = _queued(client, citizen, "q")
        # 王 looks at the queued chat (allowed: his department) …
        wang.send_text(json.dumps({"type": "open", "conversation_id": cid, "last_seq": 0}))
        until(wang, lambda f: f["type"] == "event" and f["text"] == "转人工")
        # … and 赵 takes it.
        zhao.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
        got = until(zhao, lambda f: f["type"] == "claimed")
        citizen_send(citizen, "q3", "我的身份证号是 230102199001011234")
        zhao.send_text(json.dumps({"type": "note", "conversation_id": cid, "client_id": "n1",
                                   "text": "内部备注：核实身份"}))
        got += until(zhao, lambda f: f["type"] == "ack" and f["client_id"] == "n1")
        zhao.send_text(json.dumps({"type": "send", "conversation_id": cid, "client_id": "s1",
                                   "text": "您好，我是赵帮办。"}))
        got += until(zhao, lambda f: f["type"] == "ack" and f["client_id"] == "s1")
        zhao.send_text(json.dumps({"type": "close", "conversation_id": cid,
                                   "summary": "市民很着急"}))
        got += until(zhao, lambda f: f["type"] == "ended")
        got += _drain(zhao)
        # The owner sees everything, including their own closing summary.
        mine = _secret(got, cid)
        assert "内部备注：核实身份" in mine and "小结：市民很着急" in mine
        assert "我的身份证号是 230102199001011234" in mine

        frames = _drain(wang)
        assert _secret(frames, cid) == []
        assert {"type": "unwatched", "conversation_id": cid} in frames
        # Opening it again is refused.
        wang.send_text(json.dumps({"type": "open", "conversation_id": cid, "last_seq": 0}))
        refused = until(wang, lambda f: f["type"] == "error")
        assert refused[-1]["code"] == "forbidden" and not _secret(refused, cid)


def test_a_transferring_agent_stops_receiving_and_a_supervisor_keeps_watching(
        client: TestClient) -> None:
    with agent_ws(client, token(client, "wang")) as wang, \
            agent_ws(client, token(client, "zhao")) as zhao, \
            agent_ws(client, token(client, "boss")) as boss, \
            client.websocket_connect("/ws/chat") as citizen:
        for ws in (wang, zhao, boss):
            until(ws, lambda f: f["type"] == "welcome")
        cid = _queued(client, citizen, "t")
        wang.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
        until(wang, lambda f: f["type"] == "claimed")
        boss.send_text(json.dumps({"type": "open", "conversation_id": cid, "last_seq": 0}))
        until(boss, lambda f: f["type"] == "event" and f["text"] == "转人工")
        zhao_id = client.app.state.desk.agents.by_username("zhao").id  # type: ignore[attr-defined]
        wang.send_text(json.dumps({"type": "transfer", "conversation_id": cid,
                                   "to_agent": zhao_id}))
        until(wang, lambda f: f["type"] == "transferred")
        zhao.send_text(json.dumps({"type": "open", "conversation_id": cid, "last_seq": 0}))
        until(zhao, lambda f: f["type"] == "context")
        zhao.send_text(json.dumps({"type": "note", "conversation_id": cid, "client_id": "n2",
                                   "text": "转来的：市民要补卡"}))
        until(zhao, lambda f: f["type"] == "ack" and f["client_id"] == "n2")
        citizen_send(citizen, "t3", "还在吗")
        until(boss, lambda f: f["type"] == "event" and f["text"] == "还在吗")
        assert "转来的：市民要补卡" in _secret(_drain(boss) + _drain(zhao), cid)
        frames = _drain(wang)
        assert not [t for t in _secret(frames, cid) if t in ("转来的：市民要补卡", "还在吗")]
