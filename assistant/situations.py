"""办事情形: the questions whose answers change the material list ("婚生还是非婚生"), asked
once each, answered from what the citizen already said where possible."""

from __future__ import annotations

from assistant.context import Ctx, Outcome
from assistant.model import Button, Conversation, Stage
from assistant.options import Option, match
from assistant.render import Entry, book, situations_needed
from knowledge.schema import ServiceItem


def next_situation(conv: Conversation, e: Entry, ctx: Ctx) -> tuple[ServiceItem, str] | None:
    for item_id, sid in situations_needed(ctx.guide, e):
        if sid not in conv.situations.get(item_id, {}):
            return ctx.guide.items[item_id], sid
    return None


def options_of(item: ServiceItem, sid: str) -> list[Option]:
    sit = next(s for s in item.situations if s.id == sid)
    return [Option(o.id, o.label, tuple(o.synonyms)) for o in sit.options]


def answer_from_slots(conv: Conversation, item: ServiceItem, sid: str, ctx: Ctx,
                       out: Outcome) -> bool:
    """Answer a 办事情形 question from what the citizen already said; never ask again."""
    if not conv.slots:
        return False
    known = set(conv.slots.items())
    hit = []
    for o in options_of(item, sid):
        words = " ".join((o.label, *o.synonyms)).lower()
        own = {(s.slot, s.value) for s in ctx.cues.slots(words, answer_only=True)}
        if own & known:
            hit.append(o)
    if len(hit) != 1:
        return False
    conv.situations.setdefault(item.id, {})[sid] = hit[0].id
    out.say(f"按您说的，按“{hit[0].label}”准备材料。")
    return True


def ask(conv: Conversation, item: ServiceItem, sid: str, out: Outcome,
                  *, again: bool = False) -> None:
    sit = next(s for s in item.situations if s.id == sid)
    conv.stage = Stage.SITUATION
    conv.pending_situation = [item.id, sid]
    conv.reasks = 0
    conv.confirm = ""
    lines = [("再确认一下：" if again else "") + sit.question]
    lines += [f"{i}. {o.label}" for i, o in enumerate(sit.options, 1)]
    lines.append("也可以直接用自己的话说。")
    out.say("\n".join(lines), tuple(Button(o.label, f"/sit:{o.id}") for o in sit.options))


def from_text(conv: Conversation, e: Entry, text: str, ctx: Ctx) -> list[str]:
    """"社保卡丢了咋整" already answers 丢了还是坏了: never ask what was just said. Returns
    what the text settled, as confirmation lines ("好的：商业银行贷款。")."""
    said = []
    for item_id, sid in situations_needed(ctx.guide, e):
        if sid in conv.situations.get(item_id, {}) or (
                conv.stage is Stage.SITUATION and conv.pending_situation == [item_id, sid]):
            continue  # the question being asked is answered by the caller
        item = ctx.guide.items[item_id]
        m = match(text, options_of(item, sid), ctx.cues)
        if m is not None and m.sure and m.why != "number":
            conv.situations.setdefault(item_id, {})[sid] = m.option
            said.append(noted(item, sid, m.option, ctx))
    return said


def noted(item: ServiceItem, sid: str, oid: str, ctx: Ctx) -> str:
    """"好的：办过，换新证。这种情况还要带：《原港澳通行证》。" — what the answer brings."""
    sit = next(s for s in item.situations if s.id == sid)
    label = next((o.label for o in sit.options if o.id == oid), oid)
    brings = [ctx.guide.materials[m.ref].name for m in item.materials
              if oid in m.when.get(sid, ()) and m.ref in ctx.guide.materials]
    more = f"这种情况还要带：{'、'.join(book(n) for n in brings)}。" if brings else ""
    return f"好的：{label}。{more}"


def settle(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome, text: str = "") -> None:
    """Every 办事情形 question that what the citizen said settles — in this message
    ("俺俩都是汉族 要带啥") or before (remembered facts) — answered, not only the first:
    the list then drops the materials of the cases that do not apply."""
    if text:
        from_text(conv, e, text, ctx)
    for item_id, sid in situations_needed(ctx.guide, e):
        if sid not in conv.situations.get(item_id, {}):
            answer_from_slots(conv, ctx.guide.items[item_id], sid, ctx, out)
