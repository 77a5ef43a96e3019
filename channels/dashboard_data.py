"""The operations dashboard's numbers, for a date range of Harbin days (UTC+8), read from the
conversation log, the handoff records, the ratings and the door-sign hits.

Synchronous (run it in a worker thread). The database counts (``GROUP BY`` the Harbin day):
SQLite stores UTC without a zone, so its day is ``date(t, '+8 hours')``; PostgreSQL's
timestamptz is read in Asia/Shanghai. Only those two databases are supported.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, inspect, select
from sqlalchemy.orm import Session

from assistant.agents import HandoffRow
from assistant.store import ConversationRow, EventRow, RatingRow, UnansweredRow
from doorplate.service import CHINA, Doorplates
from doorplate.store import HitRow

MAX_DAYS = 366
TOP = 10


class BadRange(ValueError):
    """The dates asked for cannot be read or make no range."""


@dataclass(frozen=True)
class Range:
    first: date
    last: date  # inclusive

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), CHINA).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), CHINA).astimezone(UTC)

    def days(self) -> list[str]:
        n = (self.last - self.first).days + 1
        return [(self.first + timedelta(days=i)).isoformat() for i in range(n)]


def today() -> date:
    return datetime.now(CHINA).date()


def parse_range(first: str | None, last: str | None, now: date | None = None) -> Range:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD``; missing: the 30 days up to today."""
    now = now or today()
    try:
        end = date.fromisoformat(last) if last else now
        begin = date.fromisoformat(first) if first else end - timedelta(days=29)
    except ValueError as exc:
        raise BadRange("日期格式应为 YYYY-MM-DD") from exc
    if begin > end:
        raise BadRange("开始日期晚于结束日期")
    if (end - begin).days + 1 > MAX_DAYS:
        raise BadRange(f"一次最多查询 {MAX_DAYS} 天")
    return Range(begin, end)


def harbin_day(engine: Engine, column: Any) -> ColumnElement[Any]:
    """The Harbin (UTC+8, no daylight saving) calendar day of a UTC timestamp column."""
    if engine.dialect.name == "sqlite":
        return func.date(column, "+8 hours")
    if engine.dialect.name == "postgresql":
        return func.date(func.timezone("Asia/Shanghai", column))
    raise NotImplementedError(f"the dashboard reads SQLite or PostgreSQL, not {engine.dialect.name}")


def _has(engine: Engine, table: str) -> bool:
    return inspect(engine).has_table(table)


def _per_day_channel(rows: Iterable[Any], days: list[str]) -> dict[str, list[int]]:
    index = {d: i for i, d in enumerate(days)}
    out: dict[str, list[int]] = {}
    for day, channel, n in rows:
        i = index.get(str(day))
        if i is not None:
            out.setdefault(channel or "unknown", [0] * len(days))[i] += n
    return dict(sorted(out.items()))


def _per_day(rows: Iterable[Any], days: list[str]) -> list[int]:
    index = {d: i for i, d in enumerate(days)}
    out = [0] * len(days)
    for day, n in rows:
        i = index.get(str(day))
        if i is not None:
            out[i] += n
    return out


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def dashboard(engine: Engine, r: Range, name: Callable[[str], str],
              doorplates: Doorplates | None = None) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values."""
    days = r.days()
    lo, hi = r.start, r.end
    n = func.count()
    with Session(engine) as s:
        day = harbin_day(engine, EventRow.created_at)
        messages = _per_day_channel(s.execute(
            select(day, ConversationRow.channel, n)
            .join(ConversationRow, ConversationRow.id == EventRow.conversation_id)
            .where(EventRow.type == "user", EventRow.created_at >= lo, EventRow.created_at < hi)
            .group_by(day, ConversationRow.channel)), days)
        day = harbin_day(engine, ConversationRow.created_at)
        conversations = _per_day_channel(s.execute(
            select(day, ConversationRow.channel, n)
            .where(ConversationRow.created_at >= lo, ConversationRow.created_at < hi)
            .group_by(day, ConversationRow.channel)), days)
        day = harbin_day(engine, UnansweredRow.created_at)
        unanswered = _per_day(s.execute(select(day, n).where(
            UnansweredRow.created_at >= lo, UnansweredRow.created_at < hi).group_by(day)), days)
        questions = s.execute(
            select(UnansweredRow.text, n).where(
                UnansweredRow.created_at >= lo, UnansweredRow.created_at < hi)
            .group_by(UnansweredRow.text).order_by(n.desc(), UnansweredRow.text)
            .limit(TOP)).all()
        entry = EventRow.payload["entry"].as_string()
        topics = s.execute(select(entry, n).where(
            EventRow.type == "topic", EventRow.created_at >= lo, EventRow.created_at < hi,
            entry.is_not(None)).group_by(entry).order_by(n.desc(), entry).limit(TOP)).all()
        ratings: dict[str, list[int]] = defaultdict(lambda: [0] * 5)
        for entry_id, score, count in s.execute(
                select(RatingRow.entry_id, RatingRow.score, n).where(
                    RatingRow.created_at >= lo, RatingRow.created_at < hi)
                .group_by(RatingRow.entry_id, RatingRow.score)):
            if 1 <= score <= 5:
                ratings[entry_id or ""][score - 1] += count
        day = harbin_day(engine, HandoffRow.requested_at)
        handoffs = (_per_day(s.execute(select(day, n).where(
            HandoffRow.requested_at >= lo, HandoffRow.requested_at < hi).group_by(day)), days)
            if _has(engine, HandoffRow.__tablename__) else [0] * len(days))
    total_messages = sum(sum(v) for v in messages.values())
    total_conversations = sum(sum(v) for v in conversations.values())
    per_day_messages = [sum(v[i] for v in messages.values()) for i in range(len(days))]
    per_day_conversations = [sum(v[i] for v in conversations.values()) for i in range(len(days))]
    return {
        "from": r.first.isoformat(), "to": r.last.isoformat(), "days": days,
        "messages": messages, "conversations": conversations,
        "unanswered": unanswered, "handoffs": handoffs,
        "no_match_rate": [_rate(u, m) for u, m in zip(unanswered, per_day_messages,
                                                       strict=True)],
        "handoff_rate": [_rate(h, c) for h, c in zip(handoffs, per_day_conversations,
                                                      strict=True)],
        "totals": {
            "messages": total_messages, "conversations": total_conversations,
            "unanswered": sum(unanswered), "handoffs": sum(handoffs),
            "no_match_rate": _rate(sum(unanswered), total_messages),
            "handoff_rate": _rate(sum(handoffs), total_conversations),
            "ratings": sum(sum(v) for v in ratings.values()),
        },
        "top_items": [{"id": e, "name": name(e), "count": c} for e, c in topics],
        "unanswered_questions": [{"text": t, "count": c} for t, c in questions],
        "ratings": _ratings(ratings, name),
        "doorplate": _doorplate(engine, r, doorplates),
    }


def _ratings(ratings: dict[str, list[int]], name: Callable[[str], str]) -> list[dict[str, Any]]:
    out = []
    for entry, counts in ratings.items():
        n = sum(counts)
        average = sum((i + 1) * c for i, c in enumerate(counts)) / n
        out.append({"id": entry, "name": name(entry) if entry else "（未关联事项）",
                    "count": n, "average": round(average, 2), "scores": counts,
                    # 好评: 4–5 (满意, 非常满意); 差评: 1–2 (the national 好差评 scale)
                    "good": counts[3] + counts[4], "bad": counts[0] + counts[1]})
    return sorted(out, key=lambda x: (-x["count"], x["id"]))


def _doorplate(engine: Engine, r: Range, dp: Doorplates | None) -> dict[str, Any]:
    empty: dict[str, Any] = {"enabled": dp is not None, "plates": [], "communities": [],
                             "streets": []}
    if dp is None or not _has(engine, HitRow.__tablename__):
        return empty
    with Session(engine) as s:
        rows = s.execute(select(HitRow.place_id, func.count()).where(
            HitRow.kind == "scan", HitRow.day >= r.first.isoformat(),
            HitRow.day <= r.last.isoformat()).group_by(HitRow.place_id)).all()
    places = dp.places
    community: Counter[str] = Counter()
    street: Counter[str] = Counter()
    plates = []
    for pid, n in rows:
        p = places.places.get(pid)
        plates.append({"id": pid, "name": places.label(p) if p else pid, "count": n})
        if p is not None:
            community[places.communities[p.community].name] += n
            street[places.streets[p.street].name] += n
    return {
        "enabled": True,
        "plates": sorted(plates, key=lambda x: (-x["count"], x["id"])),
        "communities": [{"name": k, "count": n} for k, n in community.most_common()],
        "streets": [{"name": k, "count": n} for k, n in street.most_common()],
    }


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """A spreadsheet runs a cell starting with = + - @ (or a tab or CR before one) as a
    formula; citizens' words are in this file, so such a cell gets a leading apostrophe
    (OWASP's CSV-injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(d: dict[str, Any]) -> str:
    """One long table: 类别, 日期或编号, 名称, 渠道, 数值."""
    rows: list[list[object]] = [["类别", "日期或编号", "名称", "渠道", "数值"]]
    for kind, label in (("messages", "消息数"), ("conversations", "会话数")):
        for channel, counts in d[kind].items():
            rows += [[label, day, "", channel, n] for day, n in zip(d["days"], counts,
                                                                   strict=True)]
    for day, u, h, nm, hr in zip(d["days"], d["unanswered"], d["handoffs"], d["no_match_rate"],
                                 d["handoff_rate"], strict=True):
        rows += [["未匹配数", day, "", "", u], ["转人工数", day, "", "", h],
                 ["未匹配率", day, "", "", "" if nm is None else nm],
                 ["转人工率", day, "", "", "" if hr is None else hr]]
    rows += [["热门事项", i["id"], i["name"], "", i["count"]] for i in d["top_items"]]
    rows += [["未答问题", "", q["text"], "", q["count"]] for q in d["unanswered_questions"]]
    for rt in d["ratings"]:
        rows += [["好差评次数", rt["id"], rt["name"], "", rt["count"]],
                 ["好差评平均分", rt["id"], rt["name"], "", rt["average"]],
                 ["好评数", rt["id"], rt["name"], "", rt["good"]],
                 ["差评数", rt["id"], rt["name"], "", rt["bad"]]]
    dp = d["doorplate"]
    rows += [["门牌扫码", p["id"], p["name"], "", p["count"]] for p in dp["plates"]]
    rows += [["社区扫码", "", c["name"], "", c["count"]] for c in dp["communities"]]
    rows += [["街道扫码", "", s["name"], "", s["count"]] for s in dp["streets"]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()
