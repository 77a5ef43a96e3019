"""The materials walkthrough: one material at a time, answers remembered, and the
checklist that results. Card, list and checklist all come from ``applicable`` (one model of
the citizen's materials), so they cannot disagree."""

from __future__ import annotations

from assistant.checklist import snapshot
from assistant.closing import ask_rating
from assistant.context import Ctx, Outcome
from assistant.model import Button, Conversation, Stage, Walk
from assistant.render import Entry, amount, applicable, book, skip_reason
from assistant.store import Event
from knowledge.bundles import MergedMaterial
from knowledge.schema import Necessity

WALK_BUTTONS = (Button("有", "/have"), Button("没有", "/missing"), Button("不清楚", "/unsure"))


def merged(conv: Conversation, ctx: Ctx) -> dict[str, MergedMaterial]:
    assert conv.walk is not None
    e = ctx.guide.entry(conv.walk.entry_id)
    return {m.ref: m for m in applicable(ctx.guide, e, conv.situations)} if e else {}


def start(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome) -> None:
    """Begin (or resume) the walkthrough; the caller has asked the 办事情形 first."""
    if conv.walk is not None and conv.walk.entry_id == e.id and not conv.walk.done:
        conv.stage = Stage.WALK
        out.say("接着上次的进度核对。")
        ask_next(conv, ctx, out)
        return
    mats = applicable(ctx.guide, e, conv.situations)
    queue: list[str] = []
    seen_names: set[str] = set()
    for m in mats:  # one question per material, even if two members name it differently
        if m.ref in queue or m.name in seen_names:
            continue
        queue.append(m.ref)
        seen_names.add(m.name)
    conv.walk = Walk(e.id, queue)
    conv.stage = Stage.WALK
    out.say(f"好的，我们一项一项核对“{e.name}”的{len(queue)}项材料。随时说“先不核对了”可以退出。")
    out.events.append(Event("walk", {"entry": e.id, "materials": len(queue)}))
    ask_next(conv, ctx, out)


def question(m: MergedMaterial) -> str:
    return f"您是否已准备好{book(m.name)}（{amount(m.use)}）？"


def ask_next(conv: Conversation, ctx: Ctx, out: Outcome) -> None:
    walk = conv.walk
    assert walk is not None
    by_ref = merged(conv, ctx)
    skipped = []
    while walk.queue:
        ref = walk.queue[0]
        m = by_ref.get(ref)
        if m is None:
            walk.queue.pop(0)
            continue
        reason = skip_reason(m.use)
        if reason is not None:
            walk.answers[ref] = "skipped"
            walk.queue.pop(0)
            skipped.append(f"{book(m.name)}：{reason}。")
            continue
        if skipped:
            out.say("这些可以不带纸质件：\n" + "\n".join(skipped))
        total = len(walk.answers) + len(walk.queue)
        n = len(walk.answers) + 1
        out.say(f"（{n}/{total}）{question(m)}", WALK_BUTTONS)
        return
    if skipped:
        out.say("这些可以不带纸质件：\n" + "\n".join(skipped))
    finish(conv, ctx, out)


def current_material(conv: Conversation, ctx: Ctx) -> MergedMaterial | None:
    if conv.walk is None or not conv.walk.queue:
        return None
    return merged(conv, ctx).get(conv.walk.queue[0])


def record(conv: Conversation, answer: str, ctx: Ctx, out: Outcome) -> None:
    """Record have / missing / unsure for the material asked, then ask the next."""
    walk = conv.walk
    assert walk is not None and walk.queue
    ref = walk.queue.pop(0)
    m = merged(conv, ctx).get(ref)
    mat = ctx.guide.materials.get(ref)
    name = book(m.name) if m else "这项材料"
    if answer == "have":
        walk.answers[ref] = "ready"
    elif answer == "missing":
        walk.answers[ref] = "missing"
        lines = [f"{name}的办法：{mat.how_to_get if mat else '请向窗口咨询。'}"]
        if m is not None and m.use.necessity is Necessity.DEFERRABLE:
            lines.append("这项可以容缺受理：可先办理，之后再补交。")
            walk.answers[ref] = "deferrable"
        elif m is not None and m.use.necessity is Necessity.COMMITMENT:
            lines.append("这项可以签一份告知承诺书代替，不用另外开证明。")
            walk.answers[ref] = "commitment"
        out.say("\n".join(lines))
    else:
        walk.answers[ref] = "unsure"
        desc = (mat.description or mat.how_to_get) if mat else "请向窗口咨询。"
        out.say(f"{name}是指：{desc}\n先记为“待确认”，办理前再核实一下。")
    ask_next(conv, ctx, out)


def checklist(conv: Conversation, ctx: Ctx) -> dict[str, list[str]] | None:
    """The citizen's personal checklist: ready / to get / need not bring on paper."""
    if conv.walk is None:
        return None
    names = {ref: (ctx.guide.materials[ref].name if ref in ctx.guide.materials else ref)
             for ref in [*conv.walk.answers, *conv.walk.queue]}
    out: dict[str, list[str]] = {"ready": [], "to_get": [], "not_needed": [], "pending": []}
    for ref, a in conv.walk.answers.items():
        n = names[ref]
        if a == "ready":
            out["ready"].append(n)
        elif a == "skipped":
            out["not_needed"].append(n)
        elif a == "deferrable":
            out["to_get"].append(f"{n}（可容缺后补）")
        elif a == "commitment":
            out["to_get"].append(f"{n}（可签告知承诺书代替）")
        elif a == "unsure":
            out["to_get"].append(f"{n}（待确认）")
        else:
            out["to_get"].append(n)
    out["pending"] = [names[r] for r in conv.walk.queue]
    return out


def finish(conv: Conversation, ctx: Ctx, out: Outcome) -> None:
    walk = conv.walk
    assert walk is not None
    walk.done = True
    conv.stage = Stage.IDLE
    cl = checklist(conv, ctx) or {}
    e = ctx.guide.entry(walk.entry_id)
    lines = [f"“{e.name if e else ''}”材料清单："]
    for title, key in (("✔ 已备好", "ready"), ("✘ 还要准备", "to_get"),
                       ("○ 可不带纸质件（部门共享或电子证照）", "not_needed")):
        if cl.get(key):
            lines.append(f"{title}：" + "、".join(cl[key]))
    lines.append(f"在哪办：{e.where.text}" if e else "")
    snap = snapshot(conv, ctx, walk.entry_id) or {}
    out.say("\n".join(x for x in lines if x), (), {
        "type": "checklist", "entry": walk.entry_id,
        **{k: v for k, v in cl.items() if k != "pending"},
        # the same materials with amounts and states, grouped by member item
        **{k: snap[k] for k in ("name", "groups", "where", "time_limit", "phone") if k in snap},
    })
    out.events.append(Event("checklist", {"entry": walk.entry_id, **cl}))
    ask_rating(conv, out, "核对完了。请为这次服务打个分：")
