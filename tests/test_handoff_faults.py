"""Fault paths of the human loop (issue 16): Redis stopped mid-handoff, a mis-pointed bus,
an unreachable Redis at start-up. Each test starts its own ``redis-server`` on its own
port, never the shared one."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.desk import AgentDesk
from channels.settings import Settings
from tests.consoles import PASSWORD, agent_ws, citizen_send, recv, token, until
from tests.harness import app_for
from tests.servers import ROOT, _server_env, free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


class RedisServer:
    """A throw-away ``redis-server`` on its own port, stopped and started by the test."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.exe, self.workdir, self.port = exe, workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def app_on(db: str, redis_url: str, tmp_path: Path, beat: float = 5.0) -> Iterator[TestClient]:
    settings = Settings(database_url=db, index_dir=tmp_path / "idx", redis_url=redis_url,
                        redis_prefix="faults:", agent_wait_limit=600, agent_grace_seconds=600,
                        agent_heartbeat_seconds=beat, agent_lease_seconds=max(20.0, 4 * beat))
    app = app_for(settings)
    with TestClient(app) as client:
        yield client


def _wait(pred: Any, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _bus(client: TestClient) -> dict[str, str]:
    body = client.get("/health").json()
    state: dict[str, str] = body["components"]["event_bus"]
    return {"status": body["status"], **state}


def test_redis_stopped_mid_handoff_strands_nobody(
        redis_server: RedisServer, pg_url: str, tmp_path: Path) -> None:
    with app_on(pg_url, redis_server.url, tmp_path) as client:
        desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
        desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))
        assert _bus(client)["state"] == "ok"
        with client.websocket_connect("/ws/chat") as citizen:
            citizen.send_text(json.dumps({"type": "hello", "conversation_id": None,
                                          "last_seq": 0}))
            cid = recv(citizen)["conversation_id"]
            citizen_send(citizen, "f1", "社保卡丢了咋整")

            redis_server.stop()  # Redis goes away just before 转人工
            frames = citizen_send(citizen, "f2", "转人工")
            frames += until(citizen, lambda f: f.get("mode") == "WAITING_AGENT")
            assert not [f for f in frames if f["type"] == "error"], frames
            # The handoff is recorded: an agent will see it.
            assert [h.conversation_id for h in desk.agents.queue()] == [cid]
            down = _bus(client)
            assert down["status"] == "degraded" and down["state"] == "off"
            assert "Redis" in down["detail"] and down["fix"]

            redis_server.start()
            _wait(lambda: _bus(client)["state"] == "ok")
            with agent_ws(client, token(client)) as agent:
                lists = until(agent, lambda f: f["type"] == "lists")[-1]
                assert [q["conversation_id"] for q in lists["queue"]] == [cid]
                agent.send_text(json.dumps({"type": "claim", "conversation_id": cid}))
                until(agent, lambda f: f["type"] == "claimed")
                agent.send_text(json.dumps({"type": "send", "conversation_id": cid,
                                            "client_id": "a1", "text": "您好，我是王帮办。"}))
                until(citizen, lambda f: f.get("from") == "agent")
                citizen_send(citizen, "f3", "补卡要多久")
                until(agent, lambda f: f["type"] == "event" and f["text"] == "补卡要多久")


def test_a_request_interrupted_before_its_handoff_is_queued_by_the_sweep(
        redis_server: RedisServer, pg_url: str, tmp_path: Path) -> None:
    """A crash between the mode change and the handoff record (or any other failure
    there): the sweep finds the waiting conversation and queues it."""
    from datetime import UTC, datetime, timedelta

    from assistant.model import UserMessage

    with app_on(pg_url, redis_server.url, tmp_path) as client:
        desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
        assistant = desk.assistant
        portal = client.portal
        assert portal is not None
        assistant.desk = None  # the mode change is saved, nothing else happens
        for text in ("社保卡丢了咋整", "转人工"):
            msg = UserMessage("lost", text, channel="web")
            portal.call(functools.partial(assistant.handle, msg, create=True))
        assistant.desk = desk
        assert desk.agents.queue() == []
        portal.call(desk.sweep, datetime.now(UTC) + timedelta(seconds=30))
        (h,) = desk.agents.queue()
        assert h.conversation_id == "lost" and h.department == "人社"
        portal.call(desk.sweep, datetime.now(UTC) + timedelta(seconds=30))
        assert len(desk.agents.queue()) == 1  # repaired once


def test_two_processes_on_different_redis_are_reported(
        redis_server: RedisServer, pg_url: str, tmp_path: Path) -> None:
    other = RedisServer(tmp_path)
    other.start()
    try:
        with app_on(pg_url, redis_server.url, tmp_path, beat=0.5) as a, \
                app_on(pg_url, other.url, tmp_path, beat=0.5) as b:
            for client in (a, b):
                _wait(lambda c=client: _bus(c)["state"] == "off")
                state = _bus(client)
                assert state["status"] == "degraded"
                assert "no bus messages from the server process" in state["detail"]
        # The same Redis: nothing to report.
        with app_on(pg_url, redis_server.url, tmp_path, beat=0.5) as a, \
                app_on(pg_url, redis_server.url, tmp_path, beat=0.5) as b:
            time.sleep(2.5)
            assert _bus(a)["state"] == "ok" and _bus(b)["state"] == "ok"
    finally:
        other.stop()


def test_unreachable_redis_at_start_up_is_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = _server_env(tmp_path, DAOBAN_REDIS_URL=f"redis://:secret@127.0.0.1:{port}/0",
                      DAOBAN_PORT=str(free_port()))
    run = subprocess.run([sys.executable, "-m", "channels.cli", "serve"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if "event_bus" in line]
    assert len(lines) == 1 and "Redis" in lines[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "secret" not in run.stderr
