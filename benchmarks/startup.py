"""Start-up and one-shot search times, cold and warm, and where import time goes.

    .venv/bin/python benchmarks/startup.py [--runs 3] [--query 社保卡丢了咋整]

Each measurement is a new process, median of ``--runs``:
- server start-up: ``daoban serve`` (one process, SQLite) from exec until ``/health``
  answers 200;
- one-shot search: ``daoban search QUERY --json`` until it exits.
*Cold*: an empty database (the bundled guide base is loaded into it), an empty vector cache
(``DAOBAN_INDEX_DIR``) and an empty model cache (``DAOBAN_CACHE_DIR``: the intent model is
fitted, the pinyin decoder built). *Warm*: the same folders again, filled by a first run.
Then ``python -X importtime`` of the one-shot search, summed by top-level package.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECT = "社会保障卡挂失补换"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(folder: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("DAOBAN_REDIS_URL", "DAOBAN_NLU")}
    return {**inherited, "DAOBAN_DATABASE_URL": f"sqlite:///{folder / 'daoban.db'}",
            "DAOBAN_INDEX_DIR": str(folder / "index"), "DAOBAN_CACHE_DIR": str(folder / "cache")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_start(folder: Path) -> tuple[float, float]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "channels.cli", "serve", "--port", str(port)],
                            cwd=ROOT, env=env_for(folder), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"daoban serve exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0, cpu_seconds(proc.pid)
            except OSError:
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(20)


def search(folder: Path, query: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "channels.cli", "search", query, "--json"],
                         cwd=ROOT, env=env_for(folder), capture_output=True, text=True,
                         check=True)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    first = json.loads(out.stdout)["items"][0]["name"]
    if first != EXPECT and query == "社保卡丢了咋整":
        raise SystemExit(f"search answered {first}, not {EXPECT}")
    return took, cpu


def measure(kind: str, query: str, runs: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Medians of (wall, CPU) seconds: cold, warm."""
    cold: list[tuple[float, float]] = []
    warm: list[tuple[float, float]] = []
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="daoban-startup-"))
        try:
            for times in (cold, warm):
                times.append(server_start(folder) if kind == "serve" else search(folder, query))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    def median(runs: list[tuple[float, float]]) -> tuple[float, float]:
        return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))

    return median(cold), median(warm)


def import_top(query: str, n: int = 10) -> list[tuple[str, float, float]]:
    """(package, self seconds summed over its modules, cumulative seconds of its first
    import) of the one-shot search, warm caches."""
    folder = Path(tempfile.mkdtemp(prefix="daoban-import-"))
    try:
        search(folder, query)  # warm the caches
        out = subprocess.run([sys.executable, "-X", "importtime", "-m", "channels.cli",
                              "search", query, "--json"], cwd=ROOT, env=env_for(folder),
                             capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    own: dict[str, float] = defaultdict(float)
    cumulative: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, field = line.split(":", 1)[1].split("|")
        name = field.strip()
        top = name.split(".")[0]
        own[top] += int(self_us) / 1e6
        if name == top:  # the package itself: its cumulative time covers its submodules
            cumulative[top] = max(cumulative.get(top, 0.0), int(cum_us) / 1e6)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return [(name, s, cumulative.get(name, float("nan"))) for name, s in ranked]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--query", default="社保卡丢了咋整")
    args = ap.parse_args()
    print(f"# start-up, median of {args.runs} (load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs)")
    print("wall: until it answers; CPU: user + system time the process used till then "
          "(what a busy machine does not inflate)")
    print("| measurement | cold caches: wall (CPU) | warm caches: wall (CPU) |")
    print("|---|---|---|")
    for kind, label in (("serve", "server start-up (until /health answers)"),
                        ("search", f"one-shot `daoban search \"{args.query}\"`")):
        cold, warm = measure(kind, args.query, args.runs)
        print(f"| {label} | {cold[0]:.2f} s ({cold[1]:.2f} s) | {warm[0]:.2f} s "
              f"({warm[1]:.2f} s) |", flush=True)
    print("\n# import time of the one-shot search (warm caches), top 10 packages")
    print("| package | self time of its modules | cumulative (first import) |")
    print("|---|---|---|")
    for name, own, cum in import_top(args.query):
        print(f"| {name} | {own * 1000:.0f} ms | {cum * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
