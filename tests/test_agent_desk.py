"""The human 帮办 desk: routing, queue, grace, limits (unit), and the console socket
through the real app (claim → live chat both ways → bot silent → hand back)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from assistant.agents import Agent, Presence, Role, SqlAgentStore
from assistant.agents import migrate as migrate_agents
from assistant.bus import LocalBus
from assistant.desk import (
    AGENT_LOST,
    NOBODY,
    OVERDUE,
    AgentDesk,
    NotAllowed,
    can_take,
    candidates,
    overdue,
)
from assistant.model import ConversationMode, UserMessage
from channels.cli import main as cli_main
from channels.settings import Settings
from tests.consoles import PASSWORD, agent_ws, citizen_send, recv, token, until
from tests.harness import app_for, make_assistant


def _agent(i: int, skills: tuple[str, ...], *, presence: Presence = Presence.ONLINE,
           role: Role = Role.AGENT, max_chats: int = 2) -> Agent:
    return Agent(i, f"a{i}", f"帮办{i}", role, skills, max_chats, presence=presence)


# --- the rules ---------------------------------------------------------------------------


def test_routing_only_to_online_agents_with_the_skill_and_capacity() -> None:
    renshe, gongan = _agent(1, ("人社",)), _agent(2, ("公安",))
    away = _agent(3, ("人社",), presence=Presence.AWAY)
    boss = _agent(4, (), role=Role.SUPERVISOR)
    load = {1: 1, 4: 0}
    assert [a.id for a in candidates([renshe, gongan, away, boss], load, "人社")] == [4, 1]
    assert not can_take(renshe, "人社", 2)  # full
    assert not can_take(gongan, "人社", 0)  # wrong department
    assert can_take(gongan, None, 0)  # an item of no known department: anyone
    assert candidates([away], {}, "人社") == []


def test_waiting_limit_rule() -> None:
    from assistant.agents import Handoff, HandoffStatus

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    h = Handoff(1, "c", "web", HandoffStatus.QUEUED, "requested", "人社", None, None, t0, t0)
    assert not overdue(h, t0 + timedelta(seconds=59), timedelta(seconds=60))
    assert overdue(h, t0 + timedelta(seconds=61), timedelta(seconds=60))


# --- the desk over a real assistant and database ------------------------------------------


@pytest.fixture
def desk(tmp_path: Path) -> AgentDesk:
    assistant = make_assistant(f"sqlite:///{tmp_path / 'd.db'}", tmp_path / "idx")
    migrate_agents(assistant.store.engine)
    d = AgentDesk(assistant, SqlAgentStore(assistant.store.engine), LocalBus(),
                  wait_limit=60, grace=30)
    d.agents.heartbeat(d.process_id, d.process_label, d.lease, {})
    assistant.desk = d
    return d


async def _add(desk: AgentDesk, name: str, skills: tuple[str, ...], max_chats: int = 2,
               role: Role = Role.AGENT) -> Agent:
    """A new agent with a console socket open in ``desk``'s process."""
    a = desk.agents.add(name, PASSWORD, skills=skills, max_chats=max_chats, role=role)
    await desk.connected(a)
    got = desk.agents.get(a.id)
    assert got is not None
    return got


async def _say(desk: AgentDesk, cid: str, text: str) -> list[str]:
    handled = await desk.assistant.handle_logged(UserMessage(cid, text, channel="web"),
                                                 create=True)
    return [r.text for r in handled.replies]


def _texts(desk: AgentDesk, cid: str, kind: str) -> list[str]:
    return [e.get("text", "") for e in desk.store.events(cid) if e["type"] == kind]


async def test_nobody_online_tells_the_citizen_and_keeps_the_message(desk: AgentDesk) -> None:
    await _say(desk, "c1", "社保卡丢了咋整")
    await _say(desk, "c1", "/human")
    assert NOBODY in _texts(desk, "c1", "bot")
    assert "12345" in NOBODY
    await _say(desk, "c1", "我的卡是去年办的")  # 留言: kept for staff
    assert [e["text"] for e in desk.store.events("c1") if e["type"] == "message_for_agent"] == [
        "我的卡是去年办的"]
    (h,) = desk.agents.queue()
    assert h.department == "人社" and h.conversation_id == "c1"


async def test_claim_by_department_capacity_then_chat_and_hand_back(desk: AgentDesk) -> None:
    police = await _add(desk, "police", ("公安",))
    social = await _add(desk, "social", ("人社",), max_chats=1)
    await _say(desk, "c2", "社保卡丢了咋整")
    await _say(desk, "c2", "/human")
    assert NOBODY not in _texts(desk, "c2", "bot")  # someone with 人社 is online
    with pytest.raises(NotAllowed):
        await desk.claim(police, "c2")  # not their department
    await desk.claim(social, "c2")
    # Capacity: a second 人社 conversation cannot be claimed by the same agent.
    await _say(desk, "c3", "社保卡丢了咋整")
    await _say(desk, "c3", "转人工")
    with pytest.raises(NotAllowed):
        await desk.claim(social, "c3")

    bot_before = len(_texts(desk, "c2", "bot"))
    replies = await _say(desk, "c2", "请问补卡要多久？")
    assert replies == []  # the bot is silent while the agent owns the conversation
    await desk.say(social, "c2", "一般当场就能补办。", "m1")
    await desk.say(social, "c2", "一般当场就能补办。", "m1")  # re-sent: processed once
    await _say(desk, "c2", "谢谢")
    assert len(_texts(desk, "c2", "bot")) == bot_before
    await desk.note(social, "c2", "市民很着急", "n1")
    await desk.hand_back(social, "c2")
    conv = desk.store.load("c2")
    assert conv is not None and conv.mode is ConversationMode.BOT
    order = [(e["type"], e.get("text")) for e in desk.store.events("c2")
             if e["type"] in ("user", "agent")][-3:]
    assert order == [("user", "请问补卡要多久？"), ("agent", "一般当场就能补办。"), ("user", "谢谢")]
    await _say(desk, "c2", "/rate:5")  # the rating of the human session
    (h,) = [x for x in desk.agents.handoffs() if x.conversation_id == "c2"]
    m = h.metrics()
    assert m["outcome"] == "handed_back" and m["rating"] == 5
    assert m["first_response_seconds"] is not None and m["duration_seconds"] is not None
    assert await _say(desk, "c2", "居住证怎么办")  # the bot answers again


async def test_agent_disconnect_grace_then_back_to_queue(desk: AgentDesk) -> None:
    account = desk.agents.add("grace", PASSWORD)
    socket_id = await desk.connected(account)
    a = desk.agents.get(account.id)
    assert a is not None
    await _say(desk, "c4", "/human")
    await desk.claim(a, "c4")
    await desk.disconnected(a, socket_id)
    await desk.sweep()  # within the grace period: nothing happens
    assert desk.store.load("c4").mode is ConversationMode.WITH_AGENT  # type: ignore[union-attr]
    desk.grace = timedelta(seconds=0)
    await desk.sweep()
    assert desk.store.load("c4").mode is ConversationMode.WAITING_AGENT  # type: ignore[union-attr]
    assert AGENT_LOST in _texts(desk, "c4", "bot")
    assert [h.conversation_id for h in desk.agents.queue()] == ["c4"]
    assert desk.agents.get(a.id).presence is Presence.OFFLINE  # type: ignore[union-attr]


# --- leases: a server process that dies cannot close its console sockets ----------------


@pytest.fixture
def two_processes(db_url: str, tmp_path: Path) -> Iterator[tuple[AgentDesk, AgentDesk]]:
    """The desks of two server processes over one database: own engine, bus and lease."""
    desks = []
    for _ in range(2):
        assistant = make_assistant(db_url, tmp_path / "idx")
        migrate_agents(assistant.store.engine)
        d = AgentDesk(assistant, SqlAgentStore(assistant.store.engine), LocalBus(),
                      wait_limit=600, grace=5, lease=2)
        assistant.desk = d
        desks.append(d)
    yield desks[0], desks[1]
    for d in desks:
        d.store.engine.dispose()


def _fresh(desk: AgentDesk, agent_id: int) -> Agent:
    a = desk.agents.get(agent_id)
    assert a is not None
    return a


async def test_crashed_process_lease_runs_out_then_grace_then_back_to_queue(
        two_processes: tuple[AgentDesk, AgentDesk]) -> None:
    crashed, alive = two_processes
    await alive.heartbeat()
    before = datetime.now(UTC)
    await crashed.heartbeat()
    after = datetime.now(UTC)
    account = crashed.agents.add("lease", PASSWORD, skills=("人社",))
    await crashed.connected(account)  # the agent's console is on the process that dies
    agent = _fresh(alive, account.id)
    await _say(alive, "c7", "社保卡丢了咋整")  # the citizen is on the other process
    await _say(alive, "c7", "转人工")
    assert NOBODY not in _texts(alive, "c7", "bot")
    await crashed.claim(agent, "c7")
    # The crashed process renews nothing from here on; its socket row stays behind.

    await alive.sweep()  # within the lease: the socket still counts
    assert _fresh(alive, agent.id).connections == 1
    await alive.sweep(now=after + timedelta(seconds=3))  # the lease (2 s) ran out
    gone = _fresh(alive, agent.id)
    assert gone.connections == 0 and gone.presence is Presence.ONLINE
    # The grace period runs from the lease's expiry, not from when it was noticed.
    assert gone.disconnected_at is not None
    assert before + crashed.lease <= gone.disconnected_at <= after + crashed.lease
    await alive.sweep(now=gone.disconnected_at + alive.grace - timedelta(seconds=0.5))
    assert alive.store.load("c7").mode is ConversationMode.WITH_AGENT  # type: ignore[union-attr]
    await alive.sweep(now=gone.disconnected_at + alive.grace + timedelta(seconds=0.5))
    assert alive.store.load("c7").mode is ConversationMode.WAITING_AGENT  # type: ignore[union-attr]
    assert _texts(alive, "c7", "bot").count(AGENT_LOST) == 1  # the citizen is told, once
    assert [h.conversation_id for h in alive.agents.queue()] == ["c7"]
    assert _fresh(alive, agent.id).presence is Presence.OFFLINE
    await alive.sweep(now=gone.disconnected_at + alive.grace + timedelta(seconds=1))
    assert _texts(alive, "c7", "bot").count(AGENT_LOST) == 1


async def test_stalled_process_takes_its_sockets_back_and_heartbeat_repairs(
        two_processes: tuple[AgentDesk, AgentDesk]) -> None:
    stalled, other = two_processes
    await stalled.heartbeat()
    await other.heartbeat()
    account = stalled.agents.add("stall", PASSWORD)
    first = await stalled.connected(account)
    second = await stalled.connected(account)
    assert _fresh(other, account.id).connections == 2
    # The process stalls past its lease: another process closes both sockets.
    await other.sweep(now=datetime.now(UTC) + timedelta(seconds=3))
    assert _fresh(other, account.id).connections == 0
    await stalled.disconnected(account, second)  # already closed: not counted twice
    assert _fresh(other, account.id).connections == 0
    await stalled.heartbeat()  # it wakes up: the socket it still holds counts again
    back = _fresh(other, account.id)
    assert back.connections == 1 and back.disconnected_at is None
    await other.sweep()
    assert _fresh(other, account.id).connections == 1
    # A socket row the process does not hold (its close was never recorded) is closed.
    stalled.agents.connected(account.id, "never-closed", stalled.process_id)
    assert _fresh(other, account.id).connections == 2
    await stalled.heartbeat()
    assert _fresh(other, account.id).connections == 1
    # Shutting down gives the lease up: the sockets are closed now, the grace period starts.
    await stalled.release()
    ended = _fresh(other, account.id)
    assert ended.connections == 0 and ended.disconnected_at is not None
    await stalled.disconnected(account, first)  # the socket's own close comes later
    assert _fresh(other, account.id).connections == 0


def test_migration_closes_sockets_counted_before_leases(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from assistant.agents import MIGRATIONS
    from knowledge.db import alembic_config, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(engine, MIGRATIONS), "g001")
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO agents (username, display_name, password_hash, role, skills, "
            "max_chats, disabled, presence, connections, created_at) VALUES ('old', 'old', "
            "'x', 'agent', '[]', 3, 0, 'online', 2, '2026-01-01 00:00:00')"))
    migrate_agents(engine)
    old = SqlAgentStore(engine).by_username("old")
    assert old is not None and old.connections == 0 and old.disconnected_at is not None
    engine.dispose()


async def test_waiting_past_the_limit_is_told_once(desk: AgentDesk) -> None:
    await _add(desk, "busy", ())
    await _say(desk, "c5", "/human")
    desk.wait_limit = timedelta(seconds=0)
    await desk.sweep()
    await desk.sweep()
    assert _texts(desk, "c5", "bot").count(OVERDUE) == 1


async def test_transfer_to_department_and_citizen_cancel(desk: AgentDesk) -> None:
    a = await _add(desk, "first", ())
    await _say(desk, "c6", "/human")
    await desk.claim(a, "c6")
    await desk.transfer(a, "c6", to_department="公积金")
    (h,) = desk.agents.queue()
    assert h.department == "公积金" and h.transfers == 1
    assert desk.store.load("c6").mode is ConversationMode.WAITING_AGENT  # type: ignore[union-attr]
    await _say(desk, "c6", "返回机器人")
    assert desk.agents.queue() == []
    assert desk.agents.last_handoff("c6").outcome == "cancelled"  # type: ignore[union-attr]


# --- through the real app ------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("agentws")
    settings = Settings(database_url=f"sqlite:///{d / 'a.db'}", index_dir=d / "idx",
                        agent_wait_limit=600, agent_grace_seconds=600)
    app = app_for(settings)
    with TestClient(app) as c:
        desk: AgentDesk = app.state.desk
        desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社", "公安"))
        desk.agents.add("boss", PASSWORD, display_name="李值班长", role=Role.SUPERVISOR)
        yield c


def test_console_page_and_auth_refusals(client: TestClient) -> None:
    page = client.get("/agent")
    assert page.status_code == 200 and "帮办" in page.text
    assert client.get("/static/agent.js").status_code == 200
    bad = client.post("/agent/login", json={"username": "wang", "password": "wrong-password"})
    assert bad.status_code == 401
    fresh = TestClient(client.app)
    anon = fresh.get("/agent/api/me")
    assert anon.status_code == 401
    assert anon.json() == {"error": "请先登录，或登录已过期", "code": "unauthorized"}
    assert fresh.get("/agent/api/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    with pytest.raises(WebSocketDisconnect) as exc, fresh.websocket_connect("/ws/agent"):
        pass
    assert exc.value.code == 4401
    with pytest.raises(WebSocketDisconnect), agent_ws(fresh, "forged-token"):
        pass
    # An expired session is refused too.
    desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
    got = desk.agents.login("wang", PASSWORD, timedelta(seconds=-1))
    assert got is not None
    with pytest.raises(WebSocketDisconnect), agent_ws(fresh, got[0]):
        pass
    assert fresh.get("/agent/api/me", headers={"Authorization": f"Bearer {got[0]}"}
                     ).status_code == 401
    tok = token(client)
    me = client.get("/agent/api/me", headers={"Authorization": f"Bearer {tok}"})
    assert me.json()["username"] == "wang"
    refused = client.get("/agent/api/metrics", headers={"Authorization": f"Bearer {tok}"})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


def test_claim_live_chat_both_ways_bot_silent_hand_back(client: TestClient) -> None:
    tok = token(client)
    with agent_ws(client, tok) as agent, client.websocket_connect("/ws/chat") as citizen:
        assert recv(agent)["type"] == "welcome"
        citizen.send_text(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        cid = recv(citizen)["conversation_id"]
        citizen_send(citizen, "c1", "社保卡丢了咋整")
        citizen_send(citizen, "c2", "转人工")
        until(citizen, lambda f: f.get("mode") == "WAITING_AGENT")
        frames = until(agent, lambda f: f["type"] == "lists" and any(
            q["conversation_id"] == cid for q in f["queue"]))
        (q,) = [q for q in frames[-1]["queue"] if q["conversation_id"] == cid]
        assert q["department"] == "人社" and q["item"] == "社会保障卡挂失补换"
        assert "waiting_seconds" in q and q["reason"]

        agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
        frames = until(agent, lambda f: f["type"] == "claimed")
        ctx = next(f for f in frames if f["type"] == "context")
        assert ctx["mode"] == "WITH_AGENT" and ctx["current_item"]["department"] == "人社"
        transcript = [f["text"] for f in frames if f["type"] == "event" and f["from"] == "citizen"]
        assert transcript == ["社保卡丢了咋整", "转人工"]  # the bot transcript is shown
        until(citizen, lambda f: f.get("mode") == "WITH_AGENT")

        # Citizen → agent, in order; the bot stays silent.
        citizen_send(citizen, "c3", "补卡要多久")
        citizen_send(citizen, "c4", "要带户口本吗")
        got = until(agent, lambda f: f["type"] == "event" and f["text"] == "要带户口本吗")
        said = [f["text"] for f in got if f["type"] == "event" and f["from"] == "citizen"]
        assert said == ["补卡要多久", "要带户口本吗"]
        assert not [f for f in got if f["type"] == "event" and f["from"] == "bot"]

        # Agent → citizen, in order; an internal note never reaches the citizen.
        agent.send_text(json.dumps({"type": "note", "conversation_id": cid, "client_id": "n1",
                                    "text": "内部备注：核实身份"}))
        for i, text in enumerate(["您好，我是王帮办。", "不用带户口本。"]):
            agent.send_text(json.dumps({"type": "send", "conversation_id": cid,
                                        "client_id": f"a{i}", "text": text}))
        agent.send_text(json.dumps({"type": "insert", "conversation_id": cid, "client_id": "a9",
                                    "entry_id": "social-security-card-replace",
                                    "kind": "materials"}))
        until(agent, lambda f: f["type"] == "ack" and f["client_id"] == "a9")
        frames = until(citizen, lambda f: f.get("from") == "agent" and "项材料" in f["text"])
        agent_texts = [f["text"] for f in frames if f.get("from") == "agent"]
        assert agent_texts[:2] == ["您好，我是王帮办。", "不用带户口本。"]
        assert all("内部备注" not in f.get("text", "") for f in frames)
        assert not [f for f in frames if f.get("from") == "bot"]

        agent.send_text(json.dumps({"type": "handback", "conversation_id": cid}))
        until(agent, lambda f: f["type"] == "ended")
        frames = until(citizen, lambda f: f.get("from") == "bot" and "打个分" in f["text"])
        assert any(f.get("mode") == "BOT" for f in frames)
        citizen_send(citizen, "c5", "居住证怎么办")
        until(citizen, lambda f: f.get("from") == "bot")  # the bot answers again


def test_close_shows_the_citizen_a_line_and_not_the_summary(client: TestClient) -> None:
    closed_line = "人工帮办已结束本次服务，您可以继续向导办助手提问。"
    with agent_ws(client, token(client)) as agent, client.websocket_connect("/ws/chat") as citizen:
        until(agent, lambda f: f["type"] == "welcome")
        citizen.send_text(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        welcome = recv(citizen)
        cid, cap = welcome["conversation_id"], welcome["token"]
        citizen_send(citizen, "k1", "社保卡丢了咋整")
        citizen_send(citizen, "k2", "转人工")
        until(agent, lambda f: f["type"] == "lists" and any(
            q["conversation_id"] == cid for q in f["queue"]))
        agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
        until(agent, lambda f: f["type"] == "claimed")
        until(citizen, lambda f: f.get("mode") == "WITH_AGENT")

        agent.send_text(json.dumps({"type": "close", "conversation_id": cid,
                                    "summary": "已告知补卡流程，市民很着急"}))
        until(agent, lambda f: f["type"] == "ended" and f["outcome"] == "closed")
        got = until(citizen, lambda f: f.get("from") == "bot" and "打个分" in f["text"])
        (closed,) = [f for f in got if f.get("mode") == "CLOSED"]
        assert closed["from"] == "system" and closed["text"] == closed_line
        assert all("补卡流程" not in f.get("text", "") for f in got)  # the summary is internal
        last = got[-1]["seq"]
        citizen_send(citizen, "k3", "/rate:5")  # rating the human session reopens the chat
        until(citizen, lambda f: f.get("mode") == "BOT")

    # A reload replays the conversation: no system line is empty there either.
    with client.websocket_connect("/ws/chat") as again:
        again.send_text(json.dumps({"type": "hello", "conversation_id": cid, "token": cap,
                                    "last_seq": 0}))
        frames = until(again, lambda f: f["type"] == "message" and f["seq"] >= last)
        system = [f for f in frames if f.get("from") == "system"]
        assert [f["mode"] for f in system] == ["WAITING_AGENT", "WITH_AGENT", "CLOSED"]
        assert all(f["text"].strip() for f in system) and system[-1]["text"] == closed_line


def test_agent_resume_by_sequence_and_supervisor_sees_all(client: TestClient) -> None:
    tok = token(client)
    with client.websocket_connect("/ws/chat") as citizen:
        citizen.send_text(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        cid = recv(citizen)["conversation_id"]
        citizen_send(citizen, "r1", "身份证丢了")
        citizen_send(citizen, "r2", "转人工")
        with agent_ws(client, tok) as agent:
            until(agent, lambda f: f["type"] == "lists")
            agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
            frames = until(agent, lambda f: f["type"] == "claimed")
            seen = max(f["seq"] for f in frames if f["type"] == "event")
        # The console is gone: the citizen keeps talking.
        citizen_send(citizen, "r3", "还在吗")
        citizen_send(citizen, "r4", "我等一下")
        with agent_ws(client, tok) as agent:
            until(agent, lambda f: f["type"] == "lists")
            agent.send_text(json.dumps({"type": "hello", "last_seqs": {cid: seen}}))
            frames = until(agent, lambda f: f["type"] == "event" and f["text"] == "我等一下")
            events = [f for f in frames if f["type"] == "event"]
            assert all(f["seq"] > seen for f in events)
            assert [f["text"] for f in events if f["from"] == "citizen"] == ["还在吗", "我等一下"]
        with agent_ws(client, token(client, "boss")) as boss:
            lists = until(boss, lambda f: f["type"] == "lists")[-1]
            assert any(c["conversation_id"] == cid and c["agent"] == "王帮办"
                       for c in lists["chats"])
        boss_tok = token(client, "boss")
        m = client.get("/agent/api/metrics", headers={"Authorization": f"Bearer {boss_tok}"})
        assert m.status_code == 200 and any(x["conversation_id"] == cid for x in m.json())


def test_cli_agent_add_list_disable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setenv("DAOBAN_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli_main(["agent", "add", "zhao", "--skills", "公安,医保", "--max-chats", "4",
                     "--password-stdin"]) == 0
    assert cli_main(["agent", "list"]) == 0
    out = capsys.readouterr().out
    assert "zhao" in out and "公安,医保" in out
    assert cli_main(["agent", "disable", "zhao"]) == 0
    assert cli_main(["agent", "disable", "nobody"]) == 1
    from knowledge.db import make_engine

    store = SqlAgentStore(make_engine(f"sqlite:///{tmp_path / 'cli.db'}"))
    assert store.login("zhao", PASSWORD, timedelta(hours=1)) is None  # disabled
    hashed = store.engine.connect().exec_driver_sql("select password_hash from agents").scalar()
    assert str(hashed).startswith("$argon2")
    store.engine.dispose()


def test_welcome_is_always_the_first_frame(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connecting announces the agent on the queue topic, which the socket itself listens
    to: that change must not overtake the welcome, even when the start-up is slow (as on a
    loaded CI machine: reading the agent back is made slow here)."""
    desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
    tok = token(client)
    read_back = desk.agents.get

    def slow_get(agent_id: int) -> Agent | None:
        time.sleep(0.2)
        return read_back(agent_id)

    monkeypatch.setattr(desk.agents, "get", slow_get)
    for _ in range(3):
        with agent_ws(client, tok) as agent:
            assert recv(agent)["type"] == "welcome"
            assert recv(agent)["type"] == "lists"


def test_only_failed_sign_ins_are_limited(client: TestClient) -> None:
    """A help desk behind one NAT address signs in together; a guesser is stopped."""
    office = TestClient(client.app, client=("10.9.8.7", 40000))
    for _ in range(15):  # more than the failure limit, all correct: never refused
        assert office.post("/agent/login", json={"username": "wang", "password": PASSWORD}
                           ).status_code == 200
    guesser = TestClient(client.app, client=("10.6.6.6", 40000))
    for i in range(20):  # one guess at each of many names: the address's limit
        assert guesser.post("/agent/login", json={"username": f"user{i}", "password": "guess"}
                            ).status_code == 401
    refused = guesser.post("/agent/login", json={"username": "wang", "password": PASSWORD})
    assert refused.status_code == 429 and refused.json()["code"]
    assert "太多" in refused.json()["error"]
    # Another address is not affected.
    assert office.post("/agent/login", json={"username": "wang", "password": PASSWORD}
                       ).status_code == 200
