"""The search index over the guide base: sparse BM25 + dense vectors in faiss, fused.

The index is immutable once built; ``SearchService`` swaps a whole new index in with one
reference assignment, so a search never sees a half-built index.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import faiss
import numpy as np
import numpy.typing as npt
from scipy import sparse

from knowledge.embed import Encoder, VectorCache
from knowledge.schema import Audience, Bundle, ServiceItem
from knowledge.validate import GuideBase

Entry = ServiceItem | Bundle
Terms = Callable[[str], list[str]]

# Fusion weights, chosen on the development set
# (benchmarks/retrieval.py prints the figures behind them).
W_SPARSE = 0.3
W_DENSE = 0.7
W_NAMED = 0.06  # the question contains an item's name or alias
W_BUNDLE = 0.1  # the question asks for everything a life event needs
W_FREQUENT = 0.02  # prior for 高频事项: a vague "怎么取公积金" offers 购房/租房/退休 first
# "一起办", "都要办啥", "下一步干啥": the citizen wants the whole 一件事, not one item.
BUNDLE_CUE = re.compile(
    r"一起|一块|一并|一次|一趟|一站|联办|一件事|全部|都要|都得|都办|哪些|啥都|挨个|"
    r"要办啥|要办什么|办哪些|该办|下一步|接下来|第一步|先干啥|干啥|跑哪|哪些部门|几个地方"
)


@dataclass(frozen=True)
class Hit:
    id: str
    name: str
    kind: str
    score: float  # fused ranking score, 0..1
    sparse: float = 0.0
    dense: float = 0.0


@dataclass(frozen=True)
class Scope:
    """Narrows results: 个人 / 法人, or the entries a door-sign place can handle."""

    audience: Audience | None = None
    entry_ids: frozenset[str] | None = None

    def allows(self, entry: Entry) -> bool:
        if self.audience is not None and self.audience not in entry.audience:
            return False
        return self.entry_ids is None or entry.id in self.entry_ids


class BM25:
    """Okapi BM25 over a sparse doc×term matrix of precomputed term weights.

    Built from an iterable of documents, one at a time, into compact numpy arrays: a
    100k-document guide base must not hold millions of Python ints while indexing."""

    def __init__(self, docs: Iterable[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.vocab: dict[str, int] = {}
        col_parts: list[npt.NDArray[np.int32]] = []
        tf_parts: list[npt.NDArray[np.float32]] = []
        lens: list[int] = []
        for doc in docs:
            ids = np.fromiter(
                (self.vocab.setdefault(t, len(self.vocab)) for t in doc), dtype=np.int32
            )
            uniq, counts = np.unique(ids, return_counts=True)
            col_parts.append(uniq.astype(np.int32))
            tf_parts.append(counts.astype(np.float32))
            lens.append(max(len(doc), 1))
        n = len(lens)
        lengths = np.array(lens, dtype=np.float32)
        avgdl = float(lengths.mean()) if n else 1.0
        c = np.concatenate(col_parts) if col_parts else np.zeros(0, dtype=np.int32)
        tf = np.concatenate(tf_parts) if tf_parts else np.zeros(0, dtype=np.float32)
        r = np.repeat(np.arange(n, dtype=np.int32), [len(x) for x in col_parts])
        df = np.bincount(c, minlength=len(self.vocab)).astype(np.float32)
        self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = k1 * (1 - b + b * lengths[r] / avgdl)
        w = self.idf[c] * tf * (k1 + 1) / (tf + norm)
        self.matrix = sparse.csc_matrix((w, (r, c)), shape=(n, len(self.vocab)), dtype=np.float32)

    def scores(self, query: Iterable[str]) -> tuple[npt.NDArray[np.float32], float]:
        """Raw scores per doc, and the best score a doc could reach for this query."""
        ids = sorted({self.vocab[t] for t in query if t in self.vocab})
        if not ids:
            return np.zeros(self.matrix.shape[0], dtype=np.float32), 0.0
        s = np.asarray(self.matrix[:, ids].sum(axis=1)).ravel().astype(np.float32)
        ceiling = float(self.idf[ids].sum() * (self.k1 + 1))
        return s, ceiling


# Above this many entries one passage per entry is embedded (half the build time and
# memory), and faiss uses an inverted-file index instead of exact search.
LARGE = 20_000


def passages(e: Entry, *, large: bool = False) -> list[str]:
    """What the dense index embeds for one entry: its names, and its plain summary."""
    names = "、".join([e.name, *e.aliases])
    if large:
        return [f"{names}：{e.summary}"]
    return [names, f"{e.name}：{e.summary}"]


def _top(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    if k >= len(scores):
        return np.argsort(-scores)
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part])]


def _dense_index(vecs: npt.NDArray[np.float32]) -> faiss.Index:
    n, d = vecs.shape
    index: faiss.Index
    if n <= LARGE * 2:
        index = faiss.IndexFlatIP(d)
    else:
        # ~sqrt(n) lists; 8-bit scalar codes: 4x less memory than floats.
        nlist = int(4 * np.sqrt(n))
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        ivf.train(vecs[np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)])
        ivf.nprobe = 24
        index = ivf
    index.add(vecs)
    return index


@dataclass
class SearchIndex:
    guide: GuideBase
    content_hash: str
    terms: Terms
    encoder: Encoder | None
    cache: VectorCache | None = None
    entries: list[Entry] = field(init=False)
    bm25: BM25 = field(init=False)
    dense: faiss.Index | None = field(init=False, default=None)
    owner: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        self.entries = [*self.guide.items.values(), *self.guide.bundles.values()]
        self.surfaces: dict[str, list[int]] = {}
        for i, e in enumerate(self.entries):
            for s in {e.name, *e.aliases}:
                if len(s) >= 2:
                    self.surfaces.setdefault(s.lower(), []).append(i)
        self.longest_surface = max((len(s) for s in self.surfaces), default=0)
        self.is_bundle = np.array([e.kind == "bundle" for e in self.entries], dtype=bool)
        self.frequent = np.array([e.high_frequency for e in self.entries], dtype=np.float32)
        # Names and aliases count three times: they are how citizens name an item.
        self.bm25 = BM25(
            self.terms(" ".join([e.name, *e.aliases])) * 3 + self.terms(e.summary)
            for e in self.entries
        )
        texts: list[str] = []
        owners: list[int] = []
        large = len(self.entries) > LARGE
        for i, e in enumerate(self.entries):
            for p in passages(e, large=large):
                texts.append(p)
                owners.append(i)
        self.owner = np.array(owners, dtype=np.int64)
        if self.encoder is not None:
            vecs = self.cache.encode(texts) if self.cache else self.encoder.encode(texts)
            self.dense = _dense_index(vecs)
            del vecs

    def _named(self, query: str) -> npt.NDArray[np.float32]:
        """Entries whose full name or an alias the question contains (longer = stronger)."""
        out = np.zeros(len(self.entries), dtype=np.float32)
        n = len(query)
        for size in range(min(self.longest_surface, n), 1, -1):
            for start in range(n - size + 1):
                for i in self.surfaces.get(query[start : start + size], ()):
                    out[i] = max(out[i], min(1.0, size / 4))
        return out

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        scope: Scope | None = None,
        expansion: Sequence[str] = (),
        query_vector: npt.NDArray[np.float32] | None = None,
    ) -> list[Hit]:
        n = len(self.entries)
        if n == 0:
            return []
        q_terms = self.terms(query) + [t for x in expansion for t in self.terms(x)]
        raw, ceiling = self.bm25.scores(q_terms)
        sparse_s = raw / ceiling if ceiling > 0 else raw
        dense_s = np.zeros(n, dtype=np.float32)
        if self.dense is not None and self.encoder is not None:
            qv = query_vector if query_vector is not None else self.encoder.encode([query])
            depth = min(self.dense.ntotal, max(64, 4 * k))
            sims, idx = self.dense.search(qv.reshape(1, -1), depth)
            for sim, j in zip(sims[0], idx[0], strict=True):
                if j < 0:
                    continue
                o = self.owner[j]
                dense_s[o] = max(dense_s[o], float(sim))
        fused = W_SPARSE * np.minimum(sparse_s, 1.0) + W_DENSE * np.clip(dense_s, 0, 1)
        fused = fused + W_NAMED * self._named(query) + W_FREQUENT * self.frequent
        if BUNDLE_CUE.search(query):
            fused = fused + W_BUNDLE * self.is_bundle
        fused = np.minimum(fused, 1.0)
        # Only the best few need sorting: argpartition keeps 100k-entry searches cheap.
        depth = k if scope is None else min(n, max(8 * k, 200))
        order = _top(fused, depth)
        if scope is not None and len(order) < n:
            allowed = [i for i in order if scope.allows(self.entries[int(i)])]
            if len(allowed) < k:  # a narrow scope: fall back to a full sort
                order = np.argsort(-fused)
        hits: list[Hit] = []
        for i in order:
            e = self.entries[int(i)]
            if scope is not None and not scope.allows(e):
                continue
            hits.append(
                Hit(e.id, e.name, e.kind, float(fused[i]), float(sparse_s[i]), float(dense_s[i]))
            )
            if len(hits) >= k:
                break
        return hits


class SearchService:
    """Holds the current index; rebuilds replace it atomically."""

    def __init__(self, build: Callable[[GuideBase, str], SearchIndex]) -> None:
        self._build = build
        self._index: SearchIndex | None = None
        self._lock = threading.Lock()

    @property
    def index(self) -> SearchIndex:
        if self._index is None:
            raise RuntimeError("search index not built yet")
        return self._index

    def refresh(self, guide: GuideBase, content_hash: str) -> bool:
        """Rebuild when the guide content changed; returns True when it did."""
        with self._lock:
            if self._index is not None and self._index.content_hash == content_hash:
                return False
            new = self._build(guide, content_hash)
            self._index = new  # one reference assignment: readers see old or new, never half
            return True
