"""Web chat load: N concurrent websocket conversations, each a scripted multi-turn chat.

    .venv/bin/python benchmarks/load_ws.py [-n 200] [--turns 6] [--think 2 6] [--url ws://…]

Without --url it starts its own ``daoban serve`` (one process, SQLite in a temp folder) on a
free loopback port and reports that server's RSS. Latency is measured from sending a
message to receiving the bot's reply frame. Citizens think between turns (uniform
``--think`` seconds), as people do; the run is bounded (turns × think) and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    ["社保卡丢了咋整", "要多久", "要钱吗", "在哪办", "谢谢", "再见"],
    ["孩子出生了要办啥", "需要什么材料", "能网上办吗", "在哪办", "谢谢", "再见"],
    ["怎么取公积金", "2", "要多久", "需要什么材料", "谢谢", "再见"],
    ["身份证丢了", "要钱吗", "要本人去吗", "那驾照到期了呢", "要多久", "再见"],
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def citizen(url: str, script: list[str], think: tuple[float, float],
                  lat: list[float], errors: list[str], rnd: random.Random,
                  by_turn: dict[int, list[float]]) -> None:
    try:
        async with websockets.connect(url, max_size=2**20, open_timeout=30) as ws:
            await ws.send(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
            while json.loads(await ws.recv())["type"] != "welcome":
                pass
            for i, text in enumerate(script):
                await asyncio.sleep(rnd.uniform(*think))
                cid = f"c-{id(script)}-{i}-{rnd.random()}"
                t0 = time.perf_counter()
                await ws.send(json.dumps({"type": "message", "client_id": cid, "text": text}))
                while True:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if f["type"] == "error":
                        errors.append(f["code"])
                        break
                    if f["type"] == "message" and f["from"] in ("bot", "system"):
                        lat.append((time.perf_counter() - t0) * 1000)
                        by_turn.setdefault(i, []).append(lat[-1])
                        # drain the rest of this turn's frames
                        break
    except Exception as exc:
        errors.append(type(exc).__name__)


async def run(
    url: str, n: int, turns: int, think: tuple[float, float], seed: int
) -> dict[str, Any]:
    rnd = random.Random(seed)
    lat: list[float] = []
    errors: list[str] = []
    by_turn: dict[int, list[float]] = {}
    t0 = time.perf_counter()
    await asyncio.gather(*(
        citizen(url, SCRIPTS[i % len(SCRIPTS)][:turns], think, lat, errors,
                random.Random(rnd.random()), by_turn)
        for i in range(n)
    ))
    elapsed = time.perf_counter() - t0
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")

    return {"conversations": n, "replies": len(lat), "seconds": elapsed,
            "msgs_per_s": len(lat) / elapsed, "p50": statistics.median(lat) if lat else float("nan"),
            "p95": pct(0.95), "p99": pct(0.99), "errors": len(errors),
            "error_kinds": {e: errors.count(e) for e in set(errors)},
            "p99_by_turn": {t: round(sorted(v)[int(len(v) * 0.99)], 1)
                            for t, v in sorted(by_turn.items())}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--think", type=float, nargs=2, default=(2.0, 6.0))
    ap.add_argument("--url")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    proc = None
    url = args.url
    if url is None:
        tmp = tempfile.mkdtemp(prefix="daoban-load-")
        port = free_port()
        env = {**os.environ, "DAOBAN_DATABASE_URL": f"sqlite:///{tmp}/load.db",
               "DAOBAN_INDEX_DIR": f"{tmp}/idx",
               # every simulated citizen comes from 127.0.0.1: lift the per-address limit
               "DAOBAN_WS_IP_LIMIT": "1000000"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "channels.cli", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        url = f"ws://127.0.0.1:{port}/ws/chat"
    try:
        r = asyncio.run(run(url, args.n, args.turns, tuple(args.think), args.seed))
        rss = f"{rss_mb(proc.pid):.0f} MB" if proc else "n/a (external server)"
        print(f"conversations {r['conversations']}, replies {r['replies']}, "
              f"{r['seconds']:.1f} s, {r['msgs_per_s']:.1f} msg/s, errors {r['errors']} "
              f"{r['error_kinds'] or ''}")
        print(f"reply latency p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, p99 {r['p99']:.1f} ms")
        print(f"p99 by turn: {r['p99_by_turn']}")
        print(f"server RSS {rss}")
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
