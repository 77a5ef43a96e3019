"""The production topology on this machine: Debian's nginx terminating TLS in front of two
real ``daoban serve`` processes that share PostgreSQL and Redis, with the proxying rules
shipped in deploy/daoban-proxy.conf. A citizen chats over the web websocket through nginx,
the process holding the socket is killed (SIGKILL) while a message is on its way, the page
reconnects through nginx to the other process, and the conversation goes on with nothing
lost. Behind nginx each client address is counted on its own (DAOBAN_TRUSTED_PROXIES)."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.consoles import Reader
from tests.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("DAOBAN_TEST_REDIS", "redis://127.0.0.1:6379/0")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

CITIZEN = "127.0.0.7"  # the test's clients connect from their own loopback addresses
NEW_CONVERSATIONS_PER_MINUTE = 3


def _require(ok: bool, what: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required in CI")
        pytest.skip(f"{what} is not available")


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


def _selfsigned() -> Any:
    spec = importlib.util.spec_from_file_location("selfsigned", ROOT / "deploy/selfsigned.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Topology:
    port: int  # nginx, TLS
    tls: ssl.SSLContext  # trusts the test's self-signed certificate
    daoban: dict[str, subprocess.Popen[bytes]]  # "127.0.0.1:PORT" → its process


def nginx_conf(tmp: Path, port: int, upstreams: list[str], cert_dir: Path) -> str:
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=30s;" for u in upstreams)
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}
worker_processes 1;
pid {tmp / 'nginx.pid'};
error_log {tmp / 'error.log'} info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp / 'access.log'};
{temp}
    upstream daoban {{
{servers}
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert_dir / 'cert.pem'};
        ssl_certificate_key {cert_dir / 'key.pem'};
        # Test only: which daoban process answered (the one to kill).
        add_header X-Daoban-Upstream $upstream_addr always;
        include {ROOT / 'deploy/daoban-proxy.conf'};
    }}
}}
"""


@pytest.fixture
def topology(pg_url: str, tmp_path: Path) -> Iterator[Topology]:
    _require(Path(NGINX).exists(), "nginx (apt-get install nginx-light)")
    _require(_redis_up(), "Redis on 127.0.0.1:6379")
    cert_dir = tmp_path / "tls"
    _selfsigned().make(cert_dir, ["localhost", "127.0.0.1"])
    env = {**os.environ, "DAOBAN_DATABASE_URL": pg_url, "DAOBAN_REDIS_URL": REDIS_URL,
           "DAOBAN_REDIS_PREFIX": f"daoban-test-{uuid.uuid4().hex[:10]}:",
           "DAOBAN_INDEX_DIR": str(tmp_path / "idx"),
           "DAOBAN_TRUSTED_PROXIES": "127.0.0.1",
           # Rate limits on (conftest turns them off), one of them low enough to reach.
           "DAOBAN_RATE_LIMITS": "true",
           "DAOBAN_LIMIT_NEW_CONVERSATIONS": str(NEW_CONVERSATIONS_PER_MINUTE),
           "DAOBAN_LIMIT_MESSAGES": "0", "DAOBAN_LIMIT_CONVERSATION_MESSAGES": "0",
           "DAOBAN_LIMIT_CHAT_CONNECTIONS": "0", "DAOBAN_LIMIT_HUMAN_REQUESTS": "0"}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        # One after the other: the second finds the guide base loaded and the vectors
        # cached (tests/test_agent_multiprocess.py starts two at once).
        for name in ("a", "b"):
            port = free_port()
            logs.append((tmp_path / f"{name}.log").open("w"))
            proc = subprocess.Popen(
                [sys.executable, "-m", "channels.cli", "serve", "--port", str(port)],
                cwd=ROOT, env=env, stdout=logs[-1], stderr=subprocess.STDOUT)
            procs[f"127.0.0.1:{port}"] = proc
            wait_healthy(f"http://127.0.0.1:{port}", proc, tmp_path / f"{name}.log")
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_conf(tmp_path, port, list(procs), cert_dir))
        nginx_log = (tmp_path / "nginx.out").open("w")
        logs.append(nginx_log)
        nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf),
                                  "-g", "daemon off;"], stdout=nginx_log,
                                 stderr=subprocess.STDOUT)
        tls = ssl.create_default_context(cafile=str(cert_dir / "cert.pem"))
        top = Topology(port, tls, procs)
        deadline = time.time() + 15
        while True:
            try:
                assert request(top, "GET", "/health")[0] == 200
                break
            except OSError:
                if nginx.poll() is not None or time.time() > deadline:
                    pytest.fail("nginx did not start: " + (tmp_path / "nginx.out").read_text()
                                + (tmp_path / "error.log").read_text()[-2000:])
                time.sleep(0.1)
        yield top
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        for f in logs:
            f.close()


def request(top: Topology, method: str, path: str, *, source: str = "127.0.0.1",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    """One HTTPS request through nginx from ``source``: status, body, answering process."""
    conn = http.client.HTTPSConnection("localhost", top.port, context=top.tls, timeout=10,
                                       source_address=(source, 0))
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None,
                     headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        body = r.read()
        return r.status, json.loads(body) if body else {}, r.headers["X-Daoban-Upstream"] or ""
    finally:
        conn.close()


def chat_socket(top: Topology) -> Any:
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", top.port), timeout=10,
                                    source_address=(CITIZEN, 0))
    return connect(f"wss://localhost:{top.port}/ws/chat", sock=sock, ssl=top.tls,
                   server_hostname="localhost", open_timeout=10)


def test_behind_nginx_clients_count_alone_and_a_killed_process_loses_nothing(
        topology: Topology) -> None:
    # One test: the two daoban processes take most of its time to start.
    each_client_address_counts_alone(topology)
    a_killed_process_loses_nothing(topology)


def a_killed_process_loses_nothing(top: Topology) -> None:
    from websockets.exceptions import ConnectionClosed

    seen: list[dict[str, Any]] = []  # every message frame the page showed
    with chat_socket(top) as ws:
        serving = ws.response.headers["X-Daoban-Upstream"]
        assert serving in top.daoban
        page = Reader(ws)
        ws.send(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        welcome = page.until(lambda f: f["type"] == "welcome")[-1]
        cid, token = welcome["conversation_id"], welcome["token"]

        def say(client_id: str, text: str) -> None:
            ws.send(json.dumps({"type": "message", "client_id": client_id, "text": text}))
            got = page.until(lambda f: f["type"] == "ack" and f["client_id"] == client_id)
            got += page.until(lambda f: f["type"] == "message" and f["from"] == "bot")
            seen.extend(f for f in got if f["type"] == "message")

        say("m-1", "社保卡丢了咋整")
        say("m-2", "要带什么材料")
        assert any("社会保障卡" in f["text"] or "社会保障卡" in str(f.get("card"))
                   for f in seen if f["from"] == "bot")

        # A message on its way when the process dies: it may or may not have been stored.
        ws.send(json.dumps({"type": "message", "client_id": "m-3", "text": "在哪办"}))
        top.daoban[serving].send_signal(signal.SIGKILL)
        top.daoban[serving].wait(10)
        with pytest.raises(ConnectionClosed):
            while True:  # nginx closes the page's socket when its upstream is gone
                ws.recv(timeout=15)

    # The page reconnects through nginx (to the other process) with what it holds…
    last = max(f["seq"] for f in seen)
    with chat_socket(top) as ws:
        # nginx names every process it tried ("dead, live" when it met the dead one first).
        answering = ws.response.headers["X-Daoban-Upstream"].split(", ")[-1]
        assert answering in top.daoban and answering != serving
        page = Reader(ws)
        ws.send(json.dumps({"type": "hello", "conversation_id": cid, "token": token,
                            "last_seq": last}))
        assert page.until(lambda f: f["type"] == "welcome")[-1]["resumed"] is True
        # …re-sends the message that was never acknowledged, as the page does, and goes on.
        ws.send(json.dumps({"type": "message", "client_id": "m-3", "text": "在哪办"}))
        page.until(lambda f: f["type"] == "ack" and f["client_id"] == "m-3")
        ws.send(json.dumps({"type": "message", "client_id": "m-4", "text": "谢谢"}))
        page.until(lambda f: f["type"] == "ack" and f["client_id"] == "m-4")

    # The whole transcript, as a reloaded page gets it: nothing lost, nothing twice.
    with chat_socket(top) as ws:
        page = Reader(ws)
        ws.send(json.dumps({"type": "hello", "conversation_id": cid, "token": token,
                            "last_seq": 0}))
        # The server sends the transcript while it handles the hello, before it reads on.
        ws.send(json.dumps({"type": "ping"}))
        transcript = [f for f in page.until(lambda f: f["type"] == "pong")
                      if f["type"] == "message"]
    mine = [f["client_id"] for f in transcript if f["from"] == "citizen"]
    assert mine == ["m-1", "m-2", "m-3", "m-4"]
    for before in seen:  # what the page showed before the kill is there, unchanged
        again = [f for f in transcript if f["seq"] == before["seq"]]
        assert again and again[0]["text"] == before["text"]
    for client_id in mine:  # every message of the citizen was answered by the bot
        i = next(i for i, f in enumerate(transcript) if f.get("client_id") == client_id)
        assert transcript[i + 1]["from"] == "bot", transcript[i:]

    # nginx skips the dead process: plain requests still succeed.
    assert request(top, "GET", "/health")[0] == 200


def each_client_address_counts_alone(top: Topology) -> None:
    """nginx appends the address it saw to X-Forwarded-For, daoban believes it from the
    trusted proxy only: a client's limit is its own, shared by both processes (Redis),
    and a forged header does not give it a new one."""
    answered_by = set()
    for _ in range(NEW_CONVERSATIONS_PER_MINUTE):
        status, _, upstream = request(top, "POST", "/api/v1/conversations", source="127.0.0.5")
        assert status == 201
        answered_by.add(upstream)
    assert answered_by == set(top.daoban)  # nginx took turns; the count is shared
    status, body, _ = request(top, "POST", "/api/v1/conversations", source="127.0.0.5",
                              headers={"X-Forwarded-For": "198.51.100.7"})
    assert status == 429, body
    assert request(top, "POST", "/api/v1/conversations", source="127.0.0.6")[0] == 201
