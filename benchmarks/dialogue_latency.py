"""Per-message time of the dialogue in process: understand + step + store, no HTTP.

    .venv/bin/python benchmarks/dialogue_latency.py [FILE ...] [--rounds 2]

Plays every dialogue of the development sets (tests/dialogues/dev.jsonl, dev2.jsonl by
default) through ``Assistant.handle`` on a SQLite file, and prints p50 / p90 / p99 of the
time per message and of ``understand()`` alone on the same texts, after one warm-up round.
The issue's budget: understand + step p50 ≤ 10 ms. Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.core import MessageRejected  # noqa: E402
from assistant.model import UserMessage  # noqa: E402
from tests.harness import make_assistant  # noqa: E402

DEFAULT = [ROOT / "tests" / "dialogues" / "dev.jsonl", ROOT / "tests" / "dialogues" / "dev2.jsonl"]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def play(files: list[Path], rounds: int) -> None:
    folder = Path(tempfile.mkdtemp())
    assistant = make_assistant(f"sqlite:///{folder / 'bench.db'}", folder / "idx")
    dialogues = [json.loads(line) for f in files
                 for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [t.get("user") or t.get("press") or "" for d in dialogues for t in d["turns"]]
    step: list[float] = []
    for r in range(rounds + 1):  # round 0 warms caches
        for n, d in enumerate(dialogues):
            cid = f"bench-{r}-{n}"
            for i, turn in enumerate(d["turns"]):
                text = turn.get("user") or turn.get("press") or ""
                t0 = time.perf_counter()
                try:
                    await assistant.handle(UserMessage(cid, text, message_id=f"{cid}-{i}"),
                                           create=True)
                except MessageRejected:  # the over-long bad-input turns: refused up front
                    continue
                if r:
                    step.append((time.perf_counter() - t0) * 1000)
    und: list[float] = []
    for text in texts:
        t0 = time.perf_counter()
        assistant.understanding.understand(text)
        und.append((time.perf_counter() - t0) * 1000)
    print(f"{len(dialogues)} dialogues, {len(step)} messages timed ({rounds} rounds)")
    for name, xs in (("message (understand + step + store)", step), ("understand() alone", und)):
        print(f"{name:38s} p50 {statistics.median(xs):6.2f} ms  p90 {pct(xs, 0.9):6.2f} ms  "
              f"p99 {pct(xs, 0.99):6.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    asyncio.run(play(args.files, args.rounds))


if __name__ == "__main__":
    main()
