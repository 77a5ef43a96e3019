"""daoban and Rasa 3.6 side by side: the same scripted conversation, the same load
generator, the same Rasa-compatible webhook (``POST /webhooks/rest/webhook``).

    .venv/bin/python benchmarks/vs_rasa.py [--clients 1 50] [--seconds 20] [--no-rasa]
                                           [--profile daoban.html]

- Rasa: the small bot of ``scripts/rasa.sh bot`` (daoban's own ``nlu/data/nlu.yml``, the
  same pipeline as the NLU model — jieba, count vectors, DIET — plus one rule per intent
  answering a fixed text) served by ``rasa run`` (one process) on a free port. Trained
  once; later runs reuse the model (``~/.cache/daoban/rasa-models``).
  ``DAOBAN_RASA_BOT_EPOCHS=5`` trains its DIET for fewer epochs (minutes instead of an hour
  on a busy 2-core machine): the network is the same, so is its cost per message.
- daoban: ``daoban serve`` (one process, SQLite in a temporary folder, the user's model
  cache), with ``DAOBAN_RATE_LIMITS=0`` — every simulated citizen comes from 127.0.0.1 and
  the limits exist to stop floods, not this measurement.
- Load: asyncio + httpx; each client plays the 4-turn conversation below again and again
  as a new sender, the next message sent as soon as the reply arrives (no think time), for
  ``--seconds`` per level after a short warm-up. msg/s counts answered messages; latency is
  send → full reply; RSS is the server process's VmRSS after the run (and its peak).
- ``--profile FILE``: also run pyinstrument inside the daoban server during the 50-client
  level and write its HTML report (slower: do not compare those numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CONVERSATION = ["社保卡丢了咋整", "需要什么材料", "要多久", "谢谢"]
WARMUP_S = 3.0


@dataclass
class Result:
    clients: int
    messages: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def pct(self, p: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def wait_for(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def daoban_server(profile: Path | None) -> Iterator[tuple[str, int]]:
    tmp = Path(tempfile.mkdtemp(prefix="daoban-vs-rasa-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DAOBAN_REDIS_URL", "DAOBAN_NLU")}
    env.update({"DAOBAN_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "DAOBAN_INDEX_DIR": str(ROOT / "var" / "index"),
                "DAOBAN_RATE_LIMITS": "0", "DAOBAN_WS_IP_LIMIT": "1000000"})
    cmd = [sys.executable, "-m", "channels.cli", "serve", "--port", str(port)]
    if profile is not None:
        cmd = [sys.executable, "-m", "pyinstrument", "-r", "html", "-o", str(profile),
               "-m", "channels.cli", "serve", "--port", str(port)]
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc, "daoban serve", 180)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        if profile is not None:
            proc.send_signal(2)  # SIGINT: pyinstrument writes its report on the way out
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                stop(proc)
        else:
            stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def rasa_server() -> Iterator[tuple[str, int]]:
    model = subprocess.run([str(ROOT / "scripts" / "rasa.sh"), "bot"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    venv = Path(os.environ.get("DAOBAN_RASA_VENV",
                               Path.home() / ".cache" / "daoban" / "rasa-3.6.21-py310"))
    bot = ROOT / os.environ.get("DAOBAN_RASA_BOT", "var/rasa-bot")
    port = free_port()
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = (bot / "bench.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "rasa"), "run", "--enable-api", "-i", "127.0.0.1", "-p", str(port),
         "-m", model, "--credentials", "credentials.yml"],
        cwd=bot, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/status", proc, "rasa run", 600)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop(proc)
        log.close()


async def client(http: httpx.AsyncClient, base: str, name: str, until: float,
                 measure_from: float, lat: list[float], errors: list[str]) -> None:
    n = 0
    while time.perf_counter() < until:
        sender = f"{name}-{n}"
        n += 1
        for text in CONVERSATION:
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{base}/webhooks/rest/webhook",
                                    json={"sender": sender, "message": text})
                ok = r.status_code == 200 and isinstance(r.json(), list) and r.json()
            except (httpx.HTTPError, ValueError) as exc:
                ok, r = False, None
                errors.append(type(exc).__name__)
            if t0 >= measure_from:
                if ok:
                    lat.append((time.perf_counter() - t0) * 1000)
                elif r is not None:
                    errors.append(f"HTTP {r.status_code}")
            if time.perf_counter() >= until:
                return


async def load(base: str, clients: int, seconds: float) -> Result:
    lat: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        start = time.perf_counter()
        measure_from = start + WARMUP_S
        until = measure_from + seconds
        await asyncio.gather(*(client(http, base, f"bench-{os.getpid()}-{i}", until,
                                      measure_from, lat, errors) for i in range(clients)))
        elapsed = time.perf_counter() - measure_from
    return Result(clients, len(lat), len(errors), elapsed, lat)


def run_levels(name: str, base: str, pid: int, levels: list[int],
               seconds: float) -> dict[int, tuple[Result, float, float]]:
    out = {}
    for n in levels:
        r = asyncio.run(load(base, n, seconds))
        rss, peak = memory_mb(pid)
        out[n] = (r, rss, peak)
        print(f"  {name}: {n} clients: {r.rate:.1f} msg/s, p50 {statistics.median(r.latencies):.1f}"
              f" ms, p99 {r.pct(0.99):.1f} ms, errors {r.errors}, RSS {rss:.0f} MB",
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 50])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--no-rasa", action="store_true", help="daoban only")
    ap.add_argument("--profile", type=Path, help="pyinstrument HTML of the daoban server")
    args = ap.parse_args()
    print(f"conversation: {' → '.join(CONVERSATION)}; {args.seconds:.0f} s per level after "
          f"{WARMUP_S:.0f} s warm-up; load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs; daoban with DAOBAN_RATE_LIMITS=0; Rasa bot DIET epochs: "
          f"{os.environ.get('DAOBAN_RASA_BOT_EPOCHS', 'as the NLU model (60)')}", flush=True)
    results: dict[str, dict[int, tuple[Result, float, float]]] = {}
    with daoban_server(args.profile) as (base, pid):
        results["daoban"] = run_levels("daoban", base, pid, args.clients, args.seconds)
    if not args.no_rasa:
        with rasa_server() as (base, pid):
            results["Rasa 3.6"] = run_levels("Rasa 3.6", base, pid, args.clients, args.seconds)
    print("\n| server | clients | msg/s | p50 | p99 | errors | RSS (peak) |")
    print("|---|---|---|---|---|---|---|")
    for name, levels in results.items():
        for n, (r, rss, peak) in levels.items():
            print(f"| {name} | {n} | {r.rate:.1f} | {statistics.median(r.latencies):.1f} ms | "
                  f"{r.pct(0.99):.1f} ms | {r.errors} | {rss:.0f} MB ({peak:.0f} MB) |")
    if "Rasa 3.6" in results:
        for n in args.clients:
            d, ra = results["daoban"][n][0], results["Rasa 3.6"][n][0]
            print(f"\n{n} clients: daoban/Rasa throughput {d.rate / ra.rate:.1f}×", end="")
        print()


if __name__ == "__main__":
    main()
