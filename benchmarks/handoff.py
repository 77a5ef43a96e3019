"""Human-handoff relay latency across two server processes.

    .venv/bin/python benchmarks/handoff.py [-n 200] [--pg postgresql://…/postgres] [--redis redis://…]

Starts two ``daoban serve`` processes sharing a fresh PostgreSQL database (created and
dropped here) and Redis (a unique key prefix); a citizen talks to process A, a signed-in
agent to process B. After the handoff and claim it measures, per message, citizen→agent
(send on A until the agent's socket on B shows it) and agent→citizen (the reverse), and
prints p50/p99 of each. Goal: p99 ≤ 50 ms. The run is bounded by -n and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import psycopg
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "relay-kq7Z-48x-timing"  # 12+ characters, not a common password


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("daoban serve exited early")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("daoban serve did not start")


def recv_until(ws: ClientConnection, pred: Any, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        try:
            f: dict[str, Any] = json.loads(ws.recv(timeout=max(0.05, deadline - time.time())))
        except TimeoutError:
            raise SystemExit(f"timed out; frames seen: {seen[-5:]}") from None
        seen.append(f)
        if pred(f):
            return f


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def run(n: int, a: str, b: str) -> tuple[list[float], list[float]]:
    req = urllib.request.Request(
        b + "/agent/login", method="POST",
        data=json.dumps({"username": "bench", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # the token is in the cookie only
        token = SimpleCookie(r.headers["Set-Cookie"])["daoban_agent"].value
    to_agent: list[float] = []
    to_citizen: list[float] = []
    with connect(a.replace("http", "ws") + "/ws/chat") as cws, connect(
            b.replace("http", "ws") + "/ws/agent",
            additional_headers={"Authorization": f"Bearer {token}"}) as aws:
        recv_until(aws, lambda f: f["type"] == "welcome")
        cws.send(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        cid = recv_until(cws, lambda f: f["type"] == "welcome")["conversation_id"]
        for i, text in enumerate(["社保卡丢了咋整", "转人工"]):
            cws.send(json.dumps({"type": "message", "client_id": f"s{i}", "text": text}))
            recv_until(cws, lambda f, i=i: f["type"] == "ack" and f.get("client_id") == f"s{i}")
        recv_until(aws, lambda f: f["type"] == "lists" and any(
            q["conversation_id"] == cid for q in f["queue"]))
        aws.send(json.dumps({"type": "claim", "conversation_id": cid}))
        recv_until(aws, lambda f: f["type"] == "claimed")
        recv_until(cws, lambda f: f.get("mode") == "WITH_AGENT")
        for i in range(n):
            q = f"第{i}个问题"
            t0 = time.perf_counter()
            cws.send(json.dumps({"type": "message", "client_id": f"c{i}", "text": q}))
            recv_until(aws, lambda f, q=q: f["type"] == "event" and f.get("text") == q)
            to_agent.append((time.perf_counter() - t0) * 1000)
            ans = f"第{i}个回答"
            t0 = time.perf_counter()
            aws.send(json.dumps({"type": "send", "conversation_id": cid, "client_id": f"a{i}",
                                 "text": ans}))
            recv_until(cws, lambda f, ans=ans: f.get("from") == "agent" and f.get("text") == ans)
            to_citizen.append((time.perf_counter() - t0) * 1000)
    return to_agent, to_citizen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    db = f"daoban_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.pg, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    tmp = Path(tempfile.mkdtemp(prefix="daoban-handoff-"))
    env = {**os.environ,
           "DAOBAN_DATABASE_URL": args.pg.rsplit("/", 1)[0].replace(
               "postgresql://", "postgresql+psycopg://", 1) + "/" + db,
           "DAOBAN_REDIS_URL": args.redis, "DAOBAN_REDIS_PREFIX": f"daoban-bench-{db}:",
           "DAOBAN_INDEX_DIR": str(tmp / "idx"), "DAOBAN_AGENT_WAIT_LIMIT": "600",
           "DAOBAN_AGENT_GRACE_SECONDS": "600", "DAOBAN_WS_IP_LIMIT": "1000000",
           # one scripted citizen sends far faster than a person: lift the per-socket limit
           "DAOBAN_WS_CONN_LIMIT": "1000000"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(
            [sys.executable, "-m", "channels.cli", "agent", "add", "bench", "--name", "压测帮办",
             "--skills", "人社", "--password-stdin"],
            cwd=ROOT, env=env, input=(PASSWORD + "\n").encode(), check=True,
            capture_output=True, timeout=120)
        bases = []
        for _ in ("a", "b"):  # one after the other: the first start migrates
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "channels.cli", "serve", "--port", str(port)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            bases.append(f"http://127.0.0.1:{port}")
            wait_healthy(bases[-1], proc)
        to_agent, to_citizen = run(args.n, bases[0], bases[1])
        for name, xs in (("citizen → agent", to_agent), ("agent → citizen", to_citizen)):
            print(f"{name}: n={len(xs)} p50 {statistics.median(xs):.1f} ms, "
                  f"p99 {pct(xs, 0.99):.1f} ms (goal p99 <= 50 ms)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        with psycopg.connect(args.pg, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
