"""Retention: ``daoban purge --older-than DAYS`` and ``daoban forget WHO``.

A citizen's data is every row that names the conversation: the conversation, its
transcript (events), processed-message replies, handoffs, ratings, unanswered questions and
the WeChat openid link. The tables are found by reflection (every table with a
``conversation_id`` column, and ``conversations`` itself), so a table added later is not
forgotten. Door-sign statistics keep no conversation id and hold masked text only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta

import anyio
from fastapi import APIRouter, FastAPI
from sqlalchemy import Engine, MetaData, Table, delete, select
from sqlalchemy.exc import SQLAlchemyError

from channels.settings import Settings

log = logging.getLogger(__name__)
CONVERSATIONS = "conversations"
BATCH = 500


def _tables(engine: Engine) -> tuple[Table | None, list[Table]]:
    meta = MetaData()
    meta.reflect(engine)
    linked = [t for t in meta.sorted_tables if "conversation_id" in t.c]
    # Children before parents: a foreign key to conversations must not be left dangling.
    linked.reverse()
    return meta.tables.get(CONVERSATIONS), linked


def candidates(who: str) -> list[str]:
    """The conversation ids ``who`` may stand for: the id itself, a WeChat openid, a Rasa
    sender id."""
    from channels.rest import rasa_conversation_id
    from channels.wechat_store import conversation_id as wechat_conversation_id

    out = [who, wechat_conversation_id(who), rasa_conversation_id(who)]
    return list(dict.fromkeys(out))


def forget(engine: Engine, ids: Iterable[str]) -> dict[str, int]:
    """Deletes every row of these conversations, in one transaction; rows per table."""
    ids = list(dict.fromkeys(ids))
    conversations, linked = _tables(engine)
    counts: dict[str, int] = {}
    with engine.begin() as c:
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            for t in linked:
                n = c.execute(delete(t).where(t.c.conversation_id.in_(chunk))).rowcount
                counts[t.name] = counts.get(t.name, 0) + max(n, 0)
            if conversations is not None:
                n = c.execute(delete(conversations).where(conversations.c.id.in_(chunk))).rowcount
                counts[CONVERSATIONS] = counts.get(CONVERSATIONS, 0) + max(n, 0)
    return {k: v for k, v in counts.items() if v}


def known(engine: Engine, ids: Sequence[str]) -> list[str]:
    """Those of ``ids`` that any table still names."""
    conversations, linked = _tables(engine)
    found: set[str] = set()
    with engine.connect() as c:
        if conversations is not None:
            found.update(c.scalars(select(conversations.c.id).where(conversations.c.id.in_(ids))))
        for t in linked:
            found.update(c.scalars(select(t.c.conversation_id)
                                   .where(t.c.conversation_id.in_(ids)).distinct()))
    return [i for i in ids if i in found]


def purge(engine: Engine, older_than: timedelta, now: datetime | None = None) -> dict[str, int]:
    """Forgets every conversation untouched for ``older_than``."""
    cutoff = (now or datetime.now(UTC)) - older_than
    conversations, _ = _tables(engine)
    if conversations is None:
        return {}
    total: dict[str, int] = {}
    while True:
        with engine.connect() as c:
            old = list(c.scalars(select(conversations.c.id)
                                 .where(conversations.c.updated_at < cutoff).limit(BATCH)))
        if not old:
            return total
        for table, n in forget(engine, old).items():
            total[table] = total.get(table, 0) + n


# --- the scheduled purge -------------------------------------------------------------------


async def purge_every(engine: Engine, days: int, every: float) -> None:
    """Purges conversations older than ``days`` now and then every ``every`` seconds.
    Every server process may run it: deleting what another already deleted is harmless."""
    while True:
        try:
            counts = await anyio.to_thread.run_sync(purge, engine, timedelta(days=days))
            if counts:
                log.info("retention: deleted conversations older than %d days: %s", days, counts)
        except SQLAlchemyError:
            log.exception("retention: the scheduled purge failed; trying again later")
        await asyncio.sleep(every)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = app.state.services
    days = services.settings.retention_days
    task = None
    if days > 0:
        engine = services.assistant.store.engine
        task = asyncio.create_task(purge_every(engine, days, services.settings.retention_every))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


router = APIRouter(lifespan=lifespan)


# --- the commands ---------------------------------------------------------------------------


def _engine(settings: Settings) -> Engine:
    from knowledge.db import make_engine

    return make_engine(settings.database_url)


def _report(counts: dict[str, int]) -> str:
    return "，".join(f"{t} {n} 行" for t, n in sorted(counts.items())) or "没有要删除的数据"


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    if args.older_than < 1:
        print("--older-than 至少 1 天", file=sys.stderr)
        return 2
    engine = _engine(settings)
    try:
        counts = purge(engine, timedelta(days=args.older_than))
    finally:
        engine.dispose()
    print(f"已删除 {args.older_than} 天未活动的会话：{_report(counts)}")
    return 0


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    who = args.who.strip()
    if not who or len(who) > 200:
        print("请给出会话编号或渠道用户标识（200 字以内）", file=sys.stderr)
        return 2
    engine = _engine(settings)
    try:
        ids = known(engine, candidates(who))
        if not ids:
            print("没有找到这个会话或用户的数据", file=sys.stderr)
            return 1
        counts = forget(engine, ids)
    finally:
        engine.dispose()
    print(f"已删除 {len(ids)} 个会话的全部数据：{_report(counts)}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("purge", help="删除超过保存期限的会话（对话记录、转人工、评价、未答问题）")
    p.add_argument("--older-than", type=int, required=True, metavar="DAYS",
                   help="删除这么多天没有活动的会话")
    p.set_defaults(func=cmd_purge)
    f = sub.add_parser("forget", help="删除一位市民的全部数据（会话编号、微信 openid 或 Rasa sender）")
    f.add_argument("who", metavar="CONVERSATION_OR_CHANNEL_USER")
    f.set_defaults(func=cmd_forget)
