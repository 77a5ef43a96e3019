"""``GET /metrics`` after real traffic through the real app: REST messages of every outcome,
a handoff claimed by an agent, open sockets, WeChat answers too late for the passive reply,
errors; parsed with the official client's Prometheus text-format parser."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from assistant.agents import HandoffRow
from assistant.agents import migrate as migrate_agents
from assistant.desk import AgentDesk
from channels.metrics import HandoffCollector
from channels.settings import Settings
from channels.wechat_crypto import signature
from knowledge.db import make_engine
from tests.consoles import PASSWORD, agent_ws, citizen_send, recv, token, until
from tests.harness import app_for, rest_conversation

TOKEN = "scrape-me-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WX_TOKEN = "wxtoken"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def await_scrape(client: TestClient, ok: Callable[[Samples], bool], timeout: float = 10.0) -> Samples:
    """Scrapes until ``ok`` holds (work that finishes after the response: late answers)."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(client)
        if ok(s) or time.monotonic() > deadline:
            return s


def _settings(folder: Path, **options: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{folder / 'm.db'}", index_dir=folder / "idx",
                    agent_wait_limit=600, agent_grace_seconds=600, **options)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # A reply timeout of 0: every WeChat answer is late, and with no AppSecret its 客服消息
    # cannot be sent (a logged error).
    settings = _settings(tmp_path_factory.mktemp("metrics"), metrics_token=TOKEN,
                         wechat_token=WX_TOKEN, wechat_reply_timeout=0.0)
    app = app_for(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        desk: AgentDesk = app.state.desk
        desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))
        yield c


def say(client: TestClient, cid: str, headers: dict[str, str], text: str) -> None:
    r = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": text},
                    headers=headers)
    assert r.status_code == 200, r.text


def test_scrape_needs_the_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200
    assert "daoban_messages_total" in r.text
    assert value(scrape(client), "process_resident_memory_bytes") > 0


def test_off_by_default_and_restricted_by_address(tmp_path: Path) -> None:
    with TestClient(app_for(_settings(tmp_path / "off"))) as c:
        assert c.get("/metrics").status_code == 404
        assert c.get("/metrics", headers=AUTH).status_code == 404
    # TestClient's address is "testclient": not in any allowed network.
    with TestClient(app_for(_settings(tmp_path / "net", metrics_allow="10.0.0.0/8"))) as c:
        assert c.get("/metrics").status_code == 403
    with pytest.raises(ValueError, match="DAOBAN_METRICS_ALLOW"):
        app_for(_settings(tmp_path / "bad", metrics_allow="10.0.0.0/8, intranet"))


def test_messages_by_channel_and_outcome(client: TestClient) -> None:
    before = scrape(client)
    cid, headers = rest_conversation(client)
    say(client, cid, headers, "阿巴阿巴咕噜咕噜")  # nothing matched
    say(client, cid, headers, "社保卡丢了咋整")  # an item card
    say(client, cid, headers, "怎么取公积金")  # which 公积金提取?
    say(client, cid, headers, "转人工")
    say(client, cid, headers, "好的，我等着")  # while queued: a message for the agent
    after = scrape(client)

    def moved(outcome: str) -> float:
        return (value(after, "daoban_messages_total", channel="rest", outcome=outcome)
                - value(before, "daoban_messages_total", channel="rest", outcome=outcome))

    assert moved("fallback") == 1
    assert moved("answered") == 1
    assert moved("clarified") == 1
    assert moved("handoff") == 1
    assert moved("agent") == 1
    count = "daoban_message_duration_seconds_count"
    assert value(after, count, channel="rest") - value(before, count, channel="rest") == 5
    assert value(after, "daoban_message_duration_seconds_sum", channel="rest") > 0
    conf = "daoban_nlu_intent_confidence_count"
    assert value(after, conf) - value(before, conf) == 5
    assert value(after, "daoban_nlu_match_confidence_bucket", le="+Inf") >= 5
    assert value(after, "daoban_handoff_queue_length", department="人社") >= 1


def test_handoff_wait_and_open_sockets(client: TestClient) -> None:
    before = scrape(client)
    waits = "daoban_handoff_wait_seconds_count"
    with agent_ws(client, token(client, "wang")) as wang, \
            client.websocket_connect("/ws/chat") as citizen:
        until(wang, lambda f: f["type"] == "welcome")
        citizen.send_text(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        cid = recv(citizen)["conversation_id"]
        citizen_send(citizen, "m1", "社保卡丢了咋整")
        citizen_send(citizen, "m2", "转人工")
        during = scrape(client)
        assert value(during, "daoban_websocket_connections", kind="web") == 1
        assert value(during, "daoban_websocket_connections", kind="console") == 1
        assert value(during, "daoban_handoff_oldest_wait_seconds") >= 0
        queued = value(during, "daoban_handoff_queue_length", department="人社")
        assert queued >= 1
        wang.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
        until(wang, lambda f: f.get("type") == "event" and f.get("mode") == "WITH_AGENT")
        citizen_send(citizen, "m3", "您好，我想问问补卡")  # goes to the agent
        claimed = scrape(client)
        assert value(claimed, waits) == value(before, waits) + 1
        assert value(claimed, "daoban_handoff_wait_seconds_bucket", le="+Inf") == \
            value(claimed, waits)
        assert value(claimed, "daoban_handoff_queue_length", department="人社") == queued - 1
        assert value(claimed, "daoban_messages_total", channel="web", outcome="agent") == 1
        assert value(claimed, "daoban_messages_total", channel="web", outcome="handoff") == 1
    after = scrape(client)
    assert value(after, "daoban_websocket_connections", kind="web") == 0
    assert value(after, "daoban_websocket_connections", kind="console") == 0


def _wechat(client: TestClient, text: str, msg_id: int) -> str:
    ts, nonce = str(int(time.time())), f"n{msg_id}"
    body = (f"<xml><ToUserName><![CDATA[gh_daoban]]></ToUserName><FromUserName><![CDATA["
            f"o_metrics_user_01]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA["
            f"text]]></MsgType><Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>")
    r = client.post("/wechat", content=body.encode(), params={
        "timestamp": ts, "nonce": nonce, "signature": signature(WX_TOKEN, ts, nonce)})
    assert r.status_code == 200, r.text
    return r.text


def test_wechat_late_answers_and_errors(client: TestClient) -> None:
    before = scrape(client)
    late, failed = "daoban_wechat_late_answers_total", "daoban_errors_total"
    assert _wechat(client, "社保卡丢了咋整", 7001) == "success"  # too late for the reply
    after = await_scrape(client, lambda s: value(s, failed, kind="log:channels.wechat")
                         > value(before, failed, kind="log:channels.wechat"))
    assert value(after, late) == value(before, late) + 1
    assert value(after, "daoban_messages_total", channel="wechat", outcome="answered") >= 1
    # The late answer could not go out as 客服消息 (no AppSecret): a logged error.
    assert value(after, failed, kind="log:channels.wechat") == \
        value(before, failed, kind="log:channels.wechat") + 1
    r = client.post("/webhooks/rest/webhook", content=b"x" * (70 * 1024),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    final = scrape(client)
    assert value(final, failed, kind="body_too_large") == \
        value(before, failed, kind="body_too_large") + 1


def test_handoff_series_from_the_database(db_url: str) -> None:
    """The queue and the waits, counted by the database (SQLite and PostgreSQL alike)."""
    engine = make_engine(db_url)
    migrate_agents(engine)
    now = datetime.now(UTC)

    def row(cid: str, department: str | None, asked: float, claimed: float | None) -> HandoffRow:
        return HandoffRow(
            conversation_id=cid, channel="web", reason="requested", department=department,
            status="queued" if claimed is None else "active", entry_id=None,
            requested_at=now - timedelta(seconds=asked), queued_at=now - timedelta(seconds=asked),
            claimed_at=None if claimed is None else now - timedelta(seconds=claimed),
            told_overdue=False, transfers=0, agents_seen=[])

    try:
        with Session(engine) as s, s.begin():
            s.add_all([row("q1", "人社", 40, None), row("q2", "人社", 10, None),
                       row("q3", None, 5, None), row("a1", "公安", 100, 90),  # waited 10 s
                       row("a2", "公安", 700, 100)])  # waited 600 s
        collector = HandoffCollector()
        collector.engine = engine
        got: Samples = {}
        for family in collector.collect():
            for sample in family.samples:
                got[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    finally:
        engine.dispose()
    assert value(got, "daoban_handoff_queue_length", department="人社") == 2
    assert value(got, "daoban_handoff_queue_length", department="none") == 1
    assert 40 <= value(got, "daoban_handoff_oldest_wait_seconds") < 60
    assert value(got, "daoban_handoff_wait_seconds_count") == 2
    assert abs(value(got, "daoban_handoff_wait_seconds_sum") - 610) < 1
    assert value(got, "daoban_handoff_wait_seconds_bucket", le="5.0") == 0
    assert value(got, "daoban_handoff_wait_seconds_bucket", le="15.0") == 1
    assert value(got, "daoban_handoff_wait_seconds_bucket", le="300.0") == 1
    assert value(got, "daoban_handoff_wait_seconds_bucket", le="600.0") == 2
    assert value(got, "daoban_handoff_wait_seconds_bucket", le="+Inf") == 2
