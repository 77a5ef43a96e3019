"""The sentence of the guide that answers a question about the current item.

A question type (``nlu/data/dialogue.yml`` topics) covers the questions citizens ask about
every item; many questions are particular to one item ("这钱要交税不", "有效期几年", "冷静期里
反悔了咋办"), and the guide answers them in its FAQ, its practical answers, its conditions,
its summary or a material's note. This module finds that sentence by shared content:
character pairs of the question, weighted by how rare they are in the whole guide, minus
the pairs of the item's own name (every sentence of the item is about the item) and pairs
made only of function characters ("能办", "要不"). A match must cover most of what the
question asks; otherwise the dialogue says plainly that the guide does not say.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from assistant.render import Entry
from knowledge.schema import ServiceItem
from knowledge.validate import GuideBase

# Characters that carry no content on their own: question words, particles, pronouns,
# modal verbs. A pair of two of them ("能办", "要不", "我去") says nothing about the topic.
FUNCTION_CHARS = frozenset(
    "能可以要不吗呢啊呀吧的了么嘛得还是没咋怎啥什哪多少几去来办弄整我你他她它们这那个就都也"
    "会给用让在和跟与或者该请问下一再先又才把被从对到着过么些样时候儿")
_DROP = re.compile(r"[\s\d\W_a-z]+")
_SENTENCE = re.compile(r"[^。；;！!？?\n]+[。；;！!？?]?")
# Strong enough to answer with: the matched sentence covers this share of the question.
STRONG = 0.5
WEAK = 0.34  # enough to answer a question no question type covers
# A pair the guide never uses ("证能", "钱打") can match nothing; it counts little, so
# colloquial filler does not drown the words that can ("交税").
UNSEEN = 1.0
MIN_QUESTION = 8.0  # the least weight a question is scored against (two rare pairs ≈ 12)


@dataclass(frozen=True)
class Passage:
    kind: str  # faq / answer:<topic> / condition / eligibility / summary / material
    key: str  # what is matched against the question
    text: str  # what is said to the citizen
    question: str = ""  # an FAQ's question, shown so the citizen sees what is answered


@dataclass(frozen=True)
class Match:
    passage: Passage
    score: float
    content: bool = False  # shares a pair of two content characters ("有效", "医院")


def pairs(text: str) -> set[str]:
    """Character pairs of the text's runs of Chinese characters, without function pairs."""
    out: set[str] = set()
    for run in _DROP.split(text.lower()):
        out.update(run[i:i + 2] for i in range(len(run) - 1))
    return {p for p in out if not (p[0] in FUNCTION_CHARS and p[1] in FUNCTION_CHARS)}


def entry_passages(guide: GuideBase, e: Entry) -> list[Passage]:
    out: list[Passage] = [Passage("faq", f"{f.q} {f.a}", f.a, f.q) for f in e.faq]
    for topic, a in e.answers.items():
        if a.text:
            out.append(Passage(f"answer:{topic}", a.text, a.text))
    out += [Passage("eligibility", r.text, r.text) for r in e.eligibility]
    out += [Passage("condition", c, c) for c in e.conditions]
    out += [Passage("summary", s.strip(), s.strip()) for s in _SENTENCE.findall(e.summary)
            if len(s.strip()) >= 6]
    if isinstance(e, ServiceItem):
        for use in e.materials:
            m = guide.materials.get(use.ref)
            if m is not None and m.how_to_get:
                out.append(Passage("material", f"{m.name} {m.how_to_get}",
                                   f"《{m.name}》：{m.how_to_get}"))
    return out


class PassageIndex:
    """Every entry's passages and the guide-wide rarity of each character pair."""

    def __init__(self, guide: GuideBase) -> None:
        self.guide = guide
        self._by_entry: dict[str, list[tuple[Passage, set[str]]]] = {}
        self._names: dict[str, set[str]] = {}  # entry id -> pairs of its name and aliases
        df: Counter[str] = Counter()
        n = 0
        entries: list[Entry] = [*guide.items.values(), *guide.bundles.values()]
        for e in entries:
            ps = [(p, pairs(p.key)) for p in entry_passages(guide, e)]
            self._by_entry[e.id] = ps
            self._names[e.id] = _name_pairs(e)
            for _, ks in ps:
                df.update(ks)
                n += 1
        self._idf = {k: math.log((n + 1) / (c + 1)) + 1.0 for k, c in df.items()}

    def weight(self, p: str) -> float:
        """Rare pairs count more; a pair with a function character ("能领") counts half."""
        w = self._idf.get(p, UNSEEN)
        return w if _content(p) else w / 2

    def best(self, e: Entry, question: str, extra: Iterable[str] = (),
             need: Callable[[str], bool] | None = None) -> Match | None:
        """The passage of ``e`` sharing most of the question's content, if any does.
        ``extra``: words the question implies (labels of facts the citizen stated);
        ``need``: only passages whose text passes it."""
        q = pairs(question)
        for w in extra:
            q |= pairs(w)
        q -= self._names.get(e.id) or _name_pairs(e)
        if not q:
            return None
        # a question of one or two pairs ("申请") cannot be matched strongly by sharing them
        total = max(sum(self.weight(p) for p in q), MIN_QUESTION)
        best: Match | None = None
        for passage, keys in self._by_entry.get(e.id, []):
            shared = q & keys
            if not shared or (need is not None and not need(passage.text)):
                continue
            score = sum(self.weight(p) for p in shared) / total
            if passage.kind == "faq":
                score *= 1.1  # written for a citizen's question
            if best is None or score > best.score:
                best = Match(passage, round(score, 3), any(_content(p) for p in shared))
        return best


def _content(p: str) -> bool:
    return p[0] not in FUNCTION_CHARS and p[1] not in FUNCTION_CHARS


def _name_pairs(e: Entry) -> set[str]:
    out = pairs(e.name)
    for a in e.aliases:
        out |= pairs(a)
    return out


_INDEXES: dict[int, PassageIndex] = {}


def index_for(guide: GuideBase) -> PassageIndex:
    """The index of ``guide``, built once (the guide base is loaded once per process)."""
    idx = _INDEXES.get(id(guide))
    if idx is None or idx.guide is not guide:
        if len(_INDEXES) > 4:
            _INDEXES.clear()
        idx = _INDEXES[id(guide)] = PassageIndex(guide)
    return idx
