"""The intent model's numbers: fitting them (scikit-learn, imported only here and only on
a cache miss) and applying them to one sentence without scikit-learn.

The fitted model is a handful of arrays (``Arrays``): for each of the two TF-IDF parts its
terms in column order and their idf weights, then the logistic regression's coefficients
(features × classes), intercepts and class names. ``TermWeights`` reproduces
``TfidfVectorizer(sublinear_tf=True)``: counts → 1 + log(count) → × idf → unit length.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nlu.model_cache import Arrays, fingerprint

FORMAT = "intent-model/1"
C = 8.0  # inverse regularisation strength of the logistic regression
MAX_ITER = 2000
NGRAMS = (1, 3)  # character n-gram sizes, inside word boundaries (scikit-learn's char_wb)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def model_key(texts: Sequence[str], labels: Sequence[str],
              tokens: Sequence[Sequence[str]] | None) -> str:
    """Everything the fitted numbers depend on."""
    settings = {"format": FORMAT, "C": C, "max_iter": MAX_ITER, "ngrams": NGRAMS,
                "sklearn": _version("scikit-learn"), "scipy": _version("scipy"),
                "numpy": _version("numpy")}
    return fingerprint([
        Path(__file__).read_bytes(),  # this code's version
        json.dumps(settings, sort_keys=True),
        json.dumps([list(texts), list(labels)], ensure_ascii=False),
        json.dumps(None if tokens is None else [list(t) for t in tokens], ensure_ascii=False),
    ])


def char_wb_ngrams(text: str) -> list[str]:
    """scikit-learn's ``analyzer="char_wb"`` after its default lower-casing: n-grams of
    each whitespace-separated word padded with one space on each side."""
    lo, hi = NGRAMS
    out: list[str] = []
    for w in text.lower().split():
        w = f" {w} "
        size = len(w)
        for n in range(lo, hi + 1):
            if size <= n:  # a short word counts once, whole
                out.append(w)
                break
            out.extend(w[i:i + n] for i in range(size - n + 1))
    return out


class TermWeights:
    """One fitted TF-IDF vectorizer, reduced to its vocabulary and idf weights; ``offset``
    is where its columns start in the combined feature vector."""

    def __init__(self, terms: Sequence[str], idf: npt.NDArray[np.generic], offset: int) -> None:
        self.index = {t: i for i, t in enumerate(terms)}
        self.offset = offset
        self._idf = [float(x) for x in idf]

    def weights(self, terms: Sequence[str]) -> tuple[list[int], list[float]]:
        """Columns and unit-length TF-IDF values of the known terms among ``terms``."""
        counts: dict[int, int] = {}
        for t in terms:
            j = self.index.get(t)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return [], []
        vals = [(1.0 + math.log(c)) * self._idf[j] for j, c in counts.items()]
        norm = math.sqrt(sum(v * v for v in vals))
        return [j + self.offset for j in counts], [v / norm for v in vals]


def fit(texts: Sequence[str], labels: Sequence[str],
        tokens: Sequence[Sequence[str]] | None) -> Arrays:
    """Fit with scikit-learn on one BLAS/OpenMP thread (measured: 8–15 s with the default
    threads on a busy 2-core machine, 1–3 s with one)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True)
        parts = [chars.fit_transform(list(texts))]
        words = None
        if tokens is not None:
            words = TfidfVectorizer(analyzer=_given, sublinear_tf=True)
            parts.append(words.fit_transform([list(t) for t in tokens]))
        x = sparse.hstack(parts).tocsr()
        model = LogisticRegression(C=C, max_iter=MAX_ITER)
        model.fit(x, list(labels))
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # two classes: sigmoid(z) is softmax([0, z])
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    arrays: Arrays = {
        "classes": np.array([str(c) for c in model.classes_]),
        "char_terms": _terms(chars.vocabulary_),
        "char_idf": np.asarray(chars.idf_, dtype=np.float64),
        "coef": np.ascontiguousarray(coef.T),
        "intercept": intercept,
    }
    if words is not None:
        arrays["word_terms"] = _terms(words.vocabulary_)
        arrays["word_idf"] = np.asarray(words.idf_, dtype=np.float64)
    return arrays


def _given(tokens: list[str]) -> list[str]:
    return tokens


def _terms(vocabulary: dict[str, int]) -> npt.NDArray[np.str_]:
    terms = [""] * len(vocabulary)
    for t, j in vocabulary.items():
        terms[j] = t
    return np.array(terms, dtype=np.str_)
