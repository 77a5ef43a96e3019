"""What a ``/metrics`` scrape and a dashboard range cost on a database with history.

    .venv/bin/python benchmarks/ops_cost.py [--conversations 20000] [--handoffs 10000]
        [--db sqlite:///tmp/ops.db | postgresql+psycopg://…] [--repeat 3]

Fills a fresh database (a SQLite file in a temporary folder by default) with conversations
spread over the last 29 days, five logged events each (user messages and topics), a quarter
as many unanswered questions and ``--handoffs`` claimed handoffs, then times the registry's
rendering (``channels.metrics.Metrics.render``: the handoff series are two aggregate
queries) and ``channels.dashboard_data.dashboard`` over the default 30 days.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from assistant.agents import HandoffRow
from assistant.agents import migrate as migrate_agents
from assistant.store import ConversationRow, EventRow, UnansweredRow
from assistant.store import migrate as migrate_conversations
from channels.dashboard_data import dashboard, parse_range
from channels.metrics import Metrics
from channels.settings import Settings
from knowledge.db import make_engine

MINUTES = 29 * 1440


def fill(engine: Any, conversations: int, handoffs: int) -> None:
    now = datetime.now(UTC)
    rnd = random.Random(7)

    def at() -> datetime:
        return now - timedelta(minutes=rnd.randint(0, MINUTES))

    with engine.begin() as c:
        c.execute(insert(ConversationRow), [
            {"id": f"c{i}", "channel": rnd.choice(["web", "wechat", "rest"]), "mode": "BOT",
             "current": None, "state": {}, "created_at": at(), "updated_at": now}
            for i in range(conversations)])
        c.execute(insert(EventRow), [
            {"conversation_id": f"c{i}", "seq": j + 1, "type": "user" if j % 2 == 0 else "topic",
             "payload": {"entry": "social-security-card-replace"}, "created_at": at()}
            for i in range(conversations) for j in range(5)])
        c.execute(insert(UnansweredRow), [
            {"conversation_id": f"c{i}", "text": f"问题{i % 500}", "normalized": "x",
             "reason": "no_match", "created_at": at()} for i in range(conversations // 4)])
        c.execute(insert(HandoffRow), [
            {"conversation_id": f"c{i}", "channel": "web", "status": "ended",
             "reason": "requested", "department": "人社", "entry_id": None,
             "requested_at": now - timedelta(minutes=5), "queued_at": now - timedelta(minutes=5),
             "claimed_at": now - timedelta(seconds=rnd.randint(0, 290)), "told_overdue": False,
             "transfers": 0, "agents_seen": []} for i in range(handoffs)])


def timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(round((time.perf_counter() - t) * 1000, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conversations", type=int, default=20_000)
    ap.add_argument("--handoffs", type=int, default=10_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'ops.db'}"
    engine = make_engine(url)
    migrate_conversations(engine)
    migrate_agents(engine)
    fill(engine, args.conversations, args.handoffs)
    metrics = Metrics(Settings(metrics_token="benchmark"))
    metrics.handoffs.engine = engine
    print(f"{engine.dialect.name}: {args.conversations} conversations, "
          f"{args.conversations * 5} events, {args.handoffs} claimed handoffs")
    print("scrape ms:", timed(metrics.render, args.repeat))
    r = parse_range(None, None)
    print("dashboard (30 days) ms:",
          timed(lambda: dashboard(engine, r, str), args.repeat))
    engine.dispose()


if __name__ == "__main__":
    main()
