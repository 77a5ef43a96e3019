"""Dialogue words as data: question types, citizen facts (slots) and short answers.

The patterns live in ``nlu/data/dialogue.yml`` so that an editor can add "咋整" without
touching the dialogue code; they are matched against normalised text. The intent model
decides *what kind of message* this is; these cues find *which question about an item*
it asks and *what the citizen said about themselves*, which a one-label classifier cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DIALOGUE_FILE = Path(__file__).parent / "data" / "dialogue.yml"
# Slots used only to read an answer to a question the bot asked; never remembered on
# their own ("上班" says nothing about residence unless the bot asked about it).
ANSWER_ONLY_SLOTS = frozenset({"residence_basis"})


_HIDES = (
    ("advance", "time"), ("eligibility", "conditions"), ("offsite", "conditions"),
    ("weekend", "conditions"), ("amount", "time"), ("amount", "fee"), ("progress", "time"),
    ("expired", "time"), ("offsite", "location"), ("proxy", "conditions"),
    ("lost", "materials"), ("expedite", "time"), ("mail", "online"), ("validity", "time"),
    ("validity", "advance"), ("payout", "location"), ("frequency", "time"),
    ("frequency", "advance"), ("frequency", "materials"),
)


@dataclass(frozen=True)
class SlotValue:
    slot: str
    value: str
    label: str  # 外地户口
    text: str  # as written


class DialogueCues:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.topic_patterns: dict[str, list[re.Pattern[str]]] = {
            t: [re.compile(p) for p in ps] for t, ps in (raw.get("topics") or {}).items()
        }
        self.topic_answer_patterns: dict[str, list[re.Pattern[str]]] = {
            t: [re.compile(p) for p in ps]
            for t, ps in (raw.get("topic_answers") or {}).items()
        }
        self.question_lexicon: list[tuple[str, list[str]]] = [
            (str(k), [str(w) for w in (v if isinstance(v, list) else [v])])
            for k, v in (raw.get("question_words") or {}).items()
        ]
        self.slot_labels: dict[str, str] = {}
        self.value_labels: dict[tuple[str, str], str] = {}
        self.slot_patterns: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        for slot, spec in (raw.get("slots") or {}).items():
            self.slot_labels[slot] = str(spec.get("label", slot))
            pats: list[tuple[str, re.Pattern[str]]] = []
            for value, vspec in (spec.get("values") or {}).items():
                self.value_labels[(slot, value)] = str(vspec.get("label", value))
                pats.extend((value, re.compile(p)) for p in vspec.get("patterns") or [])
            self.slot_patterns[slot] = pats
        self.variants: dict[tuple[str, str], list[str]] = {
            (slot, value): [str(w) for w in words]
            for slot, values in (raw.get("variants") or {}).items()
            for value, words in (values or {}).items()
        }
        words = raw.get("material_words") or {}
        self.material_words: list[tuple[str, str]] = sorted(
            ((str(k), str(v)) for k, v in words.items()), key=lambda kv: -len(kv[0]))
        self.acts: dict[str, list[re.Pattern[str]]] = {
            a: [re.compile(p) for p in ps] for a, ps in (raw.get("acts") or {}).items()
        }

    def topics(self, text: str) -> list[str]:
        """Question types in ``text``, in the order they appear."""
        found: list[tuple[int, str]] = []
        for topic, pats in self.topic_patterns.items():
            starts = [m.start() for p in pats if (m := p.search(text))]
            if starts:
                found.append((min(starts), topic))
        topics = [t for _, t in sorted(found)]
        # A more specific question hides the generic one it contains ("要提前多久办" asks
        # when to start, not how long it takes; "外地能办吗" is not about conditions).
        for specific, generic in _HIDES:
            if specific in topics and generic in topics:
                topics.remove(generic)
        return topics

    def topic_words(self, topic: str) -> list[str]:
        """The plain words an answer to ``topic`` uses ("有效" for 有效期): searched for
        together with the question's own words."""
        return [p.pattern for p in self.topic_answer_patterns.get(topic, [])
                if re.fullmatch(r"[\u4e00-\u9fffA-Za-z]+", p.pattern)]

    def without_topics(self, text: str) -> str:
        """``text`` with the words that name a question type blanked out: what is left is
        what the question is about ("有效期多久" → "有效期")."""
        for pats in self.topic_patterns.values():
            for p in pats:
                text = p.sub(" ", text)
        return text

    def has_answer_words(self, topic: str) -> bool:
        return topic in self.topic_answer_patterns

    def question_words(self, text: str) -> list[str]:
        """The guide's words for what the text says in everyday words ("个税" → 个人所得税)."""
        return [w for said, words in self.question_lexicon if said in text for w in words]

    def answers_topic(self, topic: str, sentence: str) -> bool:
        """Does ``sentence`` say the kind of thing a ``topic`` question asks for (a
        duration for "多久", a place for "在哪")? Topics without answer words: any."""
        pats = self.topic_answer_patterns.get(topic)
        return pats is None or any(p.search(sentence) for p in pats)

    def slots(self, text: str, *, answer_only: bool = False) -> list[SlotValue]:
        """Facts stated in ``text``: one value per slot (the earliest, longest match)."""
        out: list[SlotValue] = []
        for slot, pats in self.slot_patterns.items():
            if not answer_only and slot in ANSWER_ONLY_SLOTS:
                continue
            best: tuple[int, int, str, str] | None = None
            for value, p in pats:
                m = p.search(text)
                if m and (best is None or (m.start(), -len(m.group())) < best[:2]):
                    best = (m.start(), -len(m.group()), value, m.group())
            if best is not None:
                out.append(SlotValue(slot, best[2], self.value_labels[(slot, best[2])], best[3]))
        return out

    def materials_named(self, text: str) -> list[tuple[str, str]]:
        """(as written, catalogue word) for each material the text names."""
        out: list[tuple[str, str]] = []
        for said, word in self.material_words:
            if said in text and not any(said in s for s, _ in out):
                out.append((said, word))
        return out

    def label(self, slot: str, value: str) -> str:
        return self.value_labels.get((slot, value), value)

    def act(self, name: str, text: str) -> bool:
        return any(p.search(text) for p in self.acts.get(name, []))

    def answer(self, text: str, *, suffix: bool = True) -> str | None:
        """A short closed answer: yes / no / unsure, or None. ``suffix``: also read an
        answer at the end of a longer message ("户口本在我妈那 有")."""
        t = text.strip()
        if self.act("unsure", t) and len(t) <= 12:
            return "unsure"
        if self.act("deny", t):
            return "no"
        if self.act("affirm", t):
            return "yes"
        # "户口本在我妈那 有", "结婚证找不着了": the answer comes last.
        if suffix and len(t) <= 16:
            if self.act("deny_end", t):
                return "no"
            if self.act("affirm_end", t):
                return "yes"
        return None


@lru_cache(maxsize=4)
def load_cues(path: Path = DIALOGUE_FILE) -> DialogueCues:
    return DialogueCues(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
