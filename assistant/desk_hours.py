"""Office hours of the human 帮办 desk, and what a waiting citizen is told (pure).

``DAOBAN_OFFICE_HOURS`` says when the desk is staffed, e.g. ``"mon-fri 09:00-17:00"`` or
``"mon-fri 09:00-12:00,13:30-17:00; sat 09:00-12:00"``; ``DAOBAN_HOLIDAYS`` lists dates
it is closed (法定节假日), ``DAOBAN_WORKDAYS`` dates it is open on their weekday's hours
although the rule says closed (调休: the first weekday's hours are used). Times are local
to ``DAOBAN_TIMEZONE``. Every check takes the time as an argument: the desk passes its
clock, tests pass theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from assistant.closing import DESK_HOURS
from assistant.render import HOTLINE

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_RULE = re.compile(r"^\s*([a-z]{3})(?:\s*-\s*([a-z]{3}))?\s+(.+?)\s*$")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class BadHours(ValueError):
    """A DAOBAN_OFFICE_HOURS / DAOBAN_HOLIDAYS / DAOBAN_WORKDAYS value that cannot be read."""


Span = tuple[time, time]


@dataclass(frozen=True)
class OfficeHours:
    week: tuple[tuple[Span, ...], ...]  # per weekday (Monday first), its open spans
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))

    @classmethod
    def parse(cls, rules: str, holidays: str = "", workdays: str = "",
              zone: str = "Asia/Shanghai") -> OfficeHours:
        week: list[list[Span]] = [[] for _ in DAYS]
        for rule in filter(str.strip, rules.split(";")):
            m = _RULE.match(rule.lower())
            if m is None:
                raise BadHours(f"office hours: cannot read {rule.strip()!r} "
                               "(expected e.g. 'mon-fri 09:00-17:00')")
            first, last, spans = m.group(1), m.group(2) or m.group(1), m.group(3)
            if first not in DAYS or last not in DAYS:
                raise BadHours(f"office hours: unknown day in {rule.strip()!r} (mon … sun)")
            days = range(DAYS.index(first), DAYS.index(last) + 1)
            if not days:
                raise BadHours(f"office hours: {first}-{last} runs backwards")
            parsed = [_span(s, rule) for s in spans.split(",")]
            for d in days:
                week[d] += parsed
        try:
            zoneinfo = ZoneInfo(zone)
        except Exception as exc:
            raise BadHours(f"unknown time zone {zone!r}") from exc
        return cls(tuple(tuple(sorted(s)) for s in week), _dates(holidays, "holidays"),
                   _dates(workdays, "workdays"), zoneinfo)

    def spans(self, day: date) -> tuple[Span, ...]:
        """The open spans of ``day`` (a local date)."""
        if day in self.holidays:
            return ()
        own = self.week[day.weekday()]
        if day in self.workdays and not own:
            return next((s for s in self.week if s), ())  # 调休: a normal working day
        return own

    def open_at(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        t = local.time()
        return any(a <= t < b for a, b in self.spans(local.date()))

    def next_open(self, now: datetime) -> datetime | None:
        """When the desk opens next after ``now`` (local time), within 60 days; None if never."""
        local = now.astimezone(self.zone)
        for ahead in range(61):
            day = local.date() + timedelta(days=ahead)
            for a, _ in self.spans(day):
                start = datetime.combine(day, a, self.zone)
                if start > local:
                    return start
        return None

    def describe(self) -> str:
        """The weekly hours in words, e.g. ``周一至周五 9:00-17:00，法定节假日除外``."""
        parts: list[str] = []
        i = 0
        while i < len(DAYS):
            j = i
            while j + 1 < len(DAYS) and self.week[j + 1] == self.week[i]:
                j += 1
            if self.week[i]:
                days = DAY_NAMES[i] if i == j else f"{DAY_NAMES[i]}至{DAY_NAMES[j]}"
                parts.append(days + " " + "、".join(f"{_hm(a)}-{_hm(b)}" for a, b in self.week[i]))
            i = j + 1
        return ("；".join(parts) or "暂无") + "，法定节假日除外"


def _span(text: str, rule: str) -> Span:
    m = _SPAN.match(text)
    if m is None:
        raise BadHours(f"office hours: cannot read the times {text.strip()!r} in {rule.strip()!r}")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if not (h1 < 24 and m1 < 60 and h2 <= 24 and m2 < 60):
        raise BadHours(f"office hours: no such time in {text.strip()!r}")
    start = time(h1, m1)
    end = time.max if (h2, m2) == (24, 0) else time(h2 % 24, m2)
    if end <= start:
        raise BadHours(f"office hours: {text.strip()!r} ends before it starts")
    return start, end


def _dates(text: str, what: str) -> frozenset[date]:
    out = set()
    for part in filter(str.strip, re.split(r"[,\s]+", text)):
        try:
            out.add(date.fromisoformat(part.strip()))
        except ValueError as exc:
            raise BadHours(f"{what}: {part.strip()!r} is not a date (YYYY-MM-DD)") from exc
    return frozenset(out)


def _hm(t: time) -> str:
    return "24:00" if t == time.max else f"{t.hour}:{t.minute:02d}"


def _when(start: datetime, now: datetime) -> str:
    """``今天 13:30``, ``明天 9:00``, ``周一 9:00`` (within a week), else ``10月8日 9:00``."""
    days = (start.date() - now.astimezone(start.tzinfo).date()).days
    clock = _hm(start.time())
    if days == 0:
        return f"今天 {clock}"
    if days == 1:
        return f"明天 {clock}"
    if days < 7:
        return f"{DAY_NAMES[start.weekday()]} {clock}"
    return f"{start.month}月{start.day}日 {clock}"


# --- what the citizen is told ---------------------------------------------------------------


def nobody_text(hours: OfficeHours | None, now: datetime) -> str:
    """Nobody who could take the conversation is on duty: outside office hours (when the
    desk opens again), or inside them with nobody online; the 留言 is kept either way."""
    if hours is not None and not hours.open_at(now):
        start = hours.next_open(now)
        back = f"人工帮办将于{_when(start, now)}上班后处理您的留言" if start else "工作人员上班后会处理您的留言"
        return (f"现在是非工作时间，{back}，您的留言会保留。\n人工服务时间：{hours.describe()}；"
                f"急事请拨打政务服务便民热线 {HOTLINE}。")
    said = hours.describe() if hours is not None else DESK_HOURS  # none configured
    return (f"目前没有帮办人员在线。您的留言会保留，工作人员上线后会处理。\n人工服务时间：{said}；"
            f"急事请拨打政务服务便民热线 {HOTLINE}。")


def busy_text(position: int, *, late: bool) -> str:
    """Someone who could take it is on duty but all are busy: the place in the queue."""
    lead = "抱歉让您久等了，" if late else ""
    return (f"{lead}帮办人员暂时都在忙，您现在排在第 {position} 位，请稍候。"
            f"您可以继续留言，留言已保存；急事请拨打 {HOTLINE}。")


def away_text(grace_seconds: float) -> str:
    minutes = max(1, round(grace_seconds / 60))
    wait = f"{round(grace_seconds)} 秒" if grace_seconds < 120 else f"{minutes} 分钟"
    return (f"帮办人员的网络连接中断了，正在等待重新接入；{wait}内没有恢复会为您重新排队。"
            f"您可以继续留言，不会丢失。")


BACK = "帮办人员已重新接入，请继续。"
