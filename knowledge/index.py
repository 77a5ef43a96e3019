"""The search index over the guide base: sparse BM25 + dense vectors in faiss, fused.

The index is immutable once built; ``SearchService`` swaps a whole new index in with one
reference assignment, so a search never sees a half-built index.
"""

from __future__ import annotations

import re
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import overload

import faiss
import numpy as np
import numpy.typing as npt
from scipy import sparse

from knowledge import memory
from knowledge.embed import Encoder, VectorCache, Vectors
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
# Citizens' earlier wordings of an item (nlu/data/questions.yml): the closer the question is
# to one of them, above a floor of plain topical likeness, the more that item gains.
# Chosen by cross-validation over the development sets, one set held out at a time
# (benchmarks/examples_cv.py prints it).
W_EXAMPLE = 0.4
EXAMPLE_FLOOR = 0.6
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

    Built from an iterable of documents, one at a time, into flat C arrays and then one
    CSC matrix: a 100k-document guide base must not hold millions of Python ints, or a
    numpy array per document, while indexing."""

    def __init__(self, docs: Iterable[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.vocab: dict[str, int] = {}
        cols, tfs, lens, widths = array("i"), array("f"), array("f"), array("q", [0])
        for doc in docs:
            counts = Counter(self.vocab.setdefault(t, len(self.vocab)) for t in doc)
            cols.extend(counts.keys())
            tfs.extend(counts.values())
            lens.append(max(len(doc), 1))
            widths.append(widths[-1] + len(counts))
        n, vocab = len(lens), len(self.vocab)
        lengths = np.frombuffer(lens, dtype=np.float32) if n else np.ones(0, np.float32)
        avgdl = float(lengths.mean()) if n else 1.0
        c = np.frombuffer(cols, dtype=np.int32) if cols else np.zeros(0, np.int32)
        tf = np.frombuffer(tfs, dtype=np.float32) if tfs else np.zeros(0, np.float32)
        indptr = np.frombuffer(widths, dtype=np.int64)
        df = np.bincount(c, minlength=vocab).astype(np.float32)
        self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        # w = idf · tf·(k1+1) / (tf + k1·(1 − b + b·len/avgdl)), computed in place
        w = np.repeat(k1 * (1 - b + b * lengths / avgdl), np.diff(indptr)).astype(np.float32)
        w += tf
        np.divide(tf * (k1 + 1), w, out=w)
        w *= self.idf[c]
        rows = sparse.csr_matrix((w, c, indptr), shape=(n, vocab), dtype=np.float32)
        del w, c, tf, cols, tfs
        self.matrix = rows.tocsc()

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


class Passages(Sequence[str]):
    """Every entry's passages, made when asked for rather than held: passage j belongs
    to entry j // per_entry."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = entries
        self.large = len(entries) > LARGE
        self.per_entry = 1 if self.large else 2

    def __len__(self) -> int:
        return len(self.entries) * self.per_entry

    @overload
    def __getitem__(self, j: int) -> str: ...
    @overload
    def __getitem__(self, j: slice) -> Sequence[str]: ...
    def __getitem__(self, j: int | slice) -> str | Sequence[str]:
        if isinstance(j, slice):
            return [self[x] for x in range(*j.indices(len(self)))]
        if not 0 <= j < len(self):
            raise IndexError(j)
        return passages(self.entries[j // self.per_entry], large=self.large)[j % self.per_entry]


def _top(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    if k >= len(scores):
        return np.argsort(-scores)
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part])]


Blocks = Callable[[npt.NDArray[np.int64] | None], Iterator[tuple[npt.NDArray[np.int64], Vectors]]]
FLAT_MAX = LARGE * 2  # vectors; exact search up to here
TRAIN_PER_LIST = 39  # faiss's minimum of training points per inverted list


def _dense_index(n: int, dim: int, blocks: Blocks) -> faiss.Index:
    """A faiss index over ``n`` vectors that arrive block by block from ``blocks(order)``;
    ids are the passage numbers. Never holds all the vectors at once."""
    if n <= FLAT_MAX:
        flat = faiss.IndexFlatIP(dim)
        for _, vecs in blocks(None):  # in passage order: position = id
            flat.add(vecs)
            memory.release()
        return flat
    # ~sqrt(n) lists; 8-bit scalar codes of the vectors themselves (not of residuals:
    # the vectors are unit length, and training on residuals needs another copy of the
    # sample): 4x less memory than floats. The training sample comes first in the stream,
    # so it is encoded (or read) only once.
    nlist = int(np.sqrt(n))
    sample = np.random.default_rng(0).choice(n, min(n, TRAIN_PER_LIST * nlist), replace=False)
    order = np.concatenate([sample, np.setdiff1d(np.arange(n), sample)]).astype(np.int64)
    ivf = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit,
        faiss.METRIC_INNER_PRODUCT,
    )
    ivf.by_residual = False
    ivf.nprobe = 16
    train: Vectors | None = np.empty((len(sample), dim), dtype=np.float32)
    filled = 0
    for rows, vecs in blocks(order):
        take = 0
        if train is not None:
            take = min(len(rows), len(sample) - filled)
            train[filled : filled + take] = vecs[:take]
            filled += take
            if filled == len(sample):
                ivf.train(train)
                ivf.add_with_ids(train, sample.astype(np.int64))
                train = None
        if take < len(rows):
            ivf.add_with_ids(vecs[take:], rows[take:])
        # Encoding frees many small buffers per block; give them back as we go, or the
        # process keeps ~180 MB of them at 100k passages.
        memory.release()
    return ivf


@dataclass
class SearchIndex:
    guide: GuideBase
    content_hash: str
    terms: Terms
    encoder: Encoder | None
    cache: VectorCache | None = None
    # Entry id → citizens' wordings of it (already normalised); ids not in the guide are skipped.
    examples: Mapping[str, Sequence[str]] = field(default_factory=dict)
    example_cache: VectorCache | None = None
    entries: list[Entry] = field(init=False)
    bm25: BM25 = field(init=False)
    dense: faiss.Index | None = field(init=False, default=None)
    owner: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        self.entries = [*self.guide.items.values(), *self.guide.bundles.values()]
        # Name or alias (lower case) → entry: one int each; the few shared names → a list.
        self.surface: dict[str, int] = {}
        self.shared_surface: dict[str, list[int]] = {}
        for i, e in enumerate(self.entries):
            for name in {e.name, *e.aliases}:
                if len(name) < 2:
                    continue
                key = name.lower()
                key = name if key == name else key  # no copy of every Chinese name
                if key in self.shared_surface:
                    self.shared_surface[key].append(i)
                elif self.surface.setdefault(key, i) != i:
                    self.shared_surface[key] = [self.surface.pop(key), i]
        self.longest_surface = max(
            (len(s) for s in [*self.surface, *self.shared_surface]), default=0
        )
        self.is_bundle = np.array([e.kind == "bundle" for e in self.entries], dtype=bool)
        self.frequent = np.array([e.high_frequency for e in self.entries], dtype=np.float32)
        texts = Passages(self.entries)
        self.owner = np.arange(len(texts), dtype=np.int64) // texts.per_entry
        # The dense index first: its build needs the most working memory, so it runs
        # before the BM25 matrix exists (peak RSS, benchmarks/retrieval.py).
        if self.encoder is not None:
            self.dense = _dense_index(len(texts), self.encoder.dim, self._blocks(texts))
        # Names and aliases count three times: they are how citizens name an item.
        self.bm25 = BM25(
            self.terms(" ".join([e.name, *e.aliases])) * 3 + self.terms(e.summary)
            for e in self.entries
        )
        self._index_examples()
        memory.release()

    def _index_examples(self) -> None:
        """Vectors of the example wordings, one row each, and the entry each belongs to."""
        self.example_vectors: Vectors | None = None
        self.example_owner = np.zeros(0, dtype=np.int64)
        if self.encoder is None or not self.examples:
            return
        at = {e.id: i for i, e in enumerate(self.entries)}
        texts: list[str] = []
        owners: list[int] = []
        for entry_id, said in self.examples.items():
            if entry_id in at:
                texts.extend(said)
                owners.extend([at[entry_id]] * len(said))
        if not texts:
            return
        source = self.example_cache or self.encoder
        self.example_vectors = source.encode(texts)
        self.example_owner = np.asarray(owners, dtype=np.int64)

    def _example_scores(self, qv: Vectors) -> npt.NDArray[np.float32]:
        out = np.zeros(len(self.entries), dtype=np.float32)
        if self.example_vectors is not None:
            np.maximum.at(out, self.example_owner, self.example_vectors @ qv.reshape(-1))
        return out

    def _blocks(self, texts: Sequence[str]) -> Blocks:
        cache, encoder = self.cache, self.encoder
        assert encoder is not None

        def blocks(
            order: npt.NDArray[np.int64] | None,
        ) -> Iterator[tuple[npt.NDArray[np.int64], Vectors]]:
            if cache is not None:
                yield from cache.stream(texts, order)
                return
            order = np.arange(len(texts), dtype=np.int64) if order is None else order
            for i in range(0, len(order), VectorCache.BLOCK):
                rows = order[i : i + VectorCache.BLOCK]
                yield rows, encoder.encode([texts[j] for j in rows])

        return blocks

    def _named(self, query: str) -> npt.NDArray[np.float32]:
        """Entries whose full name or an alias the question contains (longer = stronger)."""
        out = np.zeros(len(self.entries), dtype=np.float32)
        n = len(query)
        for size in range(min(self.longest_surface, n), 1, -1):
            for start in range(n - size + 1):
                part = query[start : start + size]
                one = self.surface.get(part)
                for i in self.shared_surface.get(part, ()) if one is None else (one,):
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
        example_s = np.zeros(n, dtype=np.float32)
        if self.dense is not None and self.encoder is not None:
            qv = query_vector if query_vector is not None else self.encoder.encode([query])
            example_s = self._example_scores(qv)
            depth = min(self.dense.ntotal, max(64, 4 * k))
            sims, idx = self.dense.search(qv.reshape(1, -1), depth)
            for sim, j in zip(sims[0], idx[0], strict=True):
                if j < 0:
                    continue
                o = self.owner[j]
                dense_s[o] = max(dense_s[o], float(sim))
        fused = W_SPARSE * np.minimum(sparse_s, 1.0) + W_DENSE * np.clip(dense_s, 0, 1)
        fused = fused + W_NAMED * self._named(query) + W_FREQUENT * self.frequent
        fused = fused + W_EXAMPLE * np.maximum(example_s - EXAMPLE_FLOOR, 0)
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
            del new
        memory.release()  # the old index, once no search holds it any more
        return True
