"""Understanding a question end to end: normalise → intent + entities → retrieval."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import yaml

from knowledge import memory
from knowledge.embed import Encoder, EncoderUnavailable, UseEncoder, VectorCache
from knowledge.index import Hit, Scope, SearchIndex, SearchService
from knowledge.validate import GuideBase
from nlu.cues import DialogueCues, SlotValue, load_cues
from nlu.examples import QUESTIONS_FILE, ExamplesError, load_examples
from nlu.intents import EmbeddedClassifier, Entity, IntentClassifier, ParseResult
from nlu.tokenizer import Lexicon, Tokenizer
from nlu.tokenizer import signature as tokenizer_signature

log = logging.getLogger(__name__)

# Acts that are about the conversation itself, not about which item (out_of_scope is
# weighed by match_confidence instead).
NON_ITEM_INTENTS = frozenset(
    {"greet", "thanks", "goodbye", "affirm", "deny", "dont_know", "choose",
     "request_human", "complain"}
)
FOLLOW_UP_INTENTS = frozenset(
    {"ask_time", "ask_fee", "ask_location", "ask_online", "ask_conditions", "ask_materials"}
)
SHORT_ACT = 6  # characters
SHORT_FOLLOW_UP = 4  # "要多久" names no item; "身份证要钱吗" does
# Clauses of a list: split on spaces and list punctuation; each is searched on its own.
CLAUSE_SPLIT = re.compile(r"[\s、，,；;/]+|还有|以及")
MAX_CLAUSES = 5
PART_SCORE = 0.5  # a clause's hit counts as named when this strong
PART_K = 3
REPLACEMENT_WORDS = ("补领", "补发", "换领", "补换", "挂失", "遗失", "补证", "补办")
LOSS = re.compile(r"丢|补|坏|换|挂失|找不着|找不到|遗失|被偷|磨|过期|到期")
MATERIAL_FREE_SCORE = 0.4  # the item a material question is about, searched without it
# A non-item act still gets items when retrieval is this sure ("社保卡丢了，转人工").
STRONG_MATCH = 0.62
# In-scope evidence: dense similarity of the top hit, its sparse coverage, minus the intent
# model's belief that the question is out of scope. The weights and the threshold were
# chosen on the development set (benchmarks/retrieval.py); 0.5 confidence ⇔ the threshold.
REL_SPARSE = 0.3
REL_OOS = 0.5
REL_THRESHOLD = 0.24
REL_SLOPE = 12.0


@dataclass(frozen=True)
class Understood:
    text: str
    normalized: str
    intent: ParseResult
    hits: list[Hit] = field(default_factory=list)  # empty: no match
    confidence: float = 0.0  # calibrated belief that the question is about the top hit
    # Retrieval before the confidence cut: an opener that carries a question ("下个月登记
    # 结婚 户口本还要带吗") may name its item only weakly; the dialogue decides.
    candidates: list[Hit] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)  # question types (nlu/data/dialogue.yml)
    slots: list[SlotValue] = field(default_factory=list)  # facts the citizen stated
    # The best hit of each clause of a message that lists several things ("执照 食品许可证
    # 消防 招牌都得办吧"): several members of one 一件事 named at once mean the bundle.
    parts: list[tuple[Hit, ...]] = field(default_factory=list)  # best hits per clause

    @property
    def entities(self) -> list[Entity]:
        return self.intent.entities


class Understanding:
    def __init__(
        self,
        guide: GuideBase,
        content_hash: str,
        *,
        index_dir: Path | None = None,
        encoder: Encoder | bool | None = True,
        classifier: IntentClassifier | None = None,
        examples_file: Path = QUESTIONS_FILE,
    ) -> None:
        faiss.omp_set_num_threads(1)  # single queries: threads only add overhead here
        self.tokenizer = Tokenizer(guide)
        # Why a part is missing, for /health and the start-up check (channels/health.py).
        self.encoder_problem: str | None = None
        self.intent_problem: str | None = None
        if encoder is True:
            try:
                self.encoder: Encoder | None = UseEncoder()
            except EncoderUnavailable as exc:
                log.warning("dense retrieval disabled: %s", exc)
                self.encoder = None
                self.encoder_problem = str(exc)
        else:
            self.encoder = encoder or None
            self.encoder_problem = None if self.encoder else "turned off by the caller"
        self._cache = (
            VectorCache(index_dir, self.encoder) if index_dir and self.encoder else None
        )
        self._example_cache = (
            VectorCache(index_dir / "examples", self.encoder) if index_dir and self.encoder
            else None
        )
        self.examples_problem: str | None = None
        try:
            self.examples = load_examples(examples_file, normalize=self.tokenizer.normalize)
        except ExamplesError as exc:
            log.warning("no example questions: %s", exc)
            self.examples, self.examples_problem = {}, str(exc)
        self.classifier = classifier or self._train_intents()
        self.cues: DialogueCues = load_cues()
        memory.release()  # the tokenizer's and the trainer's temporaries
        self.search_service = SearchService(self._build)
        self.search_service.refresh(guide, content_hash)

    def _train_intents(self) -> IntentClassifier:
        try:
            return EmbeddedClassifier(words=self.tokenizer.plain_terms)
        except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
            log.warning("no intent model: %s", exc)
            self.intent_problem = f"{type(exc).__name__}: {exc}"
            return RetrievalOnly()

    def _build(self, guide: GuideBase, content_hash: str) -> SearchIndex:
        return SearchIndex(guide, content_hash, self.tokenizer.terms, self.encoder, self._cache,
                           examples=self.examples, example_cache=self._example_cache)

    def refresh(self, guide: GuideBase, content_hash: str) -> bool:
        if self.search_service.index.content_hash == content_hash:
            return False  # unchanged: no tokenizer (1 s) built just to compare
        lexicon = Lexicon.load()
        if tokenizer_signature(guide, lexicon) != self.tokenizer.signature:
            # A new dictionary only when names, aliases or the lexicon changed: an edit of
            # fees or materials keeps the tokenizer (~130 MB less at 100k items).
            self.tokenizer = Tokenizer(guide, lexicon)
        return self.search_service.refresh(guide, content_hash)

    def search(
        self, text: str, *, k: int = 5, scope: Scope | None = None, normalized: str | None = None
    ) -> list[Hit]:
        q = normalized if normalized is not None else self.tokenizer.normalize(text)
        if not q:
            return []
        return self.search_service.index.search(
            q, k=k, scope=scope, expansion=self.tokenizer.expansions(q)
        )

    def understand(self, text: str, *, k: int = 5, scope: Scope | None = None) -> Understood:
        q = self.tokenizer.normalize(text)
        parsed = self.classifier.parse(q)
        topics = self.cues.topics(q)
        slots = self.cues.slots(q)
        # An audience word (公司, 个人) is left to the dialogue: "公司派我出差办护照" is a
        # personal item, so filtering on it here would lose the right answer.
        short = (parsed.intent in NON_ITEM_INTENTS and len(q) <= SHORT_ACT) or (
            parsed.intent in FOLLOW_UP_INTENTS and len(q) <= SHORT_FOLLOW_UP
        )
        if short and parsed.confidence >= 0.85:
            # "要多久", "谢谢", "第二个": a short, sure dialogue act names no item, so the
            # search (half the cost of a message) is skipped.
            return Understood(text, q, parsed, [], 0.0, [], topics, slots)
        hits = self.search(text, k=k, scope=scope, normalized=q)
        if hits and "materials" in topics:
            hits = self._without_material(q, hits, k, scope)
        candidates = list(hits)
        conf = match_confidence(hits[0], dict(parsed.ranking).get("out_of_scope", 0.0)) if hits else 0.0
        top = hits[0].score if hits else 0.0
        if conf < 0.5 or (
            parsed.intent in NON_ITEM_INTENTS and parsed.confidence >= 0.5 and top < STRONG_MATCH
        ):
            hits = []
        return Understood(text, q, parsed, hits, conf, candidates, topics, slots,
                          self._parts(q, k, scope) if candidates else [])

    def _without_material(self, q: str, hits: list[Hit], k: int,
                          scope: Scope | None) -> list[Hit]:
        """"去扯证 要带户口本不" asks whether to bring a 户口本, not how to replace one:
        when the best hit is about the material asked of, search again without it."""
        top = hits[0].name
        if not any(w in top for w in REPLACEMENT_WORDS) or LOSS.search(q):
            return hits  # "第一次办护照 要带啥" is about the passport; "户口本丢了" too
        for said, word in self.cues.materials_named(q):
            if word in top or said in top:
                rest = q.replace(said, " ").strip()
                again = self.search(rest, k=k, scope=scope, normalized=rest) if rest else []
                if again and again[0].score >= MATERIAL_FREE_SCORE:
                    return again
        return hits

    def _parts(self, q: str, k: int, scope: Scope | None) -> list[tuple[Hit, ...]]:
        clauses = [c for c in CLAUSE_SPLIT.split(q) if len(c) >= 2]
        if len(clauses) < 2 or len(clauses) > MAX_CLAUSES:
            return []
        parts = []
        for c in clauses:
            best = tuple(h for h in self.search(c, k=PART_K, scope=scope, normalized=c)
                         if h.score >= PART_SCORE)
            if best:
                parts.append(best)
        return parts


class RetrievalOnly:
    """Stands in for an intent model that could not be trained: every message is taken as
    a question about an item and left to retrieval (/health reports it)."""

    def parse(self, text: str) -> ParseResult:
        return ParseResult("ask_item", 1.0, [], [("ask_item", 1.0)])


def match_confidence(top: Hit, p_out_of_scope: float) -> float:
    rel = top.dense + REL_SPARSE * top.sparse - REL_OOS * p_out_of_scope
    return 1.0 / (1.0 + math.exp(-REL_SLOPE * (rel - REL_THRESHOLD)))
