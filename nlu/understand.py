"""Understanding a question end to end: normalise → intent + entities → retrieval."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import faiss

from knowledge.embed import Encoder, EncoderUnavailable, UseEncoder, VectorCache
from knowledge.index import NO_MATCH, Hit, Scope, SearchIndex, SearchService
from knowledge.schema import Audience
from knowledge.validate import GuideBase
from nlu.intents import EmbeddedClassifier, Entity, IntentClassifier, ParseResult
from nlu.tokenizer import Tokenizer

log = logging.getLogger(__name__)

# Acts that are about the conversation itself, not about which item.
NON_ITEM_INTENTS = frozenset(
    {"greet", "thanks", "goodbye", "affirm", "deny", "dont_know", "choose",
     "request_human", "complain", "out_of_scope"}
)
# A non-item act still gets items when retrieval is this sure ("社保卡丢了，转人工").
STRONG_MATCH = 0.62


@dataclass(frozen=True)
class Understood:
    text: str
    normalized: str
    intent: ParseResult
    hits: list[Hit] = field(default_factory=list)  # empty: no match

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
        encoder: Encoder | None | bool = True,
        classifier: IntentClassifier | None = None,
    ) -> None:
        faiss.omp_set_num_threads(1)  # single queries: threads only add overhead here
        self.tokenizer = Tokenizer(guide)
        if encoder is True:
            try:
                self.encoder: Encoder | None = UseEncoder()
            except EncoderUnavailable as exc:
                log.warning("dense retrieval disabled: %s", exc)
                self.encoder = None
        else:
            self.encoder = encoder or None
        self._cache = (
            VectorCache(index_dir, self.encoder) if index_dir and self.encoder else None
        )
        self.classifier = classifier or EmbeddedClassifier(words=self.tokenizer.plain_terms)
        self.search_service = SearchService(self._build)
        self.search_service.refresh(guide, content_hash)

    def _build(self, guide: GuideBase, content_hash: str) -> SearchIndex:
        return SearchIndex(guide, content_hash, self.tokenizer.terms, self.encoder, self._cache)

    def refresh(self, guide: GuideBase, content_hash: str) -> bool:
        if self.tokenizer.vocabulary != Tokenizer(guide).vocabulary:
            self.tokenizer = Tokenizer(guide)
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
        aud = next((e.value for e in parsed.entities if e.entity == "audience"), None)
        if scope is None and aud in ("个人", "企业"):
            scope = Scope(audience=Audience.PERSON if aud == "个人" else Audience.LEGAL)
        hits = self.search(text, k=k, scope=scope, normalized=q)
        top = hits[0].score if hits else 0.0
        if top < NO_MATCH or (
            parsed.intent in NON_ITEM_INTENTS and parsed.confidence >= 0.5 and top < STRONG_MATCH
        ):
            hits = []
        return Understood(text, q, parsed, hits)
