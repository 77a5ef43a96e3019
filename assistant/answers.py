"""Answers to the practical questions citizens ask about the current item.

Each question type (``nlu/data/dialogue.yml`` topics) is answered from the item's
structured fields (``answers``, ``eligibility``, flags, channels, materials). When the guide
does not hold the fact, the reply says so plainly and says where to ask: it never pastes
something that merely looks related.
"""

from __future__ import annotations

import re
from functools import lru_cache

from assistant import passages
from assistant.context import Ctx, Outcome
from assistant.model import Button, Conversation
from assistant.render import (
    CAVEAT,
    HOTLINE,
    Entry,
    applicable,
    book,
    caveat,
    material_line,
    online_channels,
)
from knowledge.schema import (
    CORE_TOPICS,
    Answer,
    ChannelType,
    Confidence,
    Eligibility,
    Measure,
    Reach,
    ServiceItem,
    Topic,
    Tri,
)
from nlu.cues import DialogueCues

HUMAN = Button("转人工", "/human")

# How each question is named when the guide does not answer it.
ASKED = {
    "proxy": "能不能委托别人代办", "guardian": "能不能由监护人代办",
    "employer": "能不能由单位代为办理", "in_person": "本人是否必须到场",
    "advance": "可以提前多久办、有没有截止时间", "expedite": "能不能加急",
    "mail": "能不能邮寄送达", "offsite": "能不能在外地（异地）办",
    "medical": "要不要体检", "weekend": "周末和节假日能不能办",
    "progress": "办理进度怎么查", "expired": "过期（超期）了怎么办",
    "lost": "丢了怎么办", "refused": "被退回（不予受理）了怎么办",
    "eligibility": "具体的年限或年龄要求", "amount": "能领多少、领多久", "phone": "咨询电话",
    "validity": "有效期多长", "payout": "钱发到哪个账户", "frequency": "多久要办一次",
}
_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?|[零一二两三四五六七八九十]+|半)\s*(个月|月|年|周岁|岁)")
_SENTENCE = re.compile(r"[^。；;！!\n]+[。；;！!]?")
_AMOUNT_UNIT = re.compile(r"\d+\s*(天|日|个月|月|年|元|%|倍)")
_AMOUNT_VERB = re.compile(r"(领|发|享受|支付|报销|补贴|津贴|标准|期限|最长|按月|每月|每人|计发|平均工资|基数)")


def _zh_number(s: str) -> float | None:
    if s == "半":
        return 0.5
    try:
        return float(s)
    except ValueError:
        pass
    if "十" in s:
        tens, _, ones = s.partition("十")
        return float((_ZH_DIGITS.get(tens, 1) if tens else 1) * 10 + _ZH_DIGITS.get(ones, 0))
    if all(c in _ZH_DIGITS for c in s):
        return float(_ZH_DIGITS[s[0]]) if len(s) == 1 else None
    return None


def stated_quantities(text: str) -> list[tuple[float, str]]:
    """"才交了半年" → [(6, "months")]; "我55岁" → [(55, "age")]."""
    out: list[tuple[float, str]] = []
    for m in _QUANTITY.finditer(text):
        n = _zh_number(m.group(1))
        if n is None:
            continue
        unit = m.group(2)
        if unit in ("岁", "周岁"):
            out.append((n, "age"))
        elif unit == "年":
            out.append((n * 12, "months"))
        else:
            out.append((n, "months"))
    return out


def _with_caveat(text: str, a: Answer, e: Entry) -> str:
    conf = a.confidence or e.provenance.confidence
    if conf is Confidence.OFFICIAL or "为准" in text:
        return text
    return f"{text}（{CAVEAT}）"


def where_to_ask(e: Entry) -> str:
    return f"请向办理窗口（{e.where.text}）确认，或拨打咨询电话 {e.phone or HOTLINE}；也可以点“转人工”问帮办人员。"


# Question types answered from a field every entry has (a generic reply): a sentence of the
# guide about what the question names is the answer instead, when it says the kind of thing
# asked ("有效期多久" is not asking how long processing takes, and "有效期5年" says a
# duration; "钱打到哪" is not asking where the office is).
GENERIC = frozenset({"time", "fee", "location", "conditions"})
STRONG = passages.STRONG  # a match this good is answered before the material check


@lru_cache(maxsize=256)
def _implied(cues: DialogueCues, text: str) -> tuple[str, ...]:
    """The guide's words for what ``text`` states ("没结婚" → 非婚生, "个税" → 个人所得税);
    cached: a turn may look up several passages for the same text."""
    return (*(s.label for s in cues.slots(text)), *cues.question_words(text))


@lru_cache(maxsize=256)
def _about(cues: DialogueCues, text: str) -> str:
    return cues.without_topics(text)


def best_passage(e: Entry, text: str, ctx: Ctx, topic: str = "") -> passages.Match | None:
    """The guide sentence about ``e`` that answers ``text`` (facts the text states, such as
    "没结婚" → 非婚生, and the words an answer to ``topic`` uses count as its words)."""
    extra = [*_implied(ctx.cues, text)]
    if not topic:
        return passages.index_for(ctx.guide).best(e, text, extra)
    return passages.index_for(ctx.guide).best(
        e, text, extra + ctx.cues.topic_words(topic),
        need=lambda said: ctx.cues.answers_topic(topic, said))


def _curated(e: Entry, topics: list[str]) -> bool:
    """A core practical question (代办, 本人到场, 提前, 加急, 邮寄, 异地) the entry's own
    ``answers`` record settles — known, or explicitly unknown: that record, written for
    exactly this question with its source, answers it (an unknown one honestly)."""
    core = {t.value for t in CORE_TOPICS}
    return any(t in core and e.answers.get(Topic(t)) is not None for t in topics)


def prefer_passage(e: Entry, topics: list[str], text: str, ctx: Ctx, *, asks: bool,
                   learned: bool = False) -> passages.Match | None:
    """The passage to answer with instead of ``topics``' own replies, if one fits better:
    for a question with no question type, a fair match; with one generic type, a fair
    match on what the question names beyond its type words that says what the type asks
    for; otherwise (the material list, online channels, 代办 …, answered from fields
    written for exactly that question) only an FAQ asking nearly the same. A statement
    stating facts ("想落他爸户口上") is left to the dialogue; one about the citizen's case
    ("他卧床起不来") gets the sentence that matches it strongly."""
    if not asks and not topics:
        if learned:
            return None
        m = best_passage(e, text, ctx)
        return m if m is not None and m.score >= passages.STRONG and m.content else None
    if topics == ["materials"] and len(text) <= 8:
        return None  # "要带啥": the list
    if _curated(e, topics):
        return None
    if len(topics) == 1 and topics[0] in GENERIC:
        m = best_passage(e, _about(ctx.cues, text), ctx)
        return m if m is not None and m.score >= passages.WEAK and m.content \
            and ctx.cues.answers_topic(topics[0], m.passage.text) else None
    m = best_passage(e, text, ctx)
    if m is None or m.score < passages.WEAK:
        return None
    if not topics:
        return m
    # an FAQ asking the same kind of question ("去不了医院评残咋办" and 代办), not one that
    # merely shares words ("孩子爷爷替我们去办" is not "户口能落在爷爷奶奶家吗")
    same_kind = set(topics) & set(ctx.cues.topics(m.passage.question))
    return m if same_kind and m.score >= passages.STRONG else None


def say_passage(e: Entry, m: passages.Match, out: Outcome) -> None:
    p = m.passage
    note = "" if "为准" in p.text else (caveat(e) or "")
    lead = f"“{e.name}”（{p.question}）：" if p.question else f"“{e.name}”："
    out.say(lead + p.text + (f"\n{note}" if note else ""))


def unknown(e: Entry, topic: str, out: Outcome, *, known: str = "") -> None:
    """The guide does not settle it: say so, with what it does say ("约30天取证；急用的
    可同时申请临时身份证") and where to ask."""
    lead = ""
    if topic in ("in_person", "proxy") and e.visits:
        lead = f"按指南，一般需要到现场{e.visits}次；"
    known = (known or "").strip()
    said = f"\n指南里相关的说明：{known}" if known else ""
    out.say(f"“{e.name}”{lead}{ASKED.get(topic, '这一点')}，指南里没有写明。{where_to_ask(e)}"
            + said, (HUMAN,))


def _derived(e: Entry, topic: str, guide_materials: dict[str, str]) -> Answer | None:
    """A fact that follows from other structured fields when ``answers`` lacks it."""
    flags = e.flags if isinstance(e, ServiceItem) else None
    if topic == "offsite" and flags is not None:
        if flags.cross_province:
            return Answer(answer=Tri.YES, reach=Reach.CROSS_PROVINCE,
                          text="这项已实行“跨省通办”，可以在外地（居住地）的受理点办理。")
        if flags.province_wide:
            return Answer(answer=Tri.PARTLY, reach=Reach.PROVINCE,
                          text="这项在黑龙江省内“全省通办”，省内任一受理窗口都能办；省外能否办理请向窗口确认。")
    if topic == "mail" and any(c.type is ChannelType.POST for c in e.channels):
        names = "；".join(c.name for c in e.channels if c.type is ChannelType.POST)
        return Answer(answer=Tri.YES, text=f"可以邮寄：{names}。")
    if topic == "in_person" and e.visits == 0:
        return Answer(answer=Tri.NO, text="不用到现场，可以网上或掌上办理。")
    if topic == "medical" and isinstance(e, ServiceItem):
        named = [guide_materials.get(m.ref, "") for m in e.materials]
        body = [n for n in named if "体检" in n or "身体条件" in n]
        if body:
            return Answer(answer=Tri.YES, text=f"需要：{'、'.join(book(n) for n in body)}。")
    if topic == "advance":
        due = [r for r in e.eligibility if r.measure is Measure.DAYS_AFTER_EVENT]
        if due:
            return Answer(answer=Tri.YES, text="；".join(r.text for r in due) + "。")
    if topic == "progress" and e.time_limit.instant:
        return Answer(answer=Tri.YES, text="材料齐全当场办结，不用另外查进度。")
    return None


def _topic_answer(e: Entry, topic: str, ctx: Ctx) -> Answer | None:
    try:
        t = Topic(topic)
    except ValueError:
        return None
    a = e.answers.get(t)
    if a is not None and a.answer is not Tri.UNKNOWN:
        return a
    names = {mid: m.name for mid, m in ctx.guide.materials.items()}
    derived = _derived(e, topic, names)
    if derived is not None:
        return derived
    if topic == "lost":
        return _sibling_for_loss(e, ctx)
    return a


def _sibling_for_loss(e: Entry, ctx: Ctx) -> Answer | None:
    key = re.sub(r"[（(].*", "", e.name)
    for other in ctx.guide.items.values():
        if other.id != e.id and any(w in other.name for w in ("补领", "补发", "补换", "挂失")) \
                and key[:3] in other.name:
            return Answer(answer=Tri.YES, text=f"丢了可以办理“{other.name}”：{other.summary}")
    return None


def answer_topic(conv: Conversation, e: Entry, topic: str, text: str, ctx: Ctx,
                 out: Outcome) -> None:
    if topic == "eligibility":
        _eligibility(e, text, out)
        return
    if topic == "amount":
        _amount(e, out)
        return
    if topic == "phone":
        out.say(f"“{e.name}”咨询电话：{e.phone or HOTLINE}（政务服务便民热线 {HOTLINE} 全天可打）。")
        return
    a = _topic_answer(e, topic, ctx)
    if a is not None and a.answer is Tri.UNKNOWN and _curated(e, [topic]):
        unknown(e, topic, out, known=a.text or "")  # "指南里没有写明" + what it does say
        return
    if a is None or a.answer is Tri.UNKNOWN:
        m = best_passage(e, text, ctx, topic)
        # a sentence that says what is asked ("有效期5年" for 有效期; any for a topic
        # without answer words, if it matches well)
        if m is not None and (ctx.cues.has_answer_words(topic) or m.score >= passages.STRONG):
            say_passage(e, m, out)  # not under this question type, but the guide says it
            return
        unknown(e, topic, out, known=(a.text or "") if a is not None else "")
        return
    lines = [_with_caveat(f"“{e.name}”：{a.text}", a, e)]
    if topic == "proxy" and a.materials:
        mats = [ctx.guide.materials[m].name for m in a.materials if m in ctx.guide.materials]
        if mats:
            lines.append("代办要另外带：" + "、".join(book(n) for n in mats) + "。")
    if topic == "in_person" and a.reasons:
        lines.append("需要本人到场的原因：" + "、".join(r.value for r in a.reasons) + "。")
    proxy = e.answers.get(Topic.PROXY)
    if topic == "in_person" and proxy is not None and proxy.text and proxy.text != a.text \
            and proxy.answer is not Tri.UNKNOWN:
        # "我一个人去能办不": who must come, and what if someone cannot
        lines.append(f"来不了的：{proxy.text}")
    out.say("\n".join(lines))


def _eligibility(e: Entry, text: str, out: Outcome) -> None:
    rules = e.eligibility
    if not rules:
        numeric = [c for c in e.conditions if re.search(r"\d|[一二三四五六七八九十]+(年|个月|周岁)", c)]
        if numeric:
            out.say(f"“{e.name}”的条件：\n" + "\n".join(f"· {c}" for c in numeric[:4]))
        else:
            unknown(e, "eligibility", out)
        return
    lines = [f"“{e.name}”的条件：", *(f"· {r.text}" for r in rules[:4])]
    said = stated_quantities(text)
    for r in rules:
        verdict = _compare(r, said)
        if verdict:
            lines.append(verdict)
            break
    out.say("\n".join(lines))


def _compare(r: Eligibility, said: list[tuple[float, str]]) -> str | None:
    if r.measure in (Measure.CONTRIBUTION_YEARS, Measure.CONTRIBUTION_MONTHS,
                     Measure.RESIDENCE_MONTHS):
        months = [n for n, kind in said if kind == "months"]
        if not months or r.min is None:
            return None
        need = r.min * 12 if r.measure is Measure.CONTRIBUTION_YEARS else r.min
        have = months[0]
        shown = f"{have / 12:g}年" if have >= 12 and have % 12 == 0 else f"{have:g}个月"
        need_s = f"{r.min:g}{r.unit}"
        if have < need:
            return f"您说的{shown}还不满{need_s}，按这一条暂时不符合；具体以经办窗口核定为准。"
        return f"您说的{shown}已满{need_s}，这一条符合；其他条件也要同时满足，以经办窗口核定为准。"
    if r.measure is Measure.AGE:
        ages = [n for n, kind in said if kind == "age"]
        if not ages:
            return None
        if r.min is not None and ages[0] < r.min:
            return f"您说的{ages[0]:g}岁还不到{r.min:g}{r.unit}。"
        if r.max is not None and ages[0] > r.max:
            return f"您说的{ages[0]:g}岁已超过{r.max:g}{r.unit}。"
        return f"您说的{ages[0]:g}岁符合这一条年龄要求。"
    return None


def _amount(e: Entry, out: Outcome) -> None:
    texts = [*(r.text for r in e.eligibility), e.summary, *e.conditions, *(f.a for f in e.faq)]
    found: list[str] = []
    for t in texts:
        for s in _SENTENCE.findall(t):
            s = s.strip()
            if (_AMOUNT_UNIT.search(s) or "平均工资" in s or "基数" in s) \
                    and _AMOUNT_VERB.search(s) and s not in found:
                found.append(s)
    if not found:
        unknown(e, "amount", out)
        return
    note = caveat(e)
    out.say(f"“{e.name}”：" + "\n".join(found[:3]) + (f"\n{note}" if note else ""))


def material_question(conv: Conversation, e: Entry, said: list[tuple[str, str]], ctx: Ctx,
                      out: Outcome) -> bool:
    """"户口本还要带吗": whether the named materials are on this citizen's list."""
    mats = applicable(ctx.guide, e, conv.situations)
    lines = []
    # "办居住证要啥": the document being applied for is the item, not a material asked about
    said = [(a, w) for a, w in said if w not in e.name and a not in e.name]
    for as_written, word in said:
        hit = [m for m in mats if word in m.name]
        if hit:
            lines.append("要带：" + "；".join(material_line(ctx.guide, m) for m in hit) + "。")
        else:
            lines.append(f"“{e.name}”的材料清单里没有{as_written}，不用带。")
    if not lines:
        return False
    lines.append(f"全部材料共{len(mats)}项，点“查看材料”可以看清单。")
    out.say("\n".join(lines), (Button("查看材料", "/materials"), Button("逐项核对材料", "/walk")))
    return True


def faq_answer(e: Entry, text: str) -> str | None:
    """The FAQ entry asking nearly the same question (shared character pairs)."""
    def pairs(s: str) -> set[str]:
        s = re.sub(r"[\s？?。，,！!吗呢啊呀的了]", "", s)
        return {s[i:i + 2] for i in range(len(s) - 1)}

    q = pairs(text)
    if len(q) < 2:
        return None
    best: tuple[float, str] | None = None
    for f in e.faq:
        fq = pairs(f.q)
        shared = len(q & fq)
        score = shared / max(1, len(q))
        if shared >= 2 and score >= 0.4 and (best is None or score > best[0]):
            best = (score, f.a)
    return best[1] if best else None


def online_answer(e: Entry) -> str:
    online = online_channels(e)
    if online:
        return f"“{e.name}”可以这样办：\n" + "\n".join(online)
    return f"“{e.name}”暂不支持网上办理，需要到{e.where.text}。"
