"""Reading a citizen's free answer to a question the bot asked.

The bot offers options (办事情形 answers, clarification candidates); citizens answer in
their own words ("跟他妈", "房子是租的", "我闺女替我去"). An answer is matched, in order, by
its number, by an option's label or synonyms, by the facts it states (the slot lexicon in
``nlu/data/dialogue.yml``), and last by shared characters — which is only a guess, so the
dialogue confirms it before acting on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlu.cues import DialogueCues

_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
        "九": 9}
_CHOICE_NUM = re.compile(
    r"^(?:第|选|选择|要|就)?\s*([一二两三四五六七八九]|[1-9])\s*(?:个|项|号|条|种|吧)?(?:吧|的|那个)?[。.!！]?$")
_FILLER = re.compile(r"(的|吧|呢|啊|呀|哈|那个|这个|就是|我要|选|是|嗯|额|我们|俺们|俺|我)")
_NEGATED = re.compile(r"(不是|不|没|没有|非|无)$")
# A label's distinctive part: without the yes/no word it starts with ("有残疾人" → 残疾人)
# and split at brackets and 或 ("经营者（转给别人经营）" → 经营者, 转给别人经营).
_LEAD = re.compile(r"^(有|是|已|已经|只有|没有|不是|未)")
_SPLIT = re.compile(r"[（）()、，,；;或/]")


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    option: str
    sure: bool  # False: a guess to confirm ("您是说…吗？")
    why: str  # number / label / synonym / fact / chars


def number(text: str) -> int | None:
    m = _CHOICE_NUM.match(text.strip())
    if not m:
        return None
    g = m.group(1)
    return int(g) if g.isdigit() else _NUM[g]


def _contains(text: str, phrase: str) -> int:
    """Position of ``phrase`` in ``text`` unless negated just before ("不是租的"), else -1."""
    i = text.find(phrase)
    while i >= 0:
        if not _NEGATED.search(text[max(0, i - 2):i]):
            return i
        i = text.find(phrase, i + 1)
    return -1


def match(text: str, options: list[Option], cues: DialogueCues) -> Match | None:
    t = text.strip().lower()
    if not t or not options:
        return None
    n = number(t)
    if n is not None:
        return Match(options[n - 1].id, True, "number") if 1 <= n <= len(options) else None
    # Label or synonym inside the answer (the longest wins: 非婚生 over 婚生).
    best: tuple[int, str, str] | None = None
    for o in options:
        for phrase, why in [(o.label, "label"), *((s, "synonym") for s in o.synonyms)]:
            p = phrase.lower()
            if len(p) >= 2 and _contains(t, p) >= 0 and (best is None or len(p) > best[0]):
                best = (len(p), o.id, why)
    if best is not None:
        rivals = [o.id for o in options for p in (o.label, *o.synonyms)
                  if len(p) == best[0] and p.lower() in t and o.id != best[1]]
        if not rivals:
            return Match(best[1], True, best[2])
    # The answer inside a label ("随父" → 随父亲落户).
    core = _FILLER.sub("", t)
    inside = [o.id for o in options
              if len(core) >= 2 and any(core in p.lower() for p in (o.label, *o.synonyms))]
    if len(inside) == 1:
        return Match(inside[0], True, "label")
    # Facts: "户口在老家" states hukou=offsite; the option whose words state the same.
    said = {(s.slot, s.value) for s in cues.slots(t, answer_only=True)}
    if said:
        hit = []
        for o in options:
            words = " ".join((o.label, *o.synonyms)).lower()
            own = {(s.slot, s.value) for s in cues.slots(words, answer_only=True)}
            if own & said:
                hit.append(o.id)
        if len(hit) == 1:
            return Match(hit[0], True, "fact")
    # The reason stated ("丢了", "磨得看不清了"): the one option whose name says that case.
    case_words = reason_words(t, cues)
    if case_words:
        cases = [o.id for o in options
                 if any(w in x for x in (o.label, *o.synonyms) for w in case_words)]
        if len(cases) == 1:
            return Match(cases[0], True, "fact")
    # "别人" in an option's words stands for any person ("转给别人经营" ← "转给我弟弟经营").
    anyone = [o.id for o in options
              if any(p.search(t) for p in _person_patterns((o.label, *o.synonyms)))]
    if len(anyone) == 1:
        return Match(anyone[0], True, "synonym")
    # A distinctive part of one label said in so many words ("我老伴是残疾人" → 有残疾人).
    parts = {o.id: _parts(o.label) for o in options}
    said_parts = [oid for oid, ps in parts.items()
                  if any(_contains(t, p) >= 0 and not any(p in q for other, qs in parts.items()
                                                          if other != oid for q in qs)
                         for p in ps)]
    if len(said_parts) == 1:
        return Match(said_parts[0], True, "label")
    # Shared characters: a guess.
    guess = _best_chars(core, options)
    return Match(guess, False, "chars") if guess else None


def reason_words(text: str, cues: DialogueCues) -> list[str]:
    """The words naming the case the text states ("丢了" → 补领, 补发, …), strongest first;
    empty unless exactly one case is stated."""
    reasons = [v for (slot, v) in cues.variants
               if slot == "reason" and cues.act(f"reason_{v}", text)]
    return cues.variants[("reason", reasons[0])] if len(reasons) == 1 else []


_ANYONE = re.compile(r"别人|他人")
_PERSON = (r"(别人|他人|(我|俺|他|她)?(家)?(弟弟|哥哥|姐姐|妹妹|弟|哥|姐|妹|儿子|闺女|女儿|孙子|"
           r"亲戚|朋友|同学|老伴|对象|爸|妈|孩子|小舅子|外甥|侄子))")


def _person_patterns(phrases: tuple[str, ...]) -> list[re.Pattern[str]]:
    out = []
    for phrase in phrases:
        for part in _SPLIT.split(phrase.lower()):
            if _ANYONE.search(part) and len(part) >= 4:
                bits = _ANYONE.split(part)
                out.append(re.compile(_PERSON.join(re.escape(b) for b in bits)))
    return out


def _parts(label: str) -> list[str]:
    return [p for p in (_LEAD.sub("", x.strip()) for x in _SPLIT.split(label.lower()))
            if len(p) >= 3]


def _best_chars(t: str, options: list[Option]) -> str | None:
    if len(t) < 2:
        return None
    scored = []
    for o in options:
        best = 0
        for label in (o.label, *o.synonyms):
            lab = label.lower()
            for size in range(min(len(t), len(lab)), 1, -1):
                if any(t[i:i + size] in lab for i in range(len(t) - size + 1)):
                    best = max(best, size)
                    break
        scored.append((best, o.id))
    scored.sort(reverse=True)
    if scored[0][0] >= 2 and (len(scored) == 1 or scored[0][0] > scored[1][0]):
        return scored[0][1]
    return None
