"""The checklist a citizen takes along: item, materials (grouped by member item for a
一件事) with how many of what and their state, where and how long.

One plain-data snapshot serves every way out: the web card, the printed page, the shared
read-only copy and the one WeChat message. It holds nothing about the citizen beyond the
checklist itself (no conversation id, no name, no place they came from)."""

from __future__ import annotations

from typing import Any

from assistant.context import Ctx
from assistant.model import Conversation
from assistant.render import HOTLINE, amount, applicable, members, skip_reason
from knowledge.bundles import MergedMaterial
from knowledge.schema import Bundle

# Walk answers (see assistant.walk) and "listed" (the 查看材料 list, not walked through).
STATES: dict[str, tuple[str, str]] = {  # state -> (mark, label)
    "ready": ("✔", "已备好"),
    "missing": ("✘", "还要准备"),
    "deferrable": ("✘", "还要准备，可容缺后补"),
    "commitment": ("✘", "可签告知承诺书代替"),
    "unsure": ("？", "待确认"),
    "skipped": ("○", "可不带纸质件"),
    "pending": ("☐", "还没核对"),
    "listed": ("☐", "要带"),
}


def snapshot(conv: Conversation, ctx: Ctx, entry_id: str | None = None) -> dict[str, Any] | None:
    """The checklist of ``entry_id`` or the entry in hand (after the walk: with its
    answers; before it: the whole 查看材料 list), or None when no entry is in hand."""
    eid = entry_id or conv.current or (conv.walk.entry_id if conv.walk else None)
    e = ctx.guide.entry(eid) if eid else None
    if e is None:
        return None
    walk = conv.walk if conv.walk is not None and conv.walk.entry_id == e.id else None
    mats = applicable(ctx.guide, e, conv.situations)
    by_name: dict[str, str] = {}
    if walk is not None:
        for m in mats:
            if m.ref in walk.answers:
                by_name.setdefault(m.name, walk.answers[m.ref])
            elif m.ref in walk.queue:
                by_name.setdefault(m.name, "pending")

    def row(m: MergedMaterial) -> dict[str, Any]:
        if walk is not None:
            state = by_name.get(m.name, "pending")
        else:  # not walked through: what need not be brought on paper is still known
            state = "skipped" if skip_reason(m.use) else "listed"
        return {"name": m.name, "amount": amount(m.use), "state": state,
                "label": STATES[state][1]}

    groups: list[dict[str, Any]] = []
    if isinstance(e, Bundle):  # under each member's name; a shared material under its first
        for item in members(ctx.guide, e):
            own = [row(m) for m in mats if m.used_by and m.used_by[0] == item.id]
            if own:
                groups.append({"title": item.name, "materials": own})
    else:
        groups.append({"title": "", "materials": [row(m) for m in mats]})
    return {
        "entry": e.id,
        "name": e.name,
        "kind": e.kind,
        "walked": walk is not None,
        "groups": groups,
        "where": e.where.text,
        "time_limit": e.time_limit.text,
        "phone": e.phone or HOTLINE,
    }


def text(snap: dict[str, Any]) -> str:
    """The whole checklist as plain text (a WeChat message, a terminal): one line per
    material with its amount and state, grouped under member items."""
    lines = [f"“{snap['name']}”材料清单"]
    n = 0
    for g in snap["groups"]:
        if g["title"]:
            lines.append(f"【{g['title']}】")
        for m in g["materials"]:
            n += 1
            mark, label = STATES.get(m["state"], ("☐", m.get("label", "")))
            lines.append(f"{mark} {n}. {m['name']}：{m['amount']}（{label}）")
    lines.append(f"在哪办：{snap['where']}")
    lines.append(f"多久办好：{snap['time_limit']}")
    lines.append(f"咨询电话：{snap['phone']}")
    return "\n".join(lines)


def card(conv: Conversation, ctx: Ctx, entry_id: str | None = None) -> dict[str, Any] | None:
    """A checklist card for a reply (the 查看材料 list, say): the web page shows it with
    打印清单 and 发到手机."""
    snap = snapshot(conv, ctx, entry_id)
    return None if snap is None else {"type": "checklist", **snap}
