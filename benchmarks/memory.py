"""Memory and start-up of ``daoban serve --workers N``.

    .venv/bin/python benchmarks/memory.py [--workers 1 2 4] [--conversations 40]
        [--pg postgresql://…/postgres] [--redis redis://…] [--json]

For each N: starts ``daoban serve --workers N`` on a fresh PostgreSQL database (created
here, dropped at the end; the guide base is loaded by the first run) and Redis (a unique key
prefix), and measures

- start-up: from starting the process until ``/health`` answers 200 (the vector cache is
  warm after the first run; each run trains the intent model),
- after a few scripted conversations over the REST API (``--conversations``, three turns
  each, spread over the workers by the kernel), so the workers have touched what serving
  touches: the RSS of the master and of one worker, and the sum of ``Pss`` from
  ``/proc/PID/smaps_rollup`` over all the server's processes — shared pages counted once,
  split between the processes that share them.

With N = 1 there is no master: ``daoban serve`` serves in its one process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
TURNS = ["社保卡丢了咋整", "要带什么材料", "在哪办"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smaps(pid: int) -> dict[str, int]:
    """kB figures of /proc/PID/smaps_rollup (Rss, Pss, …)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0])
    return out


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(c) for c in text)
    return sorted(found)


def post(base: str, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def converse(base: str, n: int) -> None:
    for _ in range(n):
        c = post(base, "/api/v1/conversations", {})
        for text in TURNS:
            post(base, f"/api/v1/conversations/{c['id']}/messages", {"text": text}, c["token"])


def run_one(workers: int, env: dict[str, str], conversations: int) -> dict[str, Any]:
    with tempfile.TemporaryFile() as log:
        return _run(workers, env, conversations, log)


def _run(workers: int, env: dict[str, str], conversations: int,
         log: Any) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "channels.cli", "serve", "--port", str(port),
         "--workers", str(workers)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit("daoban serve exited:\n" + log.read().decode()[-3000:])
            try:
                with urllib.request.urlopen(base + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
            if time.monotonic() - started > 300:
                raise SystemExit("daoban serve did not start within 300 s")
        startup = time.monotonic() - started
        if workers > 1:  # forked after the load: all there within milliseconds
            while len(children(proc.pid)) < workers:
                time.sleep(0.05)
        converse(base, conversations)
        pids = [proc.pid, *children(proc.pid)]
        figures = {pid: smaps(pid) for pid in pids}
        worker = pids[1] if workers > 1 else pids[0]
        return {
            "workers": workers,
            "startup_s": round(startup, 2),
            "processes": len(pids),
            "master_rss_mb": round(figures[proc.pid]["Rss"] / 1024, 1) if workers > 1 else None,
            "worker_rss_mb": round(figures[worker]["Rss"] / 1024, 1),
            "pss_sum_mb": round(sum(f["Pss"] for f in figures.values()) / 1024, 1),
            # Anonymous memory (the heap) is shared only between a master and its forks;
            # Pss of files also splits with unrelated processes that map the same libraries.
            "pss_anon_sum_mb": round(sum(f["Pss_Anon"] for f in figures.values()) / 1024, 1),
            "rss_sum_mb": round(sum(f["Rss"] for f in figures.values()) / 1024, 1),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--conversations", type=int, default=40)
    ap.add_argument("--pg", default=os.environ.get(
        "DAOBAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--redis", default=os.environ.get(
        "DAOBAN_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    name = f"daoban_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "DAOBAN_DATABASE_URL": f"{url}/{name}",
                   "DAOBAN_REDIS_URL": args.redis,
                   "DAOBAN_REDIS_PREFIX": f"daoban-bench-{uuid.uuid4().hex[:10]}:",
                   "DAOBAN_INDEX_DIR": str(Path(tmp) / "idx"), "DAOBAN_RATE_LIMITS": "0"}
            run_one(1, env, 0)  # loads the guide base and fills the vector cache: not counted
            for n in args.workers:
                results.append(run_one(n, env, args.conversations))
                if not args.json:
                    r = results[-1]
                    master = f"{r['master_rss_mb']} MB" if r["master_rss_mb"] else "—"
                    print(f"workers {n}: start-up {r['startup_s']} s · RSS one worker "
                          f"{r['worker_rss_mb']} MB · master {master} · PSS sum "
                          f"{r['pss_sum_mb']} MB over {r['processes']} processes (of it "
                          f"anonymous {r['pss_anon_sum_mb']} MB; RSS sum {r['rss_sum_mb']} MB)",
                          flush=True)
    finally:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
