"""What the citizen is told to bring and where to go: the whole material list (what
depends on the citizen's case marked, then the first open 办事情形 question), the service
points, and the facts the citizen stated, shown back. Split out of ``assistant/flows.py``."""

from __future__ import annotations

from assistant import checklist as checklists
from assistant import situations
from assistant.context import Ctx, Outcome
from assistant.model import Button, Conversation
from assistant.render import HOTLINE, Entry, applicable, material_line
from knowledge.schema import Bundle


def facts_line(conv: Conversation, ctx: Ctx) -> str | None:
    if not conv.slots:
        return None
    return "按您说的：" + "、".join(ctx.cues.label(k, v) for k, v in conv.slots.items())


def where(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome) -> None:
    if conv.place and ctx.places is not None:
        scoped = ctx.places.locate(e, conv.place)
        if scoped:
            out.say("\n".join([*scoped, f"咨询电话：{e.phone or HOTLINE}"]))
            return
    lines = [f"“{e.name}”在哪办：{e.where.text}"]
    points = [p for p in ctx.guide.service_points.values()
              if e.id in p.items or p.point_type == e.where.point_type][:2]
    for p in points:
        mark = "（示例地址，待核实）" if p.placeholder else ""
        lines.append(f"· {p.name}：{p.address}{mark}，{p.hours}")
    lines.append(f"咨询电话：{e.phone or HOTLINE}")
    out.say("\n".join(lines))


def materials_list(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome,
                    text: str = "") -> None:
    """The whole list at once (what depends on the citizen's situation is marked), then
    the first open 办事情形 question, whose answer narrows it."""
    situations.settle(conv, e, ctx, out, text)
    nxt = situations.next_situation(conv, e, ctx)
    mats = applicable(ctx.guide, e, conv.situations)
    lines = [f"“{e.name}”需要{len(mats)}项材料："]
    if isinstance(e, Bundle):  # grouped by member item; a shared material under its first
        n = 0
        for item in [ctx.guide.items[m] for m in e.members if m in ctx.guide.items]:
            own = [m for m in mats if m.used_by and m.used_by[0] == item.id]
            if own:
                lines.append(f"【{item.name}】")
                for m in own:
                    n += 1
                    lines.append(f"{n}. {material_line(ctx.guide, m)}")
    else:
        lines += [f"{i}. {material_line(ctx.guide, m)}" for i, m in enumerate(mats, 1)]
    facts = facts_line(conv, ctx)
    if facts:
        lines.append(facts)
    # On the web page the checklist card (print, share to a phone) stands for the text.
    out.say("\n".join(x for x in lines if x),
            (Button("逐项核对材料", "/walk"), Button("在哪办", "/where"), Button("转人工", "/human")),
            checklists.card(conv, ctx, e.id))
    if nxt is not None:
        out.say("标“特定情形需要”的，要看您的具体情况：")
        conv.after_situation = "list"
        situations.ask(conv, nxt[0], nxt[1], out)
