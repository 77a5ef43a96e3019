"""A WeChat reply the API refuses (45015 outside the 48-hour window, 45047 too many) is
marked on the message for the agent, with what to do; left as a 留言 it goes out when the
citizen writes again (issue 16.4)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant.agents import SqlAgentStore
from assistant.agents import migrate as migrate_agents
from assistant.bus import LocalBus
from assistant.desk import AgentDesk, Conflict
from assistant.model import Reply, UserMessage
from channels.agent_session import event_frame
from tests.consoles import PASSWORD
from tests.harness import make_assistant


class Refused(Exception):
    def __init__(self, errcode: int) -> None:
        super().__init__(f"WeChat API error {errcode}")
        self.errcode = errcode


class FakeWeChat:
    """The 客服消息 sink: refuses with ``errcode`` while set."""

    def __init__(self) -> None:
        self.errcode: int | None = None
        self.sent: list[str] = []

    async def push(self, conversation_id: str, replies: Sequence[Reply]) -> None:
        if self.errcode is not None:
            raise Refused(self.errcode)
        self.sent += [r.text for r in replies]


@pytest.fixture
def wechat() -> FakeWeChat:
    return FakeWeChat()


@pytest.fixture
def desk(tmp_path: Path, wechat: FakeWeChat) -> AgentDesk:
    assistant = make_assistant(f"sqlite:///{tmp_path / 'd.db'}", tmp_path / "idx")
    migrate_agents(assistant.store.engine)
    d = AgentDesk(assistant, SqlAgentStore(assistant.store.engine), LocalBus(),
                  sink=lambda channel: wechat if channel == "wechat" else None)
    d.agents.heartbeat(d.process_id, d.process_label, d.lease, {})
    assistant.desk = d
    return d


async def _citizen(desk: AgentDesk, text: str) -> None:
    await desk.assistant.handle(UserMessage("wx1", text, channel="wechat"), create=True)


def _deliveries(desk: AgentDesk) -> list[dict[str, object]]:
    return [e for e in desk.store.events("wx1") if e["type"] == "delivery"]


@pytest.mark.parametrize(("errcode", "words"), [(45015, "48 小时"), (45047, "连续发送")])
async def test_refused_reply_is_marked_then_left_as_a_message(
        desk: AgentDesk, wechat: FakeWeChat, errcode: int, words: str) -> None:
    a = desk.agents.add("wang", PASSWORD, skills=("人社",))
    await desk.connected(a)
    agent = desk.agents.get(a.id)
    assert agent is not None
    await _citizen(desk, "社保卡丢了咋整")
    await _citizen(desk, "转人工")
    await desk.claim(agent, "wx1")
    wechat.errcode = errcode
    (said,) = await desk.say(agent, "wx1", "补卡带身份证就行。", "m1")
    (failed,) = _deliveries(desk)
    assert failed["of"] == said["seq"] and failed["ok"] is False
    assert failed["code"] == errcode
    assert words in str(failed["text"]) and "留作留言" in str(failed["text"])
    frame = event_frame("wx1", failed)  # what the console shows on the message
    assert frame["kind"] == "delivery" and frame["of"] == said["seq"] and frame["ok"] is False

    await desk.hold(agent, "wx1", said["seq"])
    with pytest.raises(Conflict):
        await desk.hold(agent, "wx1", said["seq"])  # once
    assert "补卡带身份证就行。" not in wechat.sent
    wechat.errcode = None
    await _citizen(desk, "我回来了")  # the window opens again: the 留言 goes out
    assert wechat.sent[-1] == "补卡带身份证就行。"
    assert [d.get("ok") for d in _deliveries(desk)] == [False, None, True]
    await _citizen(desk, "好的")
    assert wechat.sent.count("补卡带身份证就行。") == 1  # delivered once


async def test_a_delivered_reply_cannot_be_held(desk: AgentDesk, wechat: FakeWeChat) -> None:
    a = desk.agents.add("li", PASSWORD, skills=("人社",))
    await desk.connected(a)
    agent = desk.agents.get(a.id)
    assert agent is not None
    await _citizen(desk, "社保卡丢了咋整")
    await _citizen(desk, "转人工")
    await desk.claim(agent, "wx1")
    (said,) = await desk.say(agent, "wx1", "您好。", "m1")
    assert wechat.sent[-1] == "您好。" and _deliveries(desk) == []
    with pytest.raises(Conflict):
        await desk.hold(agent, "wx1", said["seq"])
