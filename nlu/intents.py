"""Dialogue acts and entities.

The embedded classifier is trained from ``nlu/data/nlu.yml`` (Rasa 3 format, so the same
file trains Rasa): TF-IDF over character 1–3-grams and jieba words, logistic regression.
Entities (区/街道, 个人/企业) come from the file's lookup tables and synonyms.

Training takes seconds (scikit-learn, one BLAS thread), so the fitted weights are kept on
disk by the hash of what they were fitted from (``nlu/model_cache.py``): a start with the
same data reads them instead, and never imports scikit-learn (~3 s and ~60 MB of modules).
Parsing is the fitted model applied by hand (``TermWeights``): the same numbers as
scikit-learn's ``TfidfVectorizer`` + ``LogisticRegression.predict_proba``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml

from nlu import model_cache
from nlu.intent_model import TermWeights, char_wb_ngrams, fit, model_key
from nlu.model_cache import Arrays

NLU_FILE = Path(__file__).parent / "data" / "nlu.yml"
_ENTITY = re.compile(r"\[([^\]]+)\]\((\w+)(?::[^)]+)?\)|\[([^\]]+)\]\{[^}]*\}")

INTENTS = (
    "ask_item", "ask_materials", "ask_time", "ask_fee", "ask_location", "ask_online",
    "ask_conditions", "affirm", "deny", "dont_know", "choose", "request_human", "complain",
    "thanks", "goodbye", "greet", "out_of_scope",
)


@dataclass(frozen=True)
class Entity:
    entity: str  # district / street / audience
    value: str  # canonical value
    text: str  # as written


@dataclass(frozen=True)
class ParseResult:
    intent: str
    confidence: float
    entities: list[Entity] = field(default_factory=list)
    ranking: list[tuple[str, float]] = field(default_factory=list)


class IntentClassifier(Protocol):
    def parse(self, text: str) -> ParseResult: ...


@dataclass(frozen=True)
class TrainingData:
    examples: list[tuple[str, str]]  # (text, intent)
    lookups: dict[str, list[str]]
    synonyms: dict[str, str]  # surface form -> canonical value


def strip_entities(text: str) -> str:
    return _ENTITY.sub(lambda m: m.group(1) or m.group(3), text)


def load_training(path: Path = NLU_FILE) -> TrainingData:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    examples: list[tuple[str, str]] = []
    lookups: dict[str, list[str]] = {}
    synonyms: dict[str, str] = {}
    for block in raw.get("nlu") or []:
        lines = [
            ln.strip()[2:].strip()
            for ln in str(block.get("examples", "")).splitlines()
            if ln.strip().startswith("- ")
        ]
        if "intent" in block:
            examples.extend((strip_entities(t), str(block["intent"])) for t in lines if t)
        elif "lookup" in block:
            lookups[str(block["lookup"])] = lines
        elif "synonym" in block:
            for t in lines:
                synonyms[t] = str(block["synonym"])
    return TrainingData(examples, lookups, synonyms)


class EntityExtractor:
    def __init__(self, data: TrainingData) -> None:
        table: list[tuple[str, str, str]] = []
        for name, values in data.lookups.items():
            for v in values:
                table.append((v, name, v))
                # 道里区 is also said 道里; 兆麟街道 is also said 兆麟街.
                for suffix in ("区", "街道"):
                    if v.endswith(suffix) and len(v) - len(suffix) >= 2:
                        table.append((v[: -len(suffix)], name, v))
        for surface, value in data.synonyms.items():
            table.append((surface, "audience", value))
        for value in ("个人", "企业"):
            table.append((value, "audience", value))
        self._table = sorted(set(table), key=lambda t: -len(t[0]))

    def extract(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        taken = [False] * len(text)
        for surface, name, value in self._table:
            start = text.find(surface)
            while start >= 0:
                end = start + len(surface)
                if not any(taken[start:end]):
                    for i in range(start, end):
                        taken[i] = True
                    if not any(e.entity == name and e.value == value for e in found):
                        found.append(Entity(name, value, surface))
                start = text.find(surface, end)
        # 我/自己 alone are too weak to say "个人" unless nothing else is said.
        return [e for e in found if not (e.entity == "audience" and e.text in ("我", "自己"))]


class EmbeddedClassifier:
    """Character n-gram + word TF-IDF, logistic regression: fitted once per training data
    and kept in the model cache; parsing one sentence takes well under a millisecond."""

    def __init__(
        self,
        data: TrainingData | None = None,
        words: Callable[[str], list[str]] | None = None,
        *,
        cache: bool = True,
    ) -> None:
        self.data = data or load_training()
        self._words = words
        texts = [t for t, _ in self.data.examples]
        labels = [i for _, i in self.data.examples]
        # The words analyzer's output on the training texts is part of the key: a changed
        # dictionary or tokenizer means another model.
        tokens = [words(t) for t in texts] if words else None
        key = model_key(texts, labels, tokens)
        arrays = model_cache.load("intents", key) if cache else None
        self.from_cache = arrays is not None
        if arrays is None:
            arrays = fit(texts, labels, tokens)
            if cache:
                model_cache.save("intents", key, arrays)
        self._use(arrays)
        self.entities = EntityExtractor(self.data)

    def _use(self, a: Arrays) -> None:
        self.classes: list[str] = [str(c) for c in a["classes"].tolist()]
        self._chars = TermWeights(a["char_terms"].tolist(), a["char_idf"], 0)
        self._wordterms = (
            TermWeights(a["word_terms"].tolist(), a["word_idf"], len(self._chars.index))
            if self._words is not None and "word_terms" in a else None
        )
        self._coef = np.ascontiguousarray(a["coef"], dtype=np.float64)  # (features, classes)
        self._intercept = np.asarray(a["intercept"], dtype=np.float64)

    def parse(self, text: str) -> ParseResult:
        cols, vals = self._chars.weights(char_wb_ngrams(text))
        if self._wordterms is not None and self._words is not None:
            wcols, wvals = self._wordterms.weights(self._words(text))
            cols, vals = cols + wcols, vals + wvals
        logits = self._intercept.copy()
        if cols:
            logits += np.asarray(vals) @ self._coef[cols]
        logits -= logits.max()
        probs = np.exp(logits)
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")
        ranking = [(self.classes[i], float(probs[i])) for i in order[:5]]
        return ParseResult(ranking[0][0], ranking[0][1], self.entities.extract(text), ranking)
