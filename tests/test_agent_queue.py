"""The queue after a transfer or a lost agent shows that reason and the wait since the
latest queueing, with the total wait beside it (issue 16.7)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from assistant.agents import SqlAgentStore
from assistant.agents import migrate as migrate_agents
from assistant.bus import LocalBus
from assistant.desk import AgentDesk
from assistant.model import UserMessage
from tests.consoles import PASSWORD
from tests.harness import make_assistant


@pytest.fixture
def desk(tmp_path: Path) -> AgentDesk:
    assistant = make_assistant(f"sqlite:///{tmp_path / 'q.db'}", tmp_path / "idx")
    migrate_agents(assistant.store.engine)
    d = AgentDesk(assistant, SqlAgentStore(assistant.store.engine), LocalBus(), grace=0)
    d.agents.heartbeat(d.process_id, d.process_label, d.lease, {})
    assistant.desk = d
    return d


async def test_queue_shows_the_latest_reason_and_both_waits(desk: AgentDesk) -> None:
    account = desk.agents.add("wang", PASSWORD, skills=("人社",))
    socket_id = await desk.connected(account)
    agent = desk.agents.get(account.id)
    assert agent is not None
    for text in ("社保卡丢了咋整", "转人工"):
        await desk.assistant.handle(UserMessage("q1", text, channel="web"), create=True)
    (first,) = await desk.queue_view(agent)
    assert first["waiting_seconds"] == first["total_seconds"]
    first_reason = first["reason"]

    # Make the first request look older than it is: the total keeps counting from there.
    with desk.agents.engine.begin() as c:
        c.exec_driver_sql("UPDATE handoffs SET requested_at = requested_at - interval '1 hour'"
                          if desk.agents.engine.dialect.name == "postgresql" else
                          "UPDATE handoffs SET requested_at = datetime(requested_at, '-1 hour')")
    await desk.claim(agent, "q1")
    await desk.transfer(agent, "q1", to_department="人社")
    (moved,) = await desk.queue_view(agent)
    assert moved["reason"] == "transfer" != first_reason
    assert moved["waiting_seconds"] < 60 <= 3600 - 60 < moved["total_seconds"]

    await desk.claim(agent, "q1")
    await desk.disconnected(agent, socket_id)  # no console left; grace 0
    await desk.sweep()
    await desk.connected(agent)
    (lost,) = await desk.queue_view(desk.agents.get(agent.id) or agent)
    assert lost["reason"] == "agent_lost" and lost["total_seconds"] > 3600 - 60
    assert timedelta(seconds=lost["waiting_seconds"]) < timedelta(minutes=1)


async def test_overdue_with_nobody_on_duty_is_not_told_all_busy(desk: AgentDesk) -> None:
    from assistant.desk import NOBODY, OVERDUE

    for text in ("社保卡丢了咋整", "转人工"):
        await desk.assistant.handle(UserMessage("q2", text, channel="web"), create=True)
    desk.wait_limit = timedelta(seconds=0)
    await desk.sweep()
    told = [e.get("text") for e in desk.store.events("q2") if e["type"] == "bot"]
    assert OVERDUE not in told
    assert told.count(NOBODY) == 2  # at the request, and again when the wait ran out
