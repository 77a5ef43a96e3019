"""Dialogue acts and entities.

The embedded classifier is trained at start-up from ``nlu/data/nlu.yml`` (Rasa 3 format, so
the same file trains Rasa): TF-IDF over character 1–3-grams and jieba words, logistic
regression. Entities (区/街道, 个人/企业) come from the file's lookup tables and synonyms.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import sklearn
import yaml
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

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
    """Character n-gram + word TF-IDF, logistic regression. Trains in well under a second."""

    def __init__(
        self,
        data: TrainingData | None = None,
        words: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.data = data or load_training()
        self._words = words
        texts = [t for t, _ in self.data.examples]
        labels = [i for _, i in self.data.examples]
        self._chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
        self._wordvec = (
            TfidfVectorizer(analyzer=self._analyze, sublinear_tf=True) if words else None
        )
        x = self._features(texts, fit=True)
        self._model = LogisticRegression(C=8.0, max_iter=2000)
        self._model.fit(x, labels)
        self.classes: list[str] = [str(c) for c in self._model.classes_]
        self._coef_t = sparse.csr_matrix(self._model.coef_.T)
        self._intercept = self._model.intercept_.astype(np.float64)
        self.entities = EntityExtractor(self.data)

    def _analyze(self, text: str) -> list[str]:
        assert self._words is not None
        return self._words(text)

    def _features(self, texts: list[str], *, fit: bool = False) -> Any:
        parts = [self._chars.fit_transform(texts) if fit else self._chars.transform(texts)]
        if self._wordvec is not None:
            parts.append(
                self._wordvec.fit_transform(texts) if fit else self._wordvec.transform(texts)
            )
        return sparse.hstack(parts).tocsr()

    def parse(self, text: str) -> ParseResult:
        # The linear model by hand: sklearn's per-call input validation costs more than
        # the arithmetic for one short sentence (measured: 1.9 → 0.6 ms).
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            x = self._features([text])
        logits = (x @ self._coef_t).toarray().ravel() + self._intercept
        logits -= logits.max()
        probs = np.exp(logits)
        probs /= probs.sum()
        order = np.argsort(-probs)
        ranking = [(self.classes[i], float(probs[i])) for i in order[:5]]
        return ParseResult(ranking[0][0], ranking[0][1], self.entities.extract(text), ranking)
