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
    queue = _queue(conv, e, ctx)
    conv.walk = Walk(e.id, queue)
    conv.stage = Stage.WALK
    out.say(f"好的，我们一项一项核对“{e.name}”的{len(queue)}项材料。随时说“先不核对了”可以退出。")
    out.events.append(Event("walk", {"entry": e.id, "materials": len(queue)}))
    ask_next(conv, ctx, out)


def _queue(conv: Conversation, e: Entry, ctx: Ctx) -> list[str]:
    queue: list[str] = []
    seen_names: set[str] = set()
    for m in applicable(ctx.guide, e, conv.situations):
        # one question per material, even if two members name it differently
        if m.ref in queue or m.name in seen_names:
            continue
        queue.append(m.ref)
        seen_names.add(m.name)
    return queue


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
    _note(conv, walk.queue[0], answer, ctx, out)
    ask_next(conv, ctx, out)


def _note(conv: Conversation, ref: str, answer: str, ctx: Ctx, out: Outcome) -> None:
    walk = conv.walk
    assert walk is not None
    if ref in walk.queue:
        walk.queue.remove(ref)
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
    lines.append(f"还缺{len(cl['to_get'])}项，备齐再去办。" if cl.get("to_get")
                 else "材料都准备齐了，可以去办了。")
    for ref, state in walk.answers.items():  # where to get what is still missing
        mat = ctx.guide.materials.get(ref)
        if state == "missing" and mat is not None:
            lines.append(f"· {book(mat.name)}：{mat.how_to_get}")
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


# --- materials the citizen mentions in passing ------------------------------------------


def said(text: str, ctx: Ctx) -> str | None:
    """have / missing / unsure stated about a material ("户口本有", "没有照片"), or None."""
    answer = ctx.cues.answer(text)
    if answer is None and ctx.cues.act("deny_start", text):
        answer = "no"
    return {"yes": "have", "no": "missing", "unsure": "unsure"}.get(answer or "")


_MINE = ("我的", "我身份证", "俺的", "俺身份证", "我自己的")


def _refs_named(conv: Conversation, e: Entry, named: list[tuple[str, str]], text: str,
                ctx: Ctx) -> list[str]:
    """The materials of ``e`` that the words name; "身份证" with 代办人居民身份证 also on the
    list means the applicant's own, unless the speaker says it is theirs ("我身份证有")."""
    mats = applicable(ctx.guide, e, conv.situations)
    answered = conv.walk.answers if conv.walk is not None and conv.walk.entry_id == e.id else {}
    refs: list[str] = []
    for _, word in named:
        found = [m for m in mats if word in m.name]
        if not found:
            continue
        if len(found) > 1:
            agent = [m for m in found if "代办人" in m.name or "监护人" in m.name]
            own = [m for m in found if m not in agent]
            mine = any(w in text for w in _MINE)
            pool = (agent if mine and agent else own) or found
            fresh = [m for m in pool if m.ref not in answered]
            found = fresh or pool
        if found[0].ref not in refs:
            refs.append(found[0].ref)
    return refs


def mentioned(conv: Conversation, e: Entry, named: list[tuple[str, str]], text: str,
              ctx: Ctx, out: Outcome) -> bool:
    """A material named with its state ("户口本有", "身份证找不着了") outside the question
    asked: recorded on the checklist, then what is still open. False when the text states
    nothing about a material of ``e``."""
    state = said(text, ctx)
    if state is None:
        return False
    if state != "have" and (conv.walk is None or conv.walk.entry_id != e.id):
        return False  # "身份证丢了" before any check of the materials: a question
    refs = _refs_named(conv, e, named, text, ctx)
    if not refs:
        return False
    walking = conv.stage is Stage.WALK and conv.walk is not None \
        and conv.walk.entry_id == e.id and not conv.walk.done
    if conv.walk is None or conv.walk.entry_id != e.id:
        conv.walk = Walk(e.id, _queue(conv, e, ctx))
    walk = conv.walk
    for ref in refs:
        _note(conv, ref, state, ctx, out)
        if state == "have":
            m = merged(conv, ctx).get(ref)
            out.say(f"好的，记下了：{book(m.name) if m else '这项材料'}已备好。")
    if walking:
        ask_next(conv, ctx, out)
        return True
    _skip_paperless(conv, ctx)
    if not walk.queue:
        finish(conv, ctx, out)
        return True
    walk.done = False
    cl = checklist(conv, ctx) or {}
    lines = []
    if cl.get("ready"):
        lines.append("✔ 已备好：" + "、".join(cl["ready"]))
    if cl.get("to_get"):
        lines.append("✘ 还要准备：" + "、".join(cl["to_get"]))
    lines.append("☐ 还没核对：" + "、".join(cl.get("pending", [])))
    out.say("\n".join(lines), (Button("继续核对", "/walk"), Button("在哪办", "/where")))
    return True


def _skip_paperless(conv: Conversation, ctx: Ctx) -> None:
    """What need not be brought on paper leaves the open list without a question."""
    walk = conv.walk
    assert walk is not None
    by_ref = merged(conv, ctx)
    for ref in list(walk.queue):
        m = by_ref.get(ref)
        if m is None:
            walk.queue.remove(ref)
        elif skip_reason(m.use) is not None:
            walk.answers[ref] = "skipped"
            walk.queue.remove(ref)
