"""The dialogue: one pure step per citizen message.

``step(conversation, text, understood, ctx)`` returns the replies and what to record; it
mutates only the conversation it is given (the caller saves it). Understanding (NLU +
retrieval) happens before the step, so every branch here is plain, testable logic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from assistant.model import Button, Conversation, ConversationMode, Reply, Stage, Walk
from assistant.render import (
    CARD_BUTTONS,
    HOTLINE,
    Entry,
    applicable,
    book,
    card,
    card_text,
    caveat,
    material_line,
    members,
    online_channels,
    situations_needed,
    skip_reason,
)
from assistant.store import Event
from knowledge.bundles import MergedMaterial
from knowledge.index import Hit
from knowledge.schema import Necessity, ServiceItem
from knowledge.validate import GuideBase
from nlu.understand import Understood

MAX_BUTTONS = 5
CLARIFY_MARGIN = 0.06  # candidates this close to the best one are offered as a choice
SWITCH_SCORE = 0.6  # a new item this strong changes the topic, even mid-walkthrough
DESK_HOURS = "工作日 9:00-17:00（示例时间，以实际公布为准）"

RATINGS = {5: "非常满意", 4: "满意", 3: "一般", 2: "不满意", 1: "非常不满意"}
RATING_BUTTONS = tuple(Button(t, f"/rate:{s}") for s, t in RATINGS.items())
_RATING_WORDS = sorted(((t, s) for s, t in RATINGS.items()), key=lambda ts: -len(ts[0]))

_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5}
_CHOICE_NUM = re.compile(r"^(?:第|选|选择|要)?\s*([一二两三四五1-5])\s*(?:个|项|号|条|种)?(?:吧|的)?$")
_YES = re.compile(r"^(有|有的|有了|带了|准备好了|准备了|备好了|都有|是|是的|对|嗯|好了|齐了)[啊呀吧的了!！。]*$")
_NO = re.compile(r"^(没有|没|没呢|还没|还没有|没带|没准备|丢了|找不到|不在手上|无)[啊呀吧的了!！。]*$")
_UNSURE = re.compile(r"^(不清楚|不知道|不确定|不太清楚|说不好|不晓得|啥是这个|这是啥)[啊呀吧的了!！。]*$")
_LEAVE_WALK = re.compile(r"先不|不核对|不弄了|退出|停止核对|算了|以后再|回头再")
_RESUME_WALK = re.compile(r"继续核对|接着核对|继续|接着来")
_PERSONAL = re.compile(r"本人|亲自|代办|代领|别人去|家属去|替我|帮我去")
_BACK_TO_BOT = re.compile(r"不用人工|不要人工|返回机器人|算了不用了|取消转人工")

FOLLOW_UPS = {"ask_time", "ask_fee", "ask_location", "ask_online", "ask_conditions",
              "ask_materials"}


class PlaceAware(Protocol):
    """Knows the door-sign places (the doorplate package, injected by the composition root:
    the assistant does not import it)."""

    def place_name(self, place_id: str) -> str | None: ...

    def locate(self, entry: Entry, place_id: str) -> list[str]:
        """The “在哪办” reply lines for ``entry`` seen from the place; [] if unknown."""
        ...


@dataclass
class Ctx:
    guide: GuideBase
    suggestions: list[str] = field(default_factory=list)  # entry ids of popular items
    places: PlaceAware | None = None


@dataclass
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    unanswered: list[tuple[str, str, str]] = field(default_factory=list)
    ratings: list[tuple[str | None, int, str | None]] = field(default_factory=list)
    comment: str | None = None  # attached to this conversation's latest rating

    def say(self, text: str, buttons: tuple[Button, ...] = (), card_: dict | None = None) -> None:  # type: ignore[type-arg]
        self.replies.append(Reply(text, tuple(buttons[:MAX_BUTTONS]), card_))


def _command(text: str) -> tuple[str, str] | None:
    """A button payload sent as text: "/pick:id" → ("pick", "id")."""
    if not text.startswith("/") or len(text) > 200:
        return None
    name, _, arg = text[1:].partition(":")
    return name, arg


def step(conv: Conversation, text: str, u: Understood, ctx: Ctx) -> Outcome:
    out = Outcome()
    text = text.strip()
    cmd = _command(text)
    intent = u.intent.intent

    if conv.mode is ConversationMode.WAITING_AGENT:
        return _waiting(conv, text, out)
    if conv.mode is ConversationMode.CLOSED:
        conv.transition(ConversationMode.BOT)
        out.events.append(Event("mode", {"mode": conv.mode.value, "reason": "reopened"}))

    asked_human = bool(cmd and cmd[0] == "human") or (
        not cmd and intent == "request_human" and u.intent.confidence >= 0.5 and not u.hits)
    # While rating or commenting, "很满意" / "办事太慢了" answer the question just asked:
    # a rating or a comment to record, not a complaint to hand off.
    if conv.stage is Stage.RATING and not asked_human and _rating(conv, text, cmd, out):
        return out
    if conv.stage is Stage.COMMENT and not asked_human:
        return _comment(conv, text, u, out)

    if asked_human or (not cmd and intent == "complain" and u.intent.confidence >= 0.5
                       and not u.hits):
        reason = "complaint" if intent == "complain" and not cmd else "requested"
        return _handoff(conv, out, reason)

    # Stage-specific answers first: a "2" means something only while choosing.
    if conv.stage in (Stage.RATING, Stage.COMMENT):
        conv.stage = Stage.IDLE  # not a rating or comment (checked above): a new message
    elif conv.stage is Stage.CLARIFY:
        picked = _pick(conv, text, cmd, u, ctx)
        if picked is not None:
            conv.options = []
            conv.stage = Stage.IDLE
            return _present(conv, picked, u, ctx, out, asked=None)
    elif conv.stage is Stage.SITUATION:
        if _situation_answer(conv, text, cmd, u, ctx, out):
            return out
    elif (
        conv.stage is Stage.WALK
        and conv.walk is not None
        and _walk_answer(conv, text, cmd, u, ctx, out)
    ):
        return out

    if cmd:
        return _button(conv, cmd, ctx, out)

    if _RESUME_WALK.search(text) and not u.hits:
        if conv.walk is not None and not conv.walk.done:
            conv.current = conv.walk.entry_id  # back to the item being checked
            conv.stage = Stage.WALK
            _ask_next_material(conv, ctx, out)
            return out
        e = _entry(ctx, conv)
        if (e is not None and conv.after_situation == "walk"
                and tuple(conv.pending_situation) in situations_needed(ctx.guide, e)):
            # Left while answering 办事情形, before the first material: pick up there.
            _start_walk(conv, e, ctx, out)
            return out

    strong = bool(u.hits) and u.hits[0].score >= SWITCH_SCORE
    new_topic = strong and u.hits[0].id != conv.current
    if not new_topic and (intent in FOLLOW_UPS or _PERSONAL.search(text)):
        conv.misses = 0
        _follow_up(conv, intent, text, ctx, out)  # no current item: asks which one
        return out

    if intent == "thanks" and not u.hits:
        out.say("不客气！还有别的事可以继续问我。")
        return out
    if intent == "goodbye" and not u.hits:
        return _ask_rating(conv, out, "再见！走之前，请为这次服务打个分：")
    if intent == "greet" and not u.hits:
        out.say(_welcome(ctx), _suggestion_buttons(ctx))
        return out

    if u.hits:
        conv.misses = 0
        return _found(conv, u, ctx, out)
    return _fallback(conv, text, u, ctx, out)


def _welcome(ctx: Ctx) -> str:
    return ("您好，我是导办助手。请用一句话说说您要办的事，"
            "比如“孩子出生了要办啥”“社保卡丢了咋整”。")


def _suggestion_buttons(ctx: Ctx, n: int = 3) -> tuple[Button, ...]:
    out = []
    for eid in ctx.suggestions[:n]:
        e = ctx.guide.entry(eid)
        if e is not None:
            out.append(Button(e.name, f"/pick:{e.id}"))
    return tuple(out)


def _found(conv: Conversation, u: Understood, ctx: Ctx, out: Outcome) -> Outcome:
    top = u.hits[0]
    close = [h for h in u.hits[:MAX_BUTTONS] if h.score >= top.score - CLARIFY_MARGIN]
    if len(close) >= 2:
        return _clarify(conv, close, out)
    entry = ctx.guide.entry(top.id)
    assert entry is not None
    asked = u.intent.intent if u.intent.intent in FOLLOW_UPS else None
    return _present(conv, entry, u, ctx, out, asked=asked)


def _clarify(conv: Conversation, hits: list[Hit], out: Outcome) -> Outcome:
    conv.options = [h.id for h in hits]
    conv.stage = Stage.CLARIFY
    lines = ["您想办的是哪一项？点选或回复序号："]
    lines += [f"{i}. {h.name}" for i, h in enumerate(hits, 1)]
    out.say("\n".join(lines), tuple(Button(h.name, f"/pick:{h.id}") for h in hits))
    return out


def _present(
    conv: Conversation, entry: Entry, u: Understood | None, ctx: Ctx, out: Outcome,
    asked: str | None,
) -> Outcome:
    """The answer card for an entry; the topic switches cleanly to it."""
    if conv.walk is not None and conv.walk.entry_id != entry.id and not conv.walk.done:
        out.say(f"已暂停“{_name(ctx, conv.walk.entry_id)}”的材料核对，说“继续核对”可以回来。")
    conv.current = entry.id
    conv.stage = Stage.IDLE
    conv.options = []
    mats = applicable(ctx.guide, entry, conv.situations)
    out.say(card_text(ctx.guide, entry, len(mats)), CARD_BUTTONS,
            card(ctx.guide, entry, len(mats)))
    out.events.append(Event("topic", {"entry": entry.id}))
    if asked is not None:
        _follow_up(conv, asked, u.text if u else "", ctx, out)
    return out


def _name(ctx: Ctx, eid: str | None) -> str:
    e = ctx.guide.entry(eid) if eid else None
    return e.name if e else "该事项"


def _entry(ctx: Ctx, conv: Conversation) -> Entry | None:
    return ctx.guide.entry(conv.current) if conv.current else None


def _follow_up(conv: Conversation, intent: str, text: str, ctx: Ctx, out: Outcome) -> None:
    e = _entry(ctx, conv)
    if e is None:
        out.say("您想问哪个事项？说说您要办的事就行。")
        return
    name = f"“{e.name}”"
    note = caveat(e)
    if _PERSONAL.search(text):
        agent = any("代" in c or "委托" in c for c in [*e.conditions, e.summary])
        msg = f"{name}需要到现场{e.visits}次。" if e.visits else f"{name}不用到现场。"
        if agent:
            msg += "可以委托他人代办，代办人带上本人和代办人的身份证件及委托书。"
        else:
            msg += "能否由他人代办，请向窗口确认。"
        out.say(msg)
        return
    if intent == "ask_time":
        out.say(f"{name}多久办好：{e.time_limit.text}" + (f"\n{note}" if note else ""))
    elif intent == "ask_fee":
        out.say(f"{name}收费：{e.fee.text}" + (f"\n{note}" if note else ""))
    elif intent == "ask_location":
        _where(conv, e, ctx, out)
    elif intent == "ask_online":
        online = online_channels(e)
        if online:
            out.say(f"{name}可以这样办：\n" + "\n".join(online))
        else:
            out.say(f"{name}暂不支持网上办理，需要到{e.where.text}。")
    elif intent == "ask_conditions":
        conds = e.conditions or ["没有特别的条件限制。"]
        out.say(f"{name}谁能办：{'、'.join(a.value for a in e.audience)}\n" + "\n".join(
            f"· {c}" for c in conds[:4]))
    elif intent == "ask_materials":
        _materials_list(conv, e, ctx, out)


def _where(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome) -> None:
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
    phone = e.phone or HOTLINE
    lines.append(f"咨询电话：{phone}")
    out.say("\n".join(lines))


def _materials_list(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome) -> None:
    mats = applicable(ctx.guide, e, conv.situations)
    lines = [f"“{e.name}”需要{len(mats)}项材料："]
    lines += [f"{i}. {material_line(ctx.guide, m)}" for i, m in enumerate(mats, 1)]
    pending = [s for s in situations_needed(ctx.guide, e)
               if s[1] not in conv.situations.get(s[0], {})]
    if pending:
        lines.append("标“特定情形需要”的，要看您的具体情况。点“逐项核对材料”，我帮您一项项确认。")
    out.say("\n".join(lines), (Button("逐项核对材料", "/walk"), Button("在哪办", "/where"),
                               Button("转人工", "/human")))


def _button(conv: Conversation, cmd: tuple[str, str], ctx: Ctx, out: Outcome) -> Outcome:
    name, arg = cmd
    if name == "pick":
        e = ctx.guide.entry(arg)
        if e is None:
            out.say("这个选项已失效，请重新说说您要办的事。")
            return out
        return _present(conv, e, None, ctx, out, asked=None)
    if name == "rate":
        conv.stage = Stage.RATING
        if _rating(conv, arg, ("rate", arg), out):
            return out
    e = _entry(ctx, conv)
    if e is None:
        out.say("请先说说您要办什么事。", _suggestion_buttons(ctx))
        return out
    if name == "materials":
        _materials_list(conv, e, ctx, out)
    elif name == "walk":
        _start_walk(conv, e, ctx, out)
    elif name == "where":
        _where(conv, e, ctx, out)
    else:
        out.say("没看懂这个操作，请换个说法。")
    return out


# --- 办事情形 ----------------------------------------------------------------------------


def _next_situation(conv: Conversation, e: Entry, ctx: Ctx) -> tuple[ServiceItem, str] | None:
    for item_id, sid in situations_needed(ctx.guide, e):
        if sid not in conv.situations.get(item_id, {}):
            return ctx.guide.items[item_id], sid
    return None


def _ask_situation(conv: Conversation, item: ServiceItem, sid: str, out: Outcome) -> None:
    sit = next(s for s in item.situations if s.id == sid)
    conv.stage = Stage.SITUATION
    conv.pending_situation = [item.id, sid]
    lines = [sit.question] + [f"{i}. {o.label}" for i, o in enumerate(sit.options, 1)]
    out.say("\n".join(lines), tuple(Button(o.label, f"/sit:{o.id}") for o in sit.options))


def _situation_answer(
    conv: Conversation, text: str, cmd: tuple[str, str] | None, u: Understood, ctx: Ctx,
    out: Outcome,
) -> bool:
    item_id, sid = conv.pending_situation
    item = ctx.guide.items.get(item_id)
    sit = next((s for s in item.situations if s.id == sid), None) if item else None
    if item is None or sit is None:
        conv.stage = Stage.IDLE
        return False
    chosen = None
    if cmd and cmd[0] == "sit":
        chosen = next((o.id for o in sit.options if o.id == cmd[1]), None)
    elif u.hits and u.hits[0].score >= SWITCH_SCORE:
        conv.stage = Stage.IDLE
        return False
    else:
        idx = _number(text)
        if idx is not None and 1 <= idx <= len(sit.options):
            chosen = sit.options[idx - 1].id
        else:
            chosen = _best_label(text, [(o.id, [o.label]) for o in sit.options])
    if chosen is None:
        buttons = tuple(Button(o.label, f"/sit:{o.id}") for o in sit.options)
        if _LEAVE_WALK.search(text):
            conv.stage = Stage.IDLE
            out.say("好的，先不核对了。想继续时说“继续核对”。", (Button("继续核对", "/walk"),))
            return True
        if u.intent.intent == "dont_know":
            out.say("不确定的话，可以先问问家人或窗口；也可以转人工帮您判断。",
                    (*buttons, Button("转人工", "/human")))
            return True
        if cmd or u.intent.intent in ("choose", "affirm", "deny"):
            out.say("请从下面选一个：", buttons)
            return True
        conv.stage = Stage.IDLE  # a new question: the caller handles it; the answer can wait
        return False
    conv.situations.setdefault(item_id, {})[sid] = chosen
    conv.pending_situation = []
    e = _entry(ctx, conv)
    if e is None:
        conv.stage = Stage.IDLE
        return True
    nxt = _next_situation(conv, e, ctx)
    if nxt is not None:
        _ask_situation(conv, nxt[0], nxt[1], out)
        return True
    conv.stage = Stage.IDLE
    if conv.after_situation == "walk":
        _start_walk(conv, e, ctx, out)
    else:
        _materials_list(conv, e, ctx, out)
    return True


# --- materials walkthrough ---------------------------------------------------------------


def _start_walk(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome) -> None:
    nxt = _next_situation(conv, e, ctx)
    if nxt is not None:
        conv.after_situation = "walk"
        out.say("先确认一下您的情况，材料会不一样。")
        _ask_situation(conv, nxt[0], nxt[1], out)
        return
    if conv.walk is not None and conv.walk.entry_id == e.id and not conv.walk.done:
        conv.stage = Stage.WALK
        out.say("接着上次的进度核对。")
        _ask_next_material(conv, ctx, out)
        return
    mats = applicable(ctx.guide, e, conv.situations)
    conv.walk = Walk(e.id, [m.ref for m in mats])
    conv.stage = Stage.WALK
    out.say(f"好的，我们一项一项核对“{e.name}”的{len(mats)}项材料。随时说“先不核对了”可以退出。")
    out.events.append(Event("walk", {"entry": e.id, "materials": len(mats)}))
    _ask_next_material(conv, ctx, out)


def _merged(conv: Conversation, ctx: Ctx) -> dict[str, MergedMaterial]:
    assert conv.walk is not None
    e = ctx.guide.entry(conv.walk.entry_id)
    return {m.ref: m for m in applicable(ctx.guide, e, conv.situations)} if e else {}


def _ask_next_material(conv: Conversation, ctx: Ctx, out: Outcome) -> None:
    walk = conv.walk
    assert walk is not None
    by_ref = _merged(conv, ctx)
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
            out.say("这些不用准备：\n" + "\n".join(skipped))
        total = len(walk.answers) + len(walk.queue)
        n = len(walk.answers) + 1
        out.say(
            f"（{n}/{total}）您是否已准备好{book(m.name)}{m.use.form.value}"
            + (f"{m.use.copies}份" if m.use.copies > 1 else "") + "？",
            (Button("有", "/have"), Button("没有", "/missing"), Button("不清楚", "/unsure")),
        )
        return
    if skipped:
        out.say("这些不用准备：\n" + "\n".join(skipped))
    _finish_walk(conv, ctx, out)


def _walk_answer(
    conv: Conversation, text: str, cmd: tuple[str, str] | None, u: Understood, ctx: Ctx,
    out: Outcome,
) -> bool:
    walk = conv.walk
    assert walk is not None
    if not walk.queue:
        return False
    ref = walk.queue[0]
    m = _merged(conv, ctx).get(ref)
    answer = None
    if cmd and cmd[0] in ("have", "missing", "unsure"):
        answer = cmd[0]
    elif _YES.match(text) or (u.intent.intent == "affirm" and len(text) <= 6):
        answer = "have"
    elif _NO.match(text) or (u.intent.intent == "deny" and len(text) <= 8):
        answer = "missing"
    elif _UNSURE.match(text) or (u.intent.intent == "dont_know" and len(text) <= 8):
        answer = "unsure"
    elif _LEAVE_WALK.search(text) and not u.hits:
        conv.stage = Stage.IDLE
        out.say("好的，已暂停核对，进度给您留着。想继续时说“继续核对”。",
                (Button("继续核对", "/walk"), Button("转人工", "/human")))
        return True
    if answer is None or m is None:
        if u.hits and u.hits[0].score >= SWITCH_SCORE:
            return False  # a new question: the caller switches topic
        if cmd or not u.hits:
            out.say(f"请回答是否已准备好{book(m.name) if m is not None else '这项材料'}：",
                    (Button("有", "/have"), Button("没有", "/missing"),
                     Button("不清楚", "/unsure")))
            return True
        return False
    walk.queue.pop(0)
    mat = ctx.guide.materials.get(ref)
    if answer == "have":
        walk.answers[ref] = "ready"
    elif answer == "missing":
        walk.answers[ref] = "missing"
        lines = [f"{book(m.name)}的办法：{mat.how_to_get if mat else '请向窗口咨询。'}"]
        if m.use.necessity is Necessity.DEFERRABLE:
            lines.append("这项可以容缺受理：可先办理，之后再补交。")
            walk.answers[ref] = "deferrable"
        elif m.use.necessity is Necessity.COMMITMENT:
            lines.append("这项可以签一份告知承诺书代替，不用另外开证明。")
            walk.answers[ref] = "commitment"
        out.say("\n".join(lines))
    else:
        walk.answers[ref] = "unsure"
        desc = (mat.description or mat.how_to_get) if mat else "请向窗口咨询。"
        out.say(f"{book(m.name)}是指：{desc}\n先记为“待确认”，办理前再核实一下。")
    _ask_next_material(conv, ctx, out)
    return True


def checklist(conv: Conversation, ctx: Ctx) -> dict[str, list[str]] | None:
    """The citizen's personal checklist: ready / to get / not needed."""
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


def _finish_walk(conv: Conversation, ctx: Ctx, out: Outcome) -> None:
    walk = conv.walk
    assert walk is not None
    walk.done = True
    conv.stage = Stage.IDLE
    cl = checklist(conv, ctx) or {}
    e = ctx.guide.entry(walk.entry_id)
    lines = [f"“{e.name if e else ''}”材料清单："]
    for title, key in (("✔ 已备好", "ready"), ("✘ 还要准备", "to_get"), ("○ 不用准备", "not_needed")):
        if cl.get(key):
            lines.append(f"{title}：" + "、".join(cl[key]))
    lines.append(f"在哪办：{e.where.text}" if e else "")
    out.say("\n".join(x for x in lines if x), (), {"type": "checklist", "entry": walk.entry_id,
                                                   **{k: v for k, v in cl.items() if k != "pending"}})
    out.events.append(Event("checklist", {"entry": walk.entry_id, **cl}))
    _ask_rating(conv, out, "核对完了。请为这次服务打个分：")


# --- rating, handoff, fallback ----------------------------------------------------------


def _ask_rating(conv: Conversation, out: Outcome, text: str) -> Outcome:
    conv.stage = Stage.RATING
    conv.rating_for = conv.current
    out.say(text, RATING_BUTTONS)
    return out


def _rating(conv: Conversation, text: str, cmd: tuple[str, str] | None, out: Outcome) -> bool:
    score = None
    if cmd and cmd[0] == "rate" and cmd[1].isdigit():
        score = int(cmd[1])
    else:
        t = text.strip()
        for word, s in _RATING_WORDS:
            if word in t:
                score = s
                break
        if score is None and t[:1] in "12345" and len(t) <= 3:
            score = int(t[:1])
    if score not in RATINGS:
        conv.stage = Stage.IDLE
        return False  # not a rating: treat the message normally
    conv.stage = Stage.COMMENT
    out.ratings.append((conv.rating_for, score, None))
    out.events.append(Event("rating", {"entry": conv.rating_for, "score": score}))
    out.say(f"谢谢您的评价：{RATINGS[score]}。还有什么意见或建议吗？（可直接输入，没有请回复“没有”）",
            (Button("没有", "/nocomment"),))
    return True


def _comment(conv: Conversation, text: str, u: Understood, out: Outcome) -> Outcome:
    conv.stage = Stage.IDLE
    if text in ("/nocomment", "没有", "没", "不用了", "无") or u.intent.intent == "deny":
        out.say("好的，祝您办事顺利！")
        return out
    out.comment = text[:500]
    out.events.append(Event("rating_comment", {"entry": conv.rating_for, "comment": text[:500]}))
    if u.intent.intent == "complain" and u.intent.confidence >= 0.5:
        out.say("您的意见已记下，会转给相关部门。需要人工帮办可以点“转人工”。",
                (Button("转人工", "/human"),))
        return out
    out.say("您的意见已记下，会转给相关部门。祝您办事顺利！")
    return out


def _handoff(conv: Conversation, out: Outcome, reason: str) -> Outcome:
    if conv.mode is ConversationMode.BOT:
        conv.transition(ConversationMode.WAITING_AGENT)
    conv.stage = Stage.IDLE
    out.events.append(Event("mode", {"mode": conv.mode.value, "reason": reason}))
    lead = "很抱歉给您带来不便。" if reason == "complaint" else ""
    out.say(
        f"{lead}已为您转人工帮办，请稍候。\n人工服务时间：{DESK_HOURS}。"
        f"\n您可以先留言，帮办人员上线后会看到；急事请拨打政务服务便民热线 {HOTLINE}。",
        (Button("返回机器人", "/bot"),),
    )
    return out


def _waiting(conv: Conversation, text: str, out: Outcome) -> Outcome:
    if text == "/bot" or _BACK_TO_BOT.search(text):
        conv.transition(ConversationMode.BOT)
        out.events.append(Event("mode", {"mode": conv.mode.value, "reason": "citizen"}))
        out.say("好的，已回到导办助手。请说说您要办的事。")
        return out
    out.events.append(Event("message_for_agent", {"text": text}))
    out.say(f"您的留言已记下，帮办人员接入后会第一时间看到。急事请拨打 {HOTLINE}。",
            (Button("返回机器人", "/bot"),))
    return out


def _fallback(conv: Conversation, text: str, u: Understood, ctx: Ctx, out: Outcome) -> Outcome:
    conv.misses += 1
    oos = u.intent.intent == "out_of_scope"
    out.unanswered.append((text[:1000], u.normalized[:1000], "out_of_scope" if oos else "no_match"))
    if conv.misses >= 2:
        out.say("抱歉，我还是没找到合适的事项。要不要转人工帮办帮您看看？",
                (Button("转人工", "/human"), *_suggestion_buttons(ctx, 2)))
        return out
    if oos:
        out.say("这个问题我帮不上忙。我能帮您查政务服务事项：怎么办、带什么材料、在哪办、多久好。"
                "比如“孩子出生了要办啥”。", _suggestion_buttons(ctx))
        return out
    out.say("抱歉，没太明白您要办的事。可以换个说法，比如说清楚是什么证件、遇到了什么情况。"
            "大家常问的有：", _suggestion_buttons(ctx))
    return out


def _number(text: str) -> int | None:
    m = _CHOICE_NUM.match(text.strip())
    return _NUM[m.group(1)] if m else None


def _best_label(text: str, options: list[tuple[str, list[str]]]) -> str | None:
    """The option sharing the longest run of characters with ``text``; ties go to the
    option whose label has the fewest other characters ("婚生的" → 婚生, not 非婚生)."""
    t = re.sub(r"(的|吧|呢|啊|那个|这个|就是|我要|选)", "", text)
    if not t:
        return None
    scored = []
    for oid, labels in options:
        best = (0, 0)
        for label in labels:
            for size in range(min(len(t), len(label)), 1, -1):
                if any(t[i : i + size] in label for i in range(len(t) - size + 1)):
                    best = max(best, (size, -(len(label) - size)))
                    break
        scored.append((best, oid))
    scored.sort(reverse=True)
    if scored and scored[0][0][0] >= 2 and (len(scored) == 1 or scored[0][0] > scored[1][0]):
        return scored[0][1]
    return None


def _pick(
    conv: Conversation, text: str, cmd: tuple[str, str] | None, u: Understood, ctx: Ctx
) -> Entry | None:
    if cmd and cmd[0] == "pick":
        return ctx.guide.entry(cmd[1])
    if cmd:
        return None
    idx = _number(text)
    if idx is not None and 1 <= idx <= len(conv.options):
        return ctx.guide.entry(conv.options[idx - 1])
    if u.hits and u.hits[0].score >= SWITCH_SCORE:
        # A full new question: it picks an option only if it names one.
        return ctx.guide.entry(u.hits[0].id) if u.hits[0].id in conv.options else None
    labels = []
    for oid in conv.options:
        e = ctx.guide.entry(oid)
        if e is not None:
            bracket = re.findall(r"（([^）]+)）", e.name)
            labels.append((oid, [*bracket, e.name, *e.aliases]))
    chosen = _best_label(text, labels)
    return ctx.guide.entry(chosen) if chosen else None


__all__ = ["Ctx", "Outcome", "checklist", "members", "step"]
