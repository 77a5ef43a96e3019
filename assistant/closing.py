"""The edges of a conversation: rating 好差评 and its comment, handing over to a human
帮办 and the wait for one, and the polite fallback when nothing matched."""

from __future__ import annotations

import re

from assistant import answers
from assistant.context import Ctx, Outcome
from assistant.model import Button, Conversation, ConversationMode, Stage
from assistant.render import CARD_BUTTONS, HOTLINE
from assistant.store import Event
from nlu.pii import mask
from nlu.understand import Understood

DESK_HOURS = "工作日 9:00-17:00（示例时间，以实际公布为准）"
RATINGS = {5: "非常满意", 4: "满意", 3: "一般", 2: "不满意", 1: "非常不满意"}
RATING_BUTTONS = tuple(Button(t, f"/rate:{s}") for s, t in RATINGS.items())
_RATING_WORDS = sorted(((t, s) for s, t in RATINGS.items()), key=lambda ts: -len(ts[0]))


def suggestion_buttons(ctx: Ctx, n: int = 3) -> tuple[Button, ...]:
    out = []
    for eid in ctx.suggestions[:n]:
        e = ctx.guide.entry(eid)
        if e is not None:
            out.append(Button(e.name, f"/pick:{e.id}"))
    return tuple(out)


def ask_rating(conv: Conversation, out: Outcome, text: str) -> Outcome:
    conv.stage = Stage.RATING
    conv.rating_for = conv.current
    out.say(text, RATING_BUTTONS)
    return out


# A rating given without being asked: "5分", "给1分", "五星", "不满意 给1分".
_UNASKED = re.compile(r"(?:给|打)?\s*([1-5一二三四五])\s*(?:分|星)")
_ASKS = re.compile(r"[吗么嘛呢？?]|怎么|咋|啥|什么|多少|多久|几|哪|能不能|可不可以|是不是|(不|没)$")
_CONTENT = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]")
_ZH_DIGIT = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


# A message that is only a rating word ("非常满意", "挺满意的") rates even unasked.
_WORD_ONLY = re.compile(r"^(很|挺|特别|太|非常|不太|不)?满意(了|的|啊|呀)?$|^一般(吧|般)?$")


def _word_score(text: str) -> int | None:
    t = re.sub(r"[\s，,。.!！~]", "", text)
    if not _WORD_ONLY.match(t):
        return None
    if t.startswith(("不太", "不")):
        return 2
    if t.startswith("一般"):
        return 3
    return 5 if t.startswith(("很", "特别", "太", "非常")) else 4


def unasked_rating(conv: Conversation, text: str, out: Outcome) -> bool:
    """Record a score stated in passing; False when the text states none."""
    m = _UNASKED.search(text)
    if m is not None:
        score = str(_ZH_DIGIT.get(m.group(1), m.group(1)))
    elif (word := _word_score(text)) is not None:
        score = str(word)  # "非常满意" on its own
    else:
        return False
    conv.rating_for = conv.rating_for or conv.current
    conv.stage = Stage.RATING
    return rating(conv, score, ("rate", score), out)


def rating(conv: Conversation, text: str, cmd: tuple[str, str] | None, out: Outcome) -> bool:
    """Record a rating if ``text`` is one; False (and back to idle) otherwise."""
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
        return False
    conv.stage = Stage.COMMENT
    out.ratings.append((conv.rating_for, score, None))
    out.events.append(Event("rating", {"entry": conv.rating_for, "score": score}))
    out.say(f"谢谢您的评价：{RATINGS[score]}。还有什么意见或建议吗？（可直接输入，没有请回复“没有”）",
            (Button("没有", "/nocomment"),))
    return True


def comment(conv: Conversation, text: str, u: Understood, ctx: Ctx, out: Outcome) -> Outcome:
    conv.stage = Stage.IDLE
    if text == "/nocomment" or ctx.cues.act("no_comment", text) or u.intent.intent == "deny":
        out.say("好的，祝您办事顺利！")
        return out
    out.comment = mask(text[:500])
    out.events.append(Event("rating_comment", {"entry": conv.rating_for, "comment": out.comment}))
    if u.intent.intent == "complain" and u.intent.confidence >= 0.5:
        out.say("您的意见已记下，会转给相关部门。需要人工帮办可以点“转人工”。",
                (Button("转人工", "/human"),))
        return out
    out.say("您的意见已记下，会转给相关部门。祝您办事顺利！")
    return out


def handoff(conv: Conversation, out: Outcome, reason: str, hours: str | None = None) -> Outcome:
    """Into the human queue. ``hours``: the configured office hours in words (the desk
    then tells whether anyone is on duty now); without them, the placeholder."""
    if conv.mode is ConversationMode.BOT:
        conv.transition(ConversationMode.WAITING_AGENT)
    conv.stage = Stage.IDLE
    out.events.append(Event("mode", {"mode": conv.mode.value, "reason": reason}))
    lead = "很抱歉给您带来不便。" if reason == "complaint" else ""
    out.say(
        f"{lead}已为您转人工帮办，请稍候。\n人工服务时间：{hours or DESK_HOURS}。"
        f"\n您可以先留言，帮办人员上线后会看到；排队时也可以继续问我。急事请拨打政务服务便民热线 {HOTLINE}。",
        (Button("返回机器人", "/bot"),),
    )
    return out


def leave_queue(conv: Conversation, out: Outcome) -> None:
    conv.transition(ConversationMode.BOT)
    out.events.append(Event("mode", {"mode": conv.mode.value, "reason": "citizen"}))


def note_for_agent(text: str, out: Outcome) -> None:
    out.events.append(Event("message_for_agent", {"text": text}))


def left_a_message(out: Outcome) -> None:
    out.say(f"您的留言已记下，帮办人员接入后会第一时间看到。急事请拨打 {HOTLINE}。",
            (Button("返回机器人", "/bot"),))


def fallback(conv: Conversation, text: str, u: Understood, ctx: Ctx, out: Outcome,
             *, question: bool = False) -> Outcome:
    conv.misses += 1
    oos = u.intent.intent == "out_of_scope"
    # Kept for the guide's editors, who need the question, never the citizen's numbers.
    out.unanswered.append((mask(text[:1000]), mask(u.normalized[:1000]),
                           "out_of_scope" if oos else "no_match"))
    if not _CONTENT.search(text):
        # emoji only, "。。。": nothing to understand, and no use saying "didn't understand"
        out.say("您发的内容我没看懂。请用文字说说您要办什么事，比如“社保卡丢了咋整”；"
                "打字不方便也可以点下面的常见事项。", suggestion_buttons(ctx))
        return out
    cur = ctx.guide.entry(conv.current) if conv.current else None
    if cur is not None and question:
        # A question about the current item that the guide does not answer ("利息咋算"):
        # say so plainly and where to ask, never "didn't understand".
        what = "您问的这一点" if _ASKS.search(text) else "您说的这种情况"
        out.say(f"关于“{cur.name}”，{what}指南里没有写明。{answers.where_to_ask(cur)}",
                (Button("转人工", "/human"), *CARD_BUTTONS[:2]))
        return out
    back = (f"如果还是问“{cur.name}”，可以直接问：要带啥、在哪办、多久好、能代办吗。"
            if cur is not None else "")
    if conv.misses >= 2:
        out.say("抱歉，我还是没找到合适的事项。要不要转人工帮办帮您看看？" + back,
                (Button("转人工", "/human"), *suggestion_buttons(ctx, 2)))
        return out
    if oos:
        out.say("这个问题我帮不上忙。我能帮您查政务服务事项：怎么办、带什么材料、在哪办、多久好。"
                "比如“孩子出生了要办啥”。" + back, suggestion_buttons(ctx))
        return out
    out.say("抱歉，没太明白您要办的事。可以换个说法，比如说清楚是什么证件、遇到了什么情况。"
            + (back or "大家常问的有："), suggestion_buttons(ctx))
    return out
