"""What a waiting citizen is told (issue 16.6): office hours and holidays from settings,
checked against the desk's clock; "nobody on duty" apart from "all busy, your place N";
a console that goes silent is noticed within seconds and its citizens are told."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from assistant.agents import Agent, SqlAgentStore
from assistant.agents import migrate as migrate_agents
from assistant.bus import LocalBus
from assistant.desk import AGENT_LOST, AgentDesk
from assistant.desk_hours import BACK, BadHours, OfficeHours, away_text, busy_text, nobody_text
from assistant.model import UserMessage
from channels.settings import Settings
from tests.consoles import PASSWORD, agent_ws, citizen_send, recv, token, until
from tests.harness import app_for, make_assistant

RULES = "mon-fri 09:00-12:00,13:30-17:00; sat 09:00-12:00"
# 2026-10-01..07 国庆 (Thu..Wed); Sunday 2026-10-11 a 调休 working day.
HOURS = OfficeHours.parse(RULES, holidays="2026-10-01, 2026-10-02,2026-10-05",
                          workdays="2026-10-11")


def local(text: str) -> datetime:
    """A Beijing wall-clock time, as the UTC instant the desk's clock would give."""
    naive = datetime.fromisoformat(text)
    return naive.replace(tzinfo=HOURS.zone).astimezone(UTC)


# --- the hours (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(("when", "open_"), [
    ("2026-09-28 08:59", False), ("2026-09-28 09:00", True),  # Monday
    ("2026-09-28 12:00", False), ("2026-09-28 13:30", True), ("2026-09-28 16:59", True),
    ("2026-09-28 17:00", False), ("2026-09-26 11:00", True),  # Saturday morning
    ("2026-09-26 14:00", False), ("2026-09-27 10:00", False),  # Saturday afternoon, Sunday
    ("2026-10-01 10:00", False), ("2026-10-05 10:00", False),  # holidays
    ("2026-10-11 10:00", True), ("2026-10-11 15:00", True),  # 调休 Sunday: a weekday's hours
])
def test_open_at_follows_the_rules_holidays_and_workdays(when: str, open_: bool) -> None:
    assert HOURS.open_at(local(when)) is open_


def test_the_clock_is_read_in_the_desks_time_zone() -> None:
    # 01:30 UTC on Monday is 09:30 in Beijing: open; 10:00 UTC is 18:00 there: closed.
    assert HOURS.open_at(datetime(2026, 9, 28, 1, 30, tzinfo=UTC))
    assert not HOURS.open_at(datetime(2026, 9, 28, 10, 0, tzinfo=UTC))
    utc = OfficeHours.parse(RULES, zone="UTC")
    assert utc.open_at(datetime(2026, 9, 28, 10, 0, tzinfo=UTC))


def test_next_opening_skips_nights_weekends_and_holidays() -> None:
    def nxt(when: str) -> str:
        start = HOURS.next_open(local(when))
        assert start is not None
        return start.strftime("%Y-%m-%d %H:%M")

    assert nxt("2026-09-28 07:00") == "2026-09-28 09:00"
    assert nxt("2026-09-28 12:10") == "2026-09-28 13:30"  # lunch
    assert nxt("2026-09-28 18:00") == "2026-09-29 09:00"
    assert nxt("2026-09-26 13:00") == "2026-09-28 09:00"  # Saturday afternoon → Monday
    assert nxt("2026-09-30 17:30") == "2026-10-03 09:00"  # 10-01, 10-02 off; 10-03 a Saturday
    assert nxt("2026-10-10 12:30") == "2026-10-11 09:00"  # the 调休 Sunday
    assert OfficeHours.parse("").next_open(local("2026-09-28 10:00")) is None


def test_hours_in_words_and_what_the_citizen_is_told() -> None:
    assert HOURS.describe() == "周一至周五 9:00-12:00、13:30-17:00；周六 9:00-12:00，法定节假日除外"
    night = nobody_text(HOURS, local("2026-09-25 20:00"))  # Friday night
    assert "非工作时间" in night and "明天 9:00" in night and "12345" in night
    assert "留言" in night and HOURS.describe() in night
    holiday = nobody_text(HOURS, local("2026-09-30 18:00"))
    assert "周六 9:00" in holiday  # 10-03, skipping the two holidays
    day = nobody_text(HOURS, local("2026-09-28 10:00"))
    assert "目前没有帮办人员在线" in day and HOURS.describe() in day and "非工作时间" not in day
    assert "示例时间" in nobody_text(None, local("2026-09-28 03:00"))  # none configured
    busy = busy_text(3, late=True)
    assert "第 3 位" in busy and "都在忙" in busy and "久等" in busy
    assert "久等" not in busy_text(1, late=False)


@pytest.mark.parametrize("rules", ["weekdays 9-5", "mon-fri 09:00", "fri-mon 09:00-17:00",
                                   "mon 17:00-09:00", "mon 25:00-26:00", "xyz 09:00-10:00"])
def test_unreadable_hours_are_refused(rules: str) -> None:
    with pytest.raises(BadHours):
        OfficeHours.parse(rules)


def test_settings_refuse_unreadable_hours_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="DAOBAN_OFFICE_HOURS"):
        Settings(office_hours="mon-fri 09:00-17:00", holidays="2026-13-01")
    with pytest.raises(ValueError, match="DAOBAN_OFFICE_HOURS"):
        Settings(office_hours="mon-fri 09:00-17:00", timezone="Mars/Olympus")
    got = Settings(office_hours=RULES, holidays="2026-10-01").desk_hours()
    assert got is not None and got.open_at(local("2026-09-28 10:00"))
    assert Settings().desk_hours() is None


# --- the desk, on a clock the test sets -------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    # After the real time of the handoff records (the store's clock), so waits run out.
    return Clock(local("2027-01-04 10:00"))  # a Monday


@pytest.fixture
def desk(tmp_path: Path, clock: Clock) -> Iterator[AgentDesk]:
    assistant = make_assistant(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "idx")
    migrate_agents(assistant.store.engine)
    d = AgentDesk(assistant, SqlAgentStore(assistant.store.engine), LocalBus(),
                  wait_limit=60, grace=600, hours=HOURS, away_after=3, clock=clock)
    d.agents.heartbeat(d.process_id, d.process_label, d.lease, {})
    assistant.desk = d
    yield d
    assistant.store.engine.dispose()


async def _ask_for_a_person(desk: AgentDesk, cid: str) -> None:
    for text in ("社保卡丢了咋整", "转人工"):
        await desk.assistant.handle(UserMessage(cid, text, channel="web"), create=True)


def _told(desk: AgentDesk, cid: str) -> list[str]:
    return [str(e.get("text")) for e in desk.store.events(cid) if e["type"] == "bot"]


async def test_outside_office_hours_the_citizen_hears_when_the_desk_opens(
        desk: AgentDesk, clock: Clock) -> None:
    clock.now = local("2027-01-03 20:00")  # Sunday evening, nobody online
    await _ask_for_a_person(desk, "n1")
    said = _told(desk, "n1")[-1]
    assert said == nobody_text(HOURS, clock.now)
    assert "非工作时间" in said and "明天 9:00" in said and "12345" in said
    clock.now = local("2027-01-04 10:00")  # Monday morning: open, still nobody online
    await _ask_for_a_person(desk, "n2")
    said = _told(desk, "n2")[-1]
    assert "目前没有帮办人员在线" in said and "非工作时间" not in said
    # The wait runs out with nobody on duty: told so again, never "all busy".
    clock.now += timedelta(minutes=5)
    assert clock.now - datetime.now(UTC) > timedelta(minutes=1)
    await desk.sweep()
    assert _told(desk, "n2")[-1] == nobody_text(HOURS, clock.now)
    assert not [t for t in _told(desk, "n2") if "都在忙" in t]


async def _online(desk: AgentDesk, name: str, max_chats: int) -> Agent:
    a = desk.agents.add(name, PASSWORD, skills=("人社",), max_chats=max_chats)
    await desk.connected(a)
    got = desk.agents.get(a.id)
    assert got is not None
    return got


async def test_all_busy_says_the_place_in_the_queue(desk: AgentDesk, clock: Clock) -> None:
    agent = await _online(desk, "busy", max_chats=1)
    await _ask_for_a_person(desk, "b1")
    assert not [t for t in _told(desk, "b1") if "都在忙" in t or "没有帮办" in t]
    await desk.claim(agent, "b1")  # now at capacity
    await _ask_for_a_person(desk, "b2")
    await _ask_for_a_person(desk, "b3")
    assert _told(desk, "b2")[-1] == busy_text(1, late=False)
    assert _told(desk, "b3")[-1] == busy_text(2, late=False)
    clock.now += timedelta(minutes=2)  # past the 60 s limit
    await desk.sweep()
    assert _told(desk, "b2")[-1] == busy_text(1, late=True)
    assert _told(desk, "b3")[-1] == busy_text(2, late=True)
    await desk.sweep()  # told once
    assert _told(desk, "b3").count(busy_text(2, late=True)) == 1


async def test_a_closed_console_is_announced_within_seconds_once_then_the_return(
        desk: AgentDesk) -> None:
    agent = await _online(desk, "away", max_chats=2)
    await _ask_for_a_person(desk, "w1")
    await desk.claim(agent, "w1")
    sockets = desk.agents.get(agent.id)
    assert sockets is not None and sockets.connections == 1
    (socket_id,) = list(desk._sockets)
    await desk.disconnected(agent, socket_id)
    gone = desk.agents.get(agent.id)
    assert gone is not None and gone.disconnected_at is not None
    await desk.sweep(now=gone.disconnected_at + timedelta(seconds=1))  # a reload: not yet
    assert away_text(600) not in _told(desk, "w1")
    await desk.sweep(now=gone.disconnected_at + timedelta(seconds=4))
    await desk.sweep(now=gone.disconnected_at + timedelta(seconds=5))
    assert _told(desk, "w1").count(away_text(600)) == 1
    assert "10 分钟" in away_text(600) and "30 秒" in away_text(30)
    # Another process's sweep (its own memory) finds it told in the log.
    desk._told_away.clear()
    await desk.sweep(now=gone.disconnected_at + timedelta(seconds=6))
    assert _told(desk, "w1").count(away_text(600)) == 1
    await desk.connected(agent)  # back within the grace period
    assert _told(desk, "w1")[-1] == BACK
    assert AGENT_LOST not in _told(desk, "w1")


# --- a console that stops answering, through the real app ------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("hours")
    settings = Settings(database_url=f"sqlite:///{d / 'h.db'}", index_dir=d / "idx",
                        agent_wait_limit=600, agent_grace_seconds=600,
                        agent_ping_seconds=0.2, agent_ping_timeout=1.0,
                        agent_away_seconds=0.5, agent_sweep_seconds=0.2)
    app = app_for(settings)
    with TestClient(app) as c:
        app.state.desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))
        yield c


def test_a_silent_console_is_closed_and_the_citizen_told_within_seconds(
        client: TestClient) -> None:
    tok = token(client)
    with client.websocket_connect("/ws/chat") as citizen:
        citizen.send_text(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        cid = recv(citizen)["conversation_id"]
        with agent_ws(client, tok) as agent:
            until(agent, lambda f: f["type"] == "ping")
            agent.send_text(json.dumps({"type": "pong"}))  # a console that answers pings
            citizen_send(citizen, "c1", "社保卡丢了咋整")
            citizen_send(citizen, "c2", "转人工")
            until(agent, lambda f: f["type"] == "lists" and any(
                q["conversation_id"] == cid for q in f["queue"]))
            agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
            until(agent, lambda f: f["type"] == "claimed")
            silent_from = time.monotonic()
            until(citizen, lambda f: f.get("mode") == "WITH_AGENT")
            # From here the console says nothing (a dead network): the server gives up on
            # it after the timeout and closes it; the citizen hears within seconds.
            until(citizen, lambda f: f.get("from") == "bot" and "连接中断" in f["text"])
            told_after = time.monotonic() - silent_from
            with pytest.raises(WebSocketDisconnect) as closed:
                until(agent, lambda f: False, limit=200)
            assert closed.value.code == 4408
        assert 1.0 <= told_after < 6.0, told_after
        # The agent's console comes back within the grace period: the citizen is told.
        with agent_ws(client, tok) as agent:
            until(agent, lambda f: f["type"] == "welcome")
            until(citizen, lambda f: f.get("from") == "bot" and f["text"] == BACK)


def test_by_default_a_lost_console_is_noticed_within_ten_seconds() -> None:
    s = Settings()
    # Silent past the timeout, noticed at the next ping at the latest.
    assert s.agent_ping_timeout + s.agent_ping_seconds <= 10
    assert s.agent_away_seconds + s.agent_sweep_seconds <= 5  # then the citizen is told


def test_the_bots_handoff_reply_names_the_configured_hours(tmp_path: Path) -> None:
    from assistant.closing import DESK_HOURS
    from tests.harness import rest_client

    with rest_client(tmp_path, "hours-reply", office_hours=RULES) as c:
        r = c.post("/webhooks/rest/webhook", json={"sender": "hrs", "message": "转人工"})
        text = "\n".join(m.get("text", "") for m in r.json())
    described = OfficeHours.parse(RULES, "", "", "Asia/Shanghai").describe()
    assert described in text and DESK_HOURS not in text, text
