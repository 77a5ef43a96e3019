"""A server process holding an agent's console dies (kill -9): its sockets cannot close
themselves, so its lease runs out, and another process gives the agent's chats back to the
queue after the grace period and tells the citizen."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.agents import Presence
from assistant.desk import AGENT_LOST, AgentDesk
from assistant.model import ConversationMode
from channels.settings import Settings
from tests.consoles import PASSWORD, Reader, citizen_send, http_login, recv, until
from tests.harness import app_for
from tests.servers import daoban_process

pytestmark = pytest.mark.slow

# Short on purpose: heartbeat every 0.2 s, lease 1 s, grace 1 s.
FAST = {"agent_heartbeat_seconds": 0.2, "agent_lease_seconds": 1.0,
        "agent_grace_seconds": 1.0, "agent_sweep_seconds": 0.2, "agent_wait_limit": 600.0}


def _wait(cond: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_killed_process_agent_chats_return_to_queue_and_citizen_is_told(
        tmp_path: Path) -> None:
    from websockets.sync.client import connect

    db = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {f"DAOBAN_{k.upper()}": str(v) for k, v in FAST.items()}
    # Process A: a real `daoban serve` holding the agent's console socket.
    with daoban_process(tmp_path, DAOBAN_DATABASE_URL=db, **env) as (base_a, proc_a):
        # Process B: this app, on the same database; the citizen chats here.
        settings = Settings.model_validate({"database_url": db,
                                            "index_dir": tmp_path / "idx-b", **FAST})
        app = app_for(settings)
        with TestClient(app) as b:
            desk: AgentDesk = app.state.desk
            agent_id = desk.agents.add("wang", PASSWORD, display_name="王帮办",
                                       skills=("人社",)).id
            with connect(base_a.replace("http", "ws") + "/ws/agent", additional_headers={
                    "Authorization": f"Bearer {http_login(base_a)}"}) as aws, \
                    b.websocket_connect("/ws/chat") as citizen:
                agent = Reader(aws)
                agent.until(lambda f: f["type"] == "welcome")
                citizen.send_text(json.dumps({"type": "hello", "conversation_id": None,
                                              "last_seq": 0}))
                cid = recv(citizen)["conversation_id"]
                citizen_send(citizen, "c1", "社保卡丢了咋整")
                citizen_send(citizen, "c2", "转人工")
                aws.send(json.dumps({"type": "claim", "conversation_id": cid}))
                agent.until(lambda f: f["type"] == "claimed")

                def mode() -> ConversationMode:
                    conv = desk.store.load(cid)
                    assert conv is not None
                    return conv.mode

                def connections() -> int:
                    a = desk.agents.get(agent_id)
                    assert a is not None
                    return a.connections

                assert mode() is ConversationMode.WITH_AGENT and connections() == 1
                # Alive, A's heartbeat keeps its socket counted well past lease + grace.
                time.sleep(3.0)
                assert mode() is ConversationMode.WITH_AGENT and connections() == 1

                proc_a.kill()  # no shutdown, no socket close, no database update
                proc_a.wait(10)
                killed = time.monotonic()
                _wait(lambda: connections() == 0, 10, "the lease to run out")
                lapsed = desk.agents.get(agent_id)
                assert lapsed is not None and lapsed.disconnected_at is not None
                # The grace period runs from the lease's expiry: until then, no change.
                grace_ends = lapsed.disconnected_at + desk.grace
                while datetime.now(UTC) < grace_ends - timedelta(seconds=0.3):
                    assert mode() is ConversationMode.WITH_AGENT
                    time.sleep(0.05)
                _wait(lambda: mode() is ConversationMode.WAITING_AGENT, 10,
                      "the chat to go back to the queue")
                assert time.monotonic() - killed < 10
                frames = until(citizen, lambda f: f.get("from") == "bot"
                               and f["text"] == AGENT_LOST)
                assert not [f for f in frames if f.get("from") == "agent"]
                assert [h.conversation_id for h in desk.agents.queue()] == [cid]
                lost = desk.agents.get(agent_id)
                assert lost is not None and lost.presence is Presence.OFFLINE
