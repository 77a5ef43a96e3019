"""The dialogue: one pure step per citizen message.

``step(conversation, text, understood, ctx)`` returns the replies and what to record; it
mutates only the conversation it is given (the caller saves it). Understanding (NLU +
retrieval + question types + stated facts) happens before the step.

Which item a set of hits means is decided in ``assistant/choose.py``; the 办事情形 questions
live in ``assistant/situations.py``. A turn is interpreted in a fixed order
(docs/dialogue.md):
1. the answer to the question the bot asked (rating, comment, clarification, 办事情形,
   material check) — unless it is plainly a new question;
2. a follow-up on the current item — a turn that does not strongly name another item is
   about the current one;
3. a new item (with the question the opener carried answered at once);
4. a clarification among close candidates;
5. the fallback.
"""

from __future__ import annotations

import re

from assistant import answers, choose, closing, listing, members, situations, walk
from assistant.context import BRACKET, Ctx, Outcome, PlaceAware, family_key
from assistant.model import Button, Conversation, ConversationMode, Stage
from assistant.options import Option, match
from assistant.render import (
    CARD_BUTTONS,
    Entry,
    applicable,
    book,
    card,
    card_text,
    caveat,
    situations_needed,
)
from assistant.store import Event
from knowledge.index import Hit
from knowledge.schema import Bundle, ServiceItem
from nlu.understand import Understood

SWITCH_SCORE = 0.6  # a new item this strong changes the topic, even mid-walkthrough
# Without a literal mention of the other item, a turn that asks a question about the
# current one changes the topic only when retrieval is this sure.
SWITCH_UNNAMED = 0.78
OPENER_CONFIDENCE = 0.2  # an opener carrying a question may use weaker candidates

# Intent model labels that ask about an item, as question types.
INTENT_TOPIC = {"ask_time": "time", "ask_fee": "fee", "ask_location": "location",
                "ask_online": "online", "ask_conditions": "conditions",
                "ask_materials": "materials"}
FOLLOW_UPS = set(INTENT_TOPIC)
SMALL_TALK = {"greet", "thanks", "goodbye", "affirm", "deny", "dont_know", "choose",
              "request_human", "complain"}
# A comment ("窗口排队时间有点长") names things too; a question asks ("社保卡丢了咋整").
_QUESTION = re.compile(r"[吗么嘛呢？?]|怎么|咋|啥|什么|多少|多久|几|哪|能不能|可不可以|是不是|能否|要不要"
                       r"|(能|行|可以|要|用|得|有)(不|没)$|[\u4e00-\u9fff]不$")
CONFIRM_BUTTONS = (Button("是的", "/yes"), Button("不是", "/no"))

__all__ = ["Ctx", "Outcome", "PlaceAware", "checklist", "step"]
checklist = walk.checklist


def _command(text: str) -> tuple[str, str] | None:
    """A button payload sent as text: "/pick:id" → ("pick", "id")."""
    if not text.startswith("/") or len(text) > 200:
        return None
    name, _, arg = text[1:].partition(":")
    return name, arg


# A button's title typed instead of pressed acts as the button.
TYPED_BUTTONS = {"查看材料": "/materials", "逐项核对材料": "/walk", "在哪办": "/where",
                 "返回机器人": "/bot"}


def step(conv: Conversation, text: str, u: Understood, ctx: Ctx) -> Outcome:
    out = Outcome()
    text = text.strip()
    typed = TYPED_BUTTONS.get(text.rstrip("。!！ "))
    if typed is None and conv.stage is not Stage.WALK and ctx.cues.act("walk", u.normalized):
        typed = "/walk"
    cmd = _command(typed or text)
    if conv.mode is ConversationMode.WAITING_AGENT:
        _waiting(conv, text, cmd, u, ctx, out)
        return out
    if conv.mode is ConversationMode.CLOSED:
        conv.transition(ConversationMode.BOT)
        out.events.append(Event("mode", {"mode": conv.mode.value, "reason": "reopened"}))
    _turn(conv, text, cmd, u, ctx, out)
    return out


def _asked_human(cmd: tuple[str, str] | None, u: Understood) -> bool:
    return bool(cmd and cmd[0] == "human") or (
        not cmd and u.intent.intent == "request_human" and u.intent.confidence >= 0.5
        and not u.hits)


def _real_question(conv: Conversation, u: Understood, ctx: Ctx, *, worded: bool = False) -> bool:
    """A question that deserves an answer even while the bot waits for something else
    (a rating's comment, a place in the human queue). ``worded``: only a question in so
    many words counts — a comment that mentions a topic ("窗口让我留了电话") is a comment."""
    if u.hits and u.hits[0].score >= SWITCH_SCORE:
        return True
    asks = _QUESTION.search(u.normalized) or (u.topics and not worded)
    return bool(asks and (u.hits or conv.current))


def _turn(conv: Conversation, text: str, cmd: tuple[str, str] | None, u: Understood,
          ctx: Ctx, out: Outcome) -> None:
    learned = [] if cmd else _remember(conv, u)
    asked_human = _asked_human(cmd, u)
    intent = u.intent.intent

    # 1. The answer to the bot's own question.
    if conv.stage is Stage.RATING and not asked_human and closing.rating(conv, text, cmd, out):
        return
    if conv.stage is Stage.COMMENT and not asked_human:
        if cmd or not _real_question(conv, u, ctx, worded=True):
            closing.comment(conv, text, u, ctx, out)
            return
        conv.stage = Stage.IDLE  # "社保卡丢了咋整" after a rating is a question, not a comment
    if asked_human or (not cmd and intent == "complain" and u.intent.confidence >= 0.5
                       and not u.hits):
        closing.handoff(conv, out, "complaint" if intent == "complain" and not cmd
                        else "requested", ctx.desk_hours)
        return
    if conv.stage in (Stage.RATING, Stage.COMMENT):
        conv.stage = Stage.IDLE
    if not cmd and not u.hits and not u.topics and closing.unasked_rating(conv, text, out):
        return  # "不满意 给1分" without being asked
    answered = (
        (conv.stage is Stage.CLARIFY and _clarify_answer(conv, text, cmd, u, ctx, out))
        or (conv.stage is Stage.SITUATION and _situation_answer(conv, text, cmd, u, ctx, out))
        or (conv.stage is Stage.WALK and conv.walk is not None
            and _walk_answer(conv, text, cmd, u, ctx, out))
    )
    if answered:
        return

    if cmd:
        _button(conv, cmd, ctx, out)
        return
    if ctx.cues.act("resume_walk", text) and not u.hits and _resume(conv, ctx, out):
        return

    # 2. A follow-up on the current item.
    cur = _entry(ctx, conv)
    if isinstance(cur, Bundle) and (member := _member(cur, u, ctx)) is not None:
        _present(conv, member, _topics(u), ctx, out, text=u.normalized)  # "丧葬费在哪领"
        return
    if cur is not None and not _names_other(conv, u, ctx):
        if _follow_up(conv, cur, u, ctx, out, learned):
            conv.misses = 0
            return
        if (_asks(u) or _about_it(u)) and not (u.hits and u.hits[0].score >= SWITCH_SCORE):
            # "单位给办不" on 退休一件事: about the current item, though the guide does not
            # say; a weak match elsewhere is not a reason to change the subject
            closing.fallback(conv, text, u, ctx, out, question=True)
            return

    # Small talk.
    if not u.hits:
        if ctx.cues.act("done", u.normalized) and conv.current:
            closing.ask_rating(conv, out, "好的。走之前，请为这次服务打个分：")
            return
        if intent == "thanks":
            out.say("不客气！还有别的事可以继续问我。")
            return
        if intent == "goodbye":
            closing.ask_rating(conv, out, "再见！走之前，请为这次服务打个分：")
            return
        if intent == "greet":
            out.say(_welcome(), closing.suggestion_buttons(ctx))
            return

    # 3.–4. A new item, or a choice among close ones.
    hits = u.hits
    vague = choose.vague(u, ctx)
    if not hits and u.candidates and cur is None and (
            vague or ((u.topics or intent in FOLLOW_UPS or intent == "ask_item")
                      and u.confidence >= OPENER_CONFIDENCE)):
        hits = u.candidates  # an opener with a question: "下个月登记结婚 户口本还要带吗"
    if hits:
        conv.misses = 0
        _found(conv, hits, u, ctx, out)
        return
    if cur is None and (u.topics or intent in FOLLOW_UPS) and not learned:
        out.say("您想问哪个事项？说说您要办的事就行，比如“社保卡丢了”“孩子上户口”。",
                closing.suggestion_buttons(ctx))
        return
    if learned:
        out.say(f"好的，记下了：{'、'.join(learned)}。请说说您要办的事。",
                closing.suggestion_buttons(ctx))
        return
    # 5.
    closing.fallback(conv, text, u, ctx, out, question=_asks(u))


def _member(bundle: Bundle, u: Understood, ctx: Ctx) -> Entry | None:
    """The member of the current 一件事 the turn asks about, unless it names another item."""
    if u.hits and u.hits[0].score >= SWITCH_UNNAMED and u.hits[0].id != bundle.id \
            and u.hits[0].id not in bundle.members:
        return None
    mid = members.member_asked(bundle, u, ctx)
    return ctx.guide.entry(mid) if mid else None


def _about_it(u: Understood) -> bool:
    """A statement about the citizen's case ("孩子才8岁", "他卧床了 下不了地"), not small
    talk: read as a question about the current item."""
    return len(u.normalized) >= 4 and u.intent.intent not in SMALL_TALK \
        and bool(re.search(r"[\u4e00-\u9fff]", u.normalized))


def _asks(u: Understood) -> bool:
    """Question-shaped: a question word or particle ("利息咋算", "两边都得跑吗")."""
    return bool(_QUESTION.search(u.normalized))


def _welcome() -> str:
    return ("您好，我是导办助手。请用一句话说说您要办的事，"
            "比如“孩子出生了要办啥”“社保卡丢了咋整”。")


def _remember(conv: Conversation, u: Understood) -> list[str]:
    """Store the facts the citizen stated; return the labels of the new ones."""
    new = []
    for s in u.slots:
        if conv.slots.get(s.slot) != s.value:
            conv.slots[s.slot] = s.value
            new.append(s.label)
    return new


def _names_other(conv: Conversation, u: Understood, ctx: Ctx) -> bool:
    """Does the turn strongly name an item other than the current one?"""
    if not u.hits:
        return False
    top = u.hits[0]
    if top.id == conv.current:
        return False
    if ctx.mentions(top.id, u.normalized) and not ctx.mentions(conv.current or "", u.normalized):
        return top.score >= SWITCH_SCORE - 0.1
    # Not named in so many words: "啥人能贷", "能领几个月的" stay with the current item
    # unless retrieval is very sure.
    return top.score >= SWITCH_UNNAMED


def _entry(ctx: Ctx, conv: Conversation) -> Entry | None:
    return ctx.guide.entry(conv.current) if conv.current else None


def _name(ctx: Ctx, eid: str | None) -> str:
    e = ctx.guide.entry(eid) if eid else None
    return e.name if e else "该事项"


# --- follow-ups --------------------------------------------------------------------------


def _topics(u: Understood) -> list[str]:
    topics = list(u.topics)
    if not topics and u.intent.intent in INTENT_TOPIC and u.intent.confidence >= 0.5:
        topics = [INTENT_TOPIC[u.intent.intent]]
    return topics


_LOSS_WORDS = ("补领", "补发", "补办", "挂失", "补证", "补换")


def _follow_up(conv: Conversation, e: Entry, u: Understood, ctx: Ctx, out: Outcome,
               learned: list[str]) -> bool:
    topics = _topics(u)
    if not _asks(u) and walk.mentioned(conv, e, ctx.cues.materials_named(u.normalized),
                                       u.normalized, ctx, out):
        return True  # "户口本有", "没有照片": for the checklist, not a question
    if not topics and e.eligibility and answers.stated_quantities(u.normalized):
        topics = ["eligibility"]  # "交了三年呢": a number held against the conditions
    if (case := members.variant_for_reason(e.name, e.id, u.normalized, ctx)) is not None \
            and (entry := ctx.guide.entry(case)) is not None:
        _present(conv, entry, topics, ctx, out, text=u.normalized)  # 首次签发 + "丢了" → 补发
        return True
    if "lost" in topics and not any(w in e.name for w in _LOSS_WORDS):
        loss = next((h for h in (u.hits or u.candidates)[:3]
                     if h.id != e.id and any(w in h.name for w in _LOSS_WORDS)), None)
        if loss is not None and (entry := ctx.guide.entry(loss.id)) is not None:
            _present(conv, entry, [t for t in topics if t != "lost"], ctx, out,
                     text=u.normalized)  # "结婚证丢了" → 补领婚姻登记证
            return True
    if learned and _variant_switch(conv, e, ctx, out):
        return True
    if set(topics) <= {"materials"} and (settled := situations.from_text(conv, e, u.normalized,
                                                                          ctx)):
        out.say("".join(settled))  # "商贷", "没办公证": a 办事情形 answered before it is asked
        listing.materials_list(conv, e, ctx, out)
        return True
    named = ctx.cues.materials_named(u.normalized)
    # the guide's own sentence for this question ("这钱要交税不", "有效期多久"), if one fits
    # (question types the intent model guessed are weaker evidence than words that name one)
    worded = [t for t in topics if t in u.topics or t not in INTENT_TOPIC.values()]
    passage = answers.prefer_passage(e, worded, u.normalized, ctx, asks=_asks(u),
                                     learned=bool(learned))
    if passage is not None and (not named or (passage.passage.question
                                                and passage.score >= answers.STRONG)):
        answers.say_passage(e, passage, out)
        return True
    if named and (not topics or topics == ["materials"]) and answers.material_question(
            conv, e, named, ctx, out):
        return True
    for t in topics[:2]:
        answer(conv, e, t, u.normalized, ctx, out)
    if topics:
        return True
    faq = answers.faq_answer(e, u.normalized)
    if faq is not None:
        note = caveat(e)
        out.say(f"“{e.name}”：{faq}" + (f"\n{note}" if note else ""))
        return True
    if learned:
        line = f"好的，记下了：{'、'.join(learned)}。"
        if conv.walk is None or conv.walk.done:
            # "我自己去", "房子是租的": what that means for the citizen is what to bring
            out.say(line + "按您的情况，要准备的材料如下：")
            listing.materials_list(conv, e, ctx, out)
        else:
            out.say(line, (Button("继续核对", "/walk"),))
        return True
    return False


def answer(conv: Conversation, e: Entry, topic: str, text: str, ctx: Ctx, out: Outcome) -> None:
    name = f"“{e.name}”"
    note = caveat(e)
    if topic == "time":
        out.say(f"{name}多久办好：{e.time_limit.text}" + (f"\n{note}" if note else ""))
    elif topic == "fee":
        out.say(f"{name}收费：{e.fee.text}" + (f"\n{note}" if note else ""))
    elif topic == "location":
        listing.where(conv, e, ctx, out)
    elif topic == "online":
        out.say(answers.online_answer(e))
    elif topic == "conditions":
        conds = e.conditions or ["指南里没有列出特别的条件。"]
        out.say(f"{name}谁能办：{'、'.join(a.value for a in e.audience)}\n" + "\n".join(
            f"· {c}" for c in conds[:4]))
    elif topic == "materials":
        listing.materials_list(conv, e, ctx, out, text)
    else:
        answers.answer_topic(conv, e, topic, text, ctx, out)


def _variant_switch(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome) -> bool:
    """A stated fact that picks a sibling variant ("我是外地户口" on 入学 → 随迁子女入学)."""
    siblings = [s for s in ctx.family(e.id) if s != e.id]
    siblings += [i for i in choose.related(e, ctx) if i not in siblings and i != e.id
                 and members.same_errand(e.name, _name(ctx, i))]
    chosen = choose.variant_by_slots(conv, [e.id, *siblings], ctx)
    if chosen is None or chosen == e.id:
        return False
    other = ctx.guide.entry(chosen)
    if other is None:
        return False
    _present(conv, other, [], ctx, out, lead=f"按您的情况，应该办“{other.name}”：")
    return True


# --- new items, clarification, presentation ------------------------------------------------


def _found(conv: Conversation, hits: list[Hit], u: Understood, ctx: Ctx, out: Outcome) -> None:
    top = hits[0]
    topics = _topics(u)
    near_best = choose.close_to_best(hits, u, ctx)
    chosen = choose.bundle_or_member(hits, near_best, u, ctx,
                                     together=ctx.cues.act("together", u.normalized))
    if chosen is None:
        near = [h.id for h in hits if h.score >= top.score - choose.VARIANT_MARGIN]
        chosen = choose.variant_by_slots(conv, near, ctx) if len(near) > 1 else None
    # a member's own 一件事 is offered beside it ("还可以一起办"), not as a choice
    close = [h for h in near_best
             if not (h.kind == "bundle" and top.id in ctx.bundle_members(h.id))]
    if chosen is None:
        named = [h.id for h in close if ctx.mentions(h.id, u.normalized)]
        if len(close) >= 2 and len(named) == 1 and not choose.family_words_only(close, named[0], u, ctx):
            chosen = named[0]  # "出生登记在哪办": the one named in so many words
    if chosen is None:
        family = ctx.family(top.id)
        specific = ctx.mentions(top.id, u.normalized)
        vague_family = bool(family) and (specific is None or specific in choose.family_words(ctx, top.id))
        if vague_family and len(close) >= 2 and any(h.id in family for h in close[1:]):
            _clarify(conv, choose.ordered([*family, *(h.id for h in close)], ctx), ctx, out)
            return
        if len(close) >= 2:
            _clarify(conv, choose.ordered([h.id for h in close], ctx), ctx, out)
            return
        chosen = top.id
    entry = ctx.guide.entry(chosen)
    assert entry is not None
    _present(conv, entry, topics, ctx, out, text=u.normalized)


def _clarify(conv: Conversation, ids: list[str], ctx: Ctx, out: Outcome) -> None:
    conv.options = ids
    conv.stage = Stage.CLARIFY
    conv.reasks = 0
    conv.confirm = ""
    shown = ids[:5]
    lines = ["您想办的是哪一项？点选或回复序号，也可以直接说（比如“租房的”）："]
    lines += [f"{i}. {_name(ctx, eid)}" for i, eid in enumerate(shown, 1)]
    if len(ids) > 5:
        lines.append("还有：" + "、".join(_short(ctx, eid) for eid in ids[5:]))
    out.say("\n".join(lines), tuple(Button(_name(ctx, eid), f"/pick:{eid}") for eid in shown))


def _short(ctx: Ctx, eid: str) -> str:
    name = _name(ctx, eid)
    b = BRACKET.findall(name)
    return b[-1] if b else name


def _present(conv: Conversation, entry: Entry, topics: list[str], ctx: Ctx, out: Outcome,
             *, text: str = "", lead: str = "") -> None:
    """The answer card for an entry; the topic switches cleanly to it. A question carried
    by the same message ("户口本还要带吗") is answered right after the card."""
    if conv.walk is not None and conv.walk.entry_id != entry.id and not conv.walk.done:
        out.say(f"已暂停“{_name(ctx, conv.walk.entry_id)}”的材料核对，说“继续核对”可以回来。")
    conv.current = entry.id
    conv.stage = Stage.IDLE
    conv.options = []
    conv.reasks = 0
    conv.confirm = ""
    if text:  # first: what the opener already settled changes the count on the card
        situations.from_text(conv, entry, text, ctx)
    mats = applicable(ctx.guide, entry, conv.situations)
    body = card_text(ctx.guide, entry, len(mats))
    facts = listing.facts_line(conv, ctx)
    extra = [x for x in (lead, body, facts) if x]
    buttons: tuple[Button, ...] = CARD_BUTTONS
    if isinstance(entry, ServiceItem):
        together = [b for b in ctx.bundles_of.get(entry.id, []) if b in ctx.guide.bundles]
        if together:  # "还可以一起办": the 一件事 this item belongs to
            buttons = (*CARD_BUTTONS, Button(f"一起办：{_name(ctx, together[0])}",
                                             f"/pick:{together[0]}"))
    out.say("\n".join(extra), buttons, card(ctx.guide, entry, len(mats)))
    out.events.append(Event("topic", {"entry": entry.id}))
    named = ctx.cues.materials_named(text) if text else []
    if named and (not topics or topics == ["materials"]) and answers.material_question(
            conv, entry, named, ctx, out):
        return
    if text and not topics and _QUESTION.search(text):
        if (m := answers.prefer_passage(entry, [], text, ctx, asks=True)) is not None \
                and m.score >= answers.STRONG:
            answers.say_passage(entry, m, out)  # "孩子都两岁了 育儿补贴还能领不"
            return
        if entry.eligibility and answers.stated_quantities(text):
            topics = ["eligibility"]  # "交了12年 到岁数能退休领钱不": held against the rules
    covered = {t for t, words in _ITEM_COVERS.items() if any(w in entry.name for w in words)}
    for t in [t for t in topics if t not in covered and t not in _CARD_SHOWS][:2]:
        answer(conv, entry, t, text, ctx, out)


# A question the item itself answers: "身份证丢了" finds 补领; its card is the answer.
_ITEM_COVERS = {"lost": _LOSS_WORDS, "expired": ("换领", "换证", "换发", "延续", "期满")}
_CARD_SHOWS = {"conditions"}  # every card already lists who may apply


def _clarify_answer(conv: Conversation, text: str, cmd: tuple[str, str] | None,
                    u: Understood, ctx: Ctx, out: Outcome) -> bool:
    if cmd and cmd[0] not in ("yes", "no"):
        return False  # a button (a pick among them): the button handler does it
    opts = []
    for oid in conv.options:
        e = ctx.guide.entry(oid)
        if e is not None:
            opts.append(Option(oid, _short(ctx, oid), (family_key(e.name), e.name, *e.aliases)))
    pending = conv.confirm
    said = None if pending else match(text, opts, ctx.cues)
    if said is not None and said.sure and (e := ctx.guide.entry(said.option)) is not None:
        _present(conv, e, _topics(u), ctx, out, text=u.normalized)  # "丢了 孩子都三岁了"
        return True
    asks = bool(u.topics) or u.intent.intent in FOLLOW_UPS
    strong_other = bool(u.hits) and u.hits[0].score >= SWITCH_SCORE \
        and u.hits[0].id not in conv.options
    if asks and not strong_other and (pending or conv.options) \
            and ctx.cues.answer(text) != "no":
        # A question instead of a choice ("去哪补"): answer it for the option just
        # confirmed, or the most likely one, and say so.
        e = ctx.guide.entry(pending or conv.options[0])
        if e is not None:
            conv.confirm = ""
            _present(conv, e, _topics(u), ctx, out, text=u.normalized,
                     lead=f"按“{e.name}”回答您（不是这项的话，请重新说一下要办的事）：")
            return True
    chosen = _resolve(conv, text, cmd, u, opts, ctx, out, kind="pick")
    if chosen is None:
        return bool(out.replies)
    e = ctx.guide.entry(chosen)
    if e is None:
        return False
    _present(conv, e, _topics(u), ctx, out, text=u.normalized)
    return True


def _resolve(conv: Conversation, text: str, cmd: tuple[str, str] | None, u: Understood,
             opts: list[Option], ctx: Ctx, out: Outcome, *, kind: str) -> str | None:
    """Map a reply onto the offered options: chosen id, or None having replied (re-ask,
    confirmation) or not (a new question: the caller goes on)."""
    if conv.confirm:
        said = "yes" if cmd == ("yes", "") else "no" if cmd == ("no", "") else \
            ctx.cues.answer(text)
        pending, conv.confirm = conv.confirm, ""
        if said == "yes":
            return pending
        if said == "no":
            out.say("好的，请从下面选一个：", _option_buttons(opts, kind))
            return None
    m = match(text, opts, ctx.cues)
    if m is not None and m.sure:
        return m.option
    if u.hits and u.hits[0].score >= SWITCH_SCORE and u.hits[0].id not in [o.id for o in opts]:
        return None  # a full new question
    if m is not None:
        conv.confirm = m.option
        label = next(o.label for o in opts if o.id == m.option)
        out.say(f"您是说“{label}”吗？", CONFIRM_BUTTONS)
        return None
    if kind == "pick" and u.hits and u.hits[0].id in [o.id for o in opts]:
        return u.hits[0].id
    if u.topics or u.intent.intent in FOLLOW_UPS or (_asks(u) and conv.current):
        return None  # a question: answered by the caller
    if u.hits:
        return None
    if u.intent.intent == "dont_know" or ctx.cues.act("unsure", text):
        out.say("不确定的话，可以先问问家人或窗口；也可以转人工帮您判断。",
                (*_option_buttons(opts, kind)[:4], closing_human()))
        return None
    if conv.reasks == 0:
        conv.reasks = 1
        out.say("没太听明白您选的是哪个，请点选或回复序号：", _option_buttons(opts, kind))
        return None
    conv.reasks = 0
    conv.stage = Stage.IDLE  # asked twice: buttons stay usable, free text goes on normally
    out.say("我还是没看明白。请直接点下面的按钮；也可以转人工，帮办人员帮您判断。",
            (*_option_buttons(opts, kind)[:4], closing_human()))
    return None


def closing_human() -> Button:
    return Button("转人工", "/human")


def _option_buttons(opts: list[Option], kind: str) -> tuple[Button, ...]:
    prefix = "/pick:" if kind == "pick" else "/sit:"
    return tuple(Button(o.label, prefix + o.id) for o in opts[:5])


def _button(conv: Conversation, cmd: tuple[str, str], ctx: Ctx, out: Outcome) -> None:
    name, arg = cmd
    if name == "pick":
        e = ctx.guide.entry(arg)
        if e is None:
            out.say("这个选项已失效，请重新说说您要办的事。")
            return
        _present(conv, e, [], ctx, out)
        return
    if name == "rate":
        conv.stage = Stage.RATING
        if closing.rating(conv, arg, ("rate", arg), out):
            return
    if name == "sit" and conv.pending_situation:
        conv.stage = Stage.SITUATION
        if _situation_answer(conv, f"/sit:{arg}", cmd, None, ctx, out):
            return
    e = _entry(ctx, conv)
    if e is None and conv.stage is Stage.CLARIFY and conv.options:
        e = ctx.guide.entry(conv.options[0])  # "核对材料" while choosing: the likeliest
        if e is not None:
            _present(conv, e, [], ctx, out)
    if e is None:
        out.say("请先说说您要办什么事。", closing.suggestion_buttons(ctx))
        return
    if name == "materials":
        listing.materials_list(conv, e, ctx, out)
    elif name == "walk":
        _start_walk(conv, e, ctx, out)
    elif name == "where":
        listing.where(conv, e, ctx, out)
    else:
        out.say("这个按钮已失效，请直接说说您想问什么。")


# --- 办事情形 ----------------------------------------------------------------------------


def _situation_answer(conv: Conversation, text: str, cmd: tuple[str, str] | None,
                      u: Understood | None, ctx: Ctx, out: Outcome) -> bool:
    if len(conv.pending_situation) != 2:
        conv.stage = Stage.IDLE
        return False
    item_id, sid = conv.pending_situation
    item = ctx.guide.items.get(item_id)
    sit = next((s for s in item.situations if s.id == sid), None) if item else None
    if item is None or sit is None:
        conv.stage = Stage.IDLE
        return False
    opts = situations.options_of(item, sid)
    chosen: str | None = None
    if cmd and cmd[0] == "sit":
        chosen = next((o.id for o in opts if o.id == cmd[1]), None)
    elif cmd and cmd[0] not in ("yes", "no"):
        return False
    elif u is not None:
        if ctx.cues.act("leave_walk", text) and not u.hits:
            conv.stage = Stage.IDLE
            out.say("好的，先不核对了。想继续时说“继续核对”。", (Button("继续核对", "/walk"),))
            return True
        e = _entry(ctx, conv)
        here = match(text, opts, ctx.cues)
        other = [] if e is None or ctx.cues.answer(text) in ("yes", "no") \
            or (here is not None and here.sure) else situations.from_text(conv, e, text, ctx)
        if other:  # "不是公务员" while asked the age: that question answered, this one again
            conv.confirm = ""
            out.say("".join(other))
            situations.ask(conv, item, sid, out, again=True)
            return True
        chosen = _resolve(conv, text, cmd, u, opts, ctx, out, kind="sit")
        if chosen is None:
            if out.replies:
                return True
            if (u.topics or _asks(u)) and conv.current and not _names_other(conv, u, ctx):
                e = _entry(ctx, conv)
                if e is not None:  # a question about the item: answer, then ask again
                    if not _follow_up(conv, e, u, ctx, out, []):
                        closing.fallback(conv, text, u, ctx, out, question=True)
                    situations.ask(conv, item, sid, out, again=True)
                    return True
            conv.stage = Stage.IDLE  # a new question: the caller handles it
            return False
    if chosen is None:
        out.say("请从下面选一个：", _option_buttons(opts, "sit"))
        return True
    conv.situations.setdefault(item_id, {})[sid] = chosen
    conv.pending_situation = []
    out.say(situations.noted(item, sid, chosen, ctx))  # with what this case brings
    e = _entry(ctx, conv)
    if e is None:
        conv.stage = Stage.IDLE
        return True
    if not cmd and (more := situations.from_text(conv, e, text, ctx)):
        out.say("".join(more))  # "结婚了 随妈" answers two questions
    _after_situation(conv, e, ctx, out)
    return True


def _after_situation(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome) -> None:
    while (nxt := situations.next_situation(conv, e, ctx)) is not None:
        if not situations.answer_from_slots(conv, nxt[0], nxt[1], ctx, out):
            situations.ask(conv, nxt[0], nxt[1], out)
            return
    conv.stage = Stage.IDLE
    if conv.after_situation == "walk":
        _start_walk(conv, e, ctx, out)
    else:
        listing.materials_list(conv, e, ctx, out)


# --- materials walkthrough ---------------------------------------------------------------


def _start_walk(conv: Conversation, e: Entry, ctx: Ctx, out: Outcome) -> None:
    conv.after_situation = "walk"
    situations.settle(conv, e, ctx, out)
    nxt = situations.next_situation(conv, e, ctx)
    if nxt is not None:
        out.say("先确认一下您的情况，材料会不一样。")
        situations.ask(conv, nxt[0], nxt[1], out)
        return
    walk.start(conv, e, ctx, out)


def _resume(conv: Conversation, ctx: Ctx, out: Outcome) -> bool:
    if conv.walk is not None and not conv.walk.done:
        conv.current = conv.walk.entry_id  # back to the item being checked
        conv.stage = Stage.WALK
        walk.ask_next(conv, ctx, out)
        return True
    e = _entry(ctx, conv)
    if (e is not None and conv.after_situation == "walk"
            and tuple(conv.pending_situation) in situations_needed(ctx.guide, e)):
        _start_walk(conv, e, ctx, out)  # left while answering 办事情形: pick up there
        return True
    return False


def _walk_answer(conv: Conversation, text: str, cmd: tuple[str, str] | None, u: Understood,
                 ctx: Ctx, out: Outcome) -> bool:
    m = walk.current_material(conv, ctx)
    if m is None:
        return False
    said = None
    if cmd and cmd[0] in ("have", "missing", "unsure"):
        said = cmd[0]
    elif cmd:
        return False
    elif not _asks(u) and (e := _entry(ctx, conv)) is not None and walk.mentioned(
            conv, e, ctx.cues.materials_named(u.normalized), u.normalized, ctx, out):
        return True  # "退休证有" while asked about the bank card: that one is recorded
    else:
        closed = ctx.cues.answer(text, suffix=False)
        if closed is None and not _names_other(conv, u, ctx):  # "那身份证丢了呢" is a topic
            closed = ctx.cues.answer(text)
        intent = u.intent.intent
        if closed == "unsure" or (intent == "dont_know" and len(text) <= 8):
            said = "unsure"
        elif closed == "no" or (intent == "deny" and len(text) <= 8):
            said = "missing"
        elif closed == "yes" or (intent == "affirm" and len(text) <= 6):
            said = "have"
    if said is not None:
        walk.record(conv, {"have": "have", "missing": "missing"}.get(said, "unsure"), ctx, out)
        return True
    if ctx.cues.act("leave_walk", text) and not u.hits:
        conv.stage = Stage.IDLE
        out.say("好的，已暂停核对，进度给您留着。想继续时说“继续核对”。",
                (Button("继续核对", "/walk"), Button("转人工", "/human")))
        return True
    if _names_other(conv, u, ctx):
        return False  # a new question: the caller switches topic
    e = _entry(ctx, conv)
    topics = _topics(u)
    if e is not None and (topics or ctx.cues.materials_named(u.normalized)):
        for t in topics[:2]:
            if t == "materials":
                continue
            answer(conv, e, t, u.normalized, ctx, out)
        out.say(f"接着核对：{walk.question(m)}", walk.WALK_BUTTONS)
        return True
    if u.hits and u.hits[0].score >= SWITCH_SCORE:
        return False
    out.say(f"请回答是否已准备好{book(m.name)}：", walk.WALK_BUTTONS)
    return True


# --- the human queue ----------------------------------------------------------------------


def _waiting(conv: Conversation, text: str, cmd: tuple[str, str] | None, u: Understood,
             ctx: Ctx, out: Outcome) -> None:
    if cmd == ("bot", "") or (not cmd and ctx.cues.act("leave_queue", text)):
        closing.leave_queue(conv, out)
        question = not cmd and (u.hits or (conv.current and u.topics))
        if question:
            out.say("好的，已取消人工排队，我先来回答您：")
            _turn(conv, text, None, u, ctx, out)
        elif cmd or not closing.unasked_rating(conv, text, out):  # "不用人工了 5分"
            out.say("好的，已回到导办助手，不再排队。请说说您要办的事。")
        return
    closing.note_for_agent(text, out)
    if not cmd and not u.hits and closing.unasked_rating(conv, text, out):
        return  # "给你打5分" while waiting: a rating, the place in the queue kept
    if not cmd and not _asked_human(cmd, u) and _real_question(conv, u, ctx):
        _turn(conv, text, None, u, ctx, out)
        out.say("您仍在人工排队中，帮办人员接入后也会看到这条消息。", (Button("返回机器人", "/bot"),))
        return
    closing.left_a_message(out)
