"""Two real ``daoban serve`` processes sharing PostgreSQL and Redis: the citizen talks to
process A, the agent's console to process B, and messages flow both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.consoles import PASSWORD, Reader, http_login
from tests.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("DAOBAN_TEST_REDIS", "redis://127.0.0.1:6379/0")

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


@pytest.fixture
def two_servers(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if not _redis_up():
        if os.environ.get("CI"):
            pytest.fail("Redis on 127.0.0.1:6379 is required in CI")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    env = {**os.environ, "DAOBAN_DATABASE_URL": pg_url, "DAOBAN_REDIS_URL": REDIS_URL,
           "DAOBAN_REDIS_PREFIX": f"daoban-test-{uuid.uuid4().hex[:10]}:",
           "DAOBAN_INDEX_DIR": str(tmp_path / "idx"), "DAOBAN_AGENT_WAIT_LIMIT": "600",
           "DAOBAN_AGENT_GRACE_SECONDS": "600"}
    add = subprocess.run(
        [sys.executable, "-m", "channels.cli", "agent", "add", "wang", "--name", "王帮办",
         "--skills", "人社", "--password-stdin"],
        cwd=ROOT, env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    bases = []
    try:
        # Both at once, as a deployment restarts: they migrate, load the guide base and
        # write the vector cache concurrently (serialised where it must be).
        for name in ("a", "b"):
            port = free_port()
            log = tmp_path / f"{name}.log"
            logs.append(log.open("w"))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "channels.cli", "serve", "--port", str(port)],
                cwd=ROOT, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
            bases.append(f"http://127.0.0.1:{port}")
        for name, base, proc in zip("ab", bases, procs, strict=True):
            wait_healthy(base, proc, tmp_path / f"{name}.log")
        yield bases[0], bases[1]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs:
            f.close()


def test_citizen_on_a_agent_on_b_talk_both_ways(two_servers: tuple[str, str]) -> None:
    from websockets.sync.client import connect

    a, b = two_servers
    token = http_login(b)
    with connect(a.replace("http", "ws") + "/ws/chat") as cws, connect(
            b.replace("http", "ws") + "/ws/agent",
            additional_headers={"Authorization": f"Bearer {token}"}) as aws:
        citizen, agent = Reader(cws), Reader(aws)
        agent.until(lambda f: f["type"] == "welcome")
        cws.send(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        cid = citizen.until(lambda f: f["type"] == "welcome")[-1]["conversation_id"]

        def say(client_id: str, text: str) -> None:
            cws.send(json.dumps({"type": "message", "client_id": client_id, "text": text}))
            got = citizen.until(lambda f: f["type"] == "ack" and f.get("client_id") == client_id)
            citizen.backlog.extend(got[:-1])

        say("c1", "社保卡丢了咋整")
        say("c2", "转人工")
        agent.until(lambda f: f["type"] == "lists" and any(
            q["conversation_id"] == cid and q["department"] == "人社" for q in f["queue"]))
        aws.send(json.dumps({"type": "claim", "conversation_id": cid}))
        agent.until(lambda f: f["type"] == "claimed")
        citizen.until(lambda f: f.get("mode") == "WITH_AGENT")

        # Citizen (process A) → agent (process B), in order.
        say("c3", "补卡要多久")
        say("c4", "需要本人去吗")
        seen = agent.until(lambda f: f["type"] == "event" and f["text"] == "需要本人去吗")
        assert [f["text"] for f in seen if f["type"] == "event" and f["from"] == "citizen"] \
            == ["补卡要多久", "需要本人去吗"]
        # Agent (process B) → citizen (process A), in order; the bot stays silent.
        for i, text in enumerate(["您好，我是王帮办。", "一般当场补办，需要本人带身份证。"]):
            aws.send(json.dumps({"type": "send", "conversation_id": cid,
                                 "client_id": f"a{i}", "text": text}))
        got = citizen.until(lambda f: f.get("from") == "agent" and f["text"].startswith("一般"))
        assert [f["text"] for f in got if f.get("from") == "agent"] == [
            "您好，我是王帮办。", "一般当场补办，需要本人带身份证。"]
        assert not [f for f in got if f.get("from") == "bot"]
        aws.send(json.dumps({"type": "handback", "conversation_id": cid}))
        citizen.until(lambda f: f.get("from") == "bot" and "打个分" in f["text"])
