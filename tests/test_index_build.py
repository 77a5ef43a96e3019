"""Building the search index for large guide bases: the streamed vector cache, the
inverted-file faiss index, the BM25 matrix and the shared pydantic bookkeeping."""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
import pytest

from knowledge import index as index_mod
from knowledge.embed import VectorCache, Vectors
from knowledge.index import BM25, _dense_index
from knowledge.schema import ServiceItem
from knowledge.validate import load_guide


class HashEncoder:
    """Deterministic unit vectors from a text's hash: an encoder without a model."""

    model_id = "test-hash-encoder"
    dim = 16

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.encoded += len(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            out[i] = np.random.default_rng(seed).standard_normal(self.dim)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def texts(n: int) -> list[str]:
    return [f"事项{i}" for i in range(n)]


def test_stream_follows_the_order_and_reuses_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(VectorCache, "BLOCK", 7)  # several blocks, a short last one
    enc = HashEncoder()
    ts = texts(30)
    want = enc.encode(ts)
    enc.encoded = 0
    order = np.random.default_rng(1).permutation(30).astype(np.int64)
    cache = VectorCache(tmp_path, enc)
    got_rows = []
    for rows, vecs in cache.stream(ts, order):
        np.testing.assert_allclose(vecs, want[rows])
        got_rows.extend(rows.tolist())
    assert got_rows == order.tolist()
    assert (cache.hits, cache.misses, enc.encoded) == (0, 30, 30)
    mtime = os.stat(cache.path).st_mtime_ns

    # Unchanged texts: everything is read back, nothing encoded, the file not rewritten.
    again = VectorCache(tmp_path, enc)
    np.testing.assert_allclose(again.encode(ts), want)
    assert (again.hits, again.misses, enc.encoded) == (30, 0, 30)
    assert os.stat(cache.path).st_mtime_ns == mtime

    # One text changed and one removed: only the new one is encoded; the cache shrinks.
    edited = [*ts[:10], "新事项", *ts[12:]]
    third = VectorCache(tmp_path, enc)
    np.testing.assert_allclose(third.encode(edited), enc.encode(edited))
    assert (third.hits, third.misses) == (28, 1)
    assert len(np.load(cache.path)) == 29
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-model"])
def test_a_damaged_cache_is_rebuilt_not_trusted(tmp_path: Path, damage: str) -> None:
    enc = HashEncoder()
    ts = texts(20)
    cache = VectorCache(tmp_path, enc)
    cache.encode(ts)
    if damage == "garbage":
        cache.path.write_bytes(b"garbage")
    elif damage == "truncated":
        cache.path.write_bytes(cache.path.read_bytes()[:-100])
    else:  # same file name, vectors of another width
        np.save(cache.path, np.zeros(20, dtype=[("key", "S12"), ("vec", "<f4", (8,))]))
    fresh = VectorCache(tmp_path, enc)
    np.testing.assert_allclose(fresh.encode(ts), enc.encode(ts))
    assert fresh.misses == 20
    assert VectorCache(tmp_path, enc).encode(ts).shape == (20, 16)


def test_stream_stopped_half_way_leaves_the_old_cache(tmp_path: Path) -> None:
    enc = HashEncoder()
    cache = VectorCache(tmp_path, enc)
    cache.encode(texts(5))
    before = cache.path.read_bytes()
    VectorCache.BLOCK, old = 2, VectorCache.BLOCK
    try:
        stream = VectorCache(tmp_path, enc).stream(texts(9))
        next(stream)
        stream.close()  # the consumer gave up (an error while building)
    finally:
        VectorCache.BLOCK = old
    assert cache.path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


def blocks_of(vecs: Vectors, size: int = 50) -> index_mod.Blocks:
    def blocks(order: np.ndarray | None):  # type: ignore[no-untyped-def]
        order = np.arange(len(vecs), dtype=np.int64) if order is None else order
        for i in range(0, len(order), size):
            rows = order[i : i + size]
            yield rows, vecs[rows]

    return blocks


@pytest.mark.parametrize("flat_max", [10_000, 100])
def test_dense_index_ids_are_passage_numbers(
    monkeypatch: pytest.MonkeyPatch, flat_max: int
) -> None:
    monkeypatch.setattr(index_mod, "FLAT_MAX", flat_max)
    vecs = HashEncoder().encode(texts(2000))
    index = _dense_index(len(vecs), 16, blocks_of(vecs))
    assert index.ntotal == 2000
    if flat_max == 100:
        assert isinstance(index, faiss.IndexIVFScalarQuantizer)
        assert index.nlist == int(math.sqrt(2000))
        index.nprobe = index.nlist  # every list: exact up to the 8-bit codes
    else:
        assert isinstance(index, faiss.IndexFlatIP)
    _, ids = index.search(vecs[::37], 1)
    assert ids[:, 0].tolist() == list(range(0, 2000, 37))


def reference_bm25(docs: list[list[str]], query: list[str], k1: float = 1.2,
                   b: float = 0.75) -> list[float]:
    n = len(docs)
    avgdl = sum(max(len(d), 1) for d in docs) / n
    df = Counter(t for d in docs for t in set(d))
    out = []
    for d in docs:
        tf = Counter(d)
        s = 0.0
        for t in set(query):
            if t in tf:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                norm = k1 * (1 - b + b * max(len(d), 1) / avgdl)
                s += idf * tf[t] * (k1 + 1) / (tf[t] + norm)
        out.append(s)
    return out


def test_bm25_matches_the_textbook_formula() -> None:
    docs = [["身份证", "补领", "身份证"], ["社保卡", "补领"], [], ["结婚", "登记", "结婚", "登记", "户口"]]
    bm = BM25(iter(docs))
    for q in (["身份证", "补领"], ["结婚"], ["户口", "登记", "登记"], ["没有的词"]):
        got, ceiling = bm.scores(q)
        np.testing.assert_allclose(got, reference_bm25(docs, q), rtol=1e-5)
        assert (ceiling > 0) == any(t in bm.vocab for t in q)


def test_validated_records_share_their_field_name_sets() -> None:
    guide = load_guide()
    groups: dict[frozenset[str], list[ServiceItem]] = {}
    for item in guide.items.values():
        groups.setdefault(frozenset(item.model_fields_set), []).append(item)
    assert max(len(g) for g in groups.values()) > 10
    for members in groups.values():
        assert len({id(m.__pydantic_fields_set__) for m in members}) == 1
    a = next(iter(guide.items.values()))
    shared = set(a.model_fields_set)
    copy = a.model_copy(update={"name": "改过的名字"})
    assert copy.name == "改过的名字" and a.name != "改过的名字"
    assert a.model_fields_set == shared  # the shared set was not changed by the copy
    with pytest.raises(ValueError, match="frozen"):
        a.name = "x"
    assert a.model_fields_set == shared
    dumped = a.model_dump(exclude_unset=True)
    assert set(dumped) == shared


def test_a_passage_vector_depends_on_its_text_alone(tmp_path: Path) -> None:
    """Cached vectors are keyed by text, and queries are encoded one at a time: a vector
    must not depend on which other passages were encoded beside it."""
    from knowledge.embed import UseEncoder

    enc = UseEncoder()
    ts = ["居民身份证补领", "结婚登记需要带户口本和身份证，双方一起到婚姻登记处", "社保卡",
          "住房公积金提取：租房、购房、退休都可以申请"]
    together = VectorCache(tmp_path, enc).encode(ts)
    for text, vec in zip(ts, together, strict=True):
        np.testing.assert_allclose(vec, enc.encode([text])[0], atol=1e-6)


def test_parallel_encoding_gives_the_same_vectors() -> None:
    from knowledge.embed import UseEncoder

    ts = [f"第{i}个事项：办理{i % 7}号窗口的证明" for i in range(UseEncoder.PARALLEL_FROM + 9)]
    one = UseEncoder(workers=1).encode(ts)
    two = UseEncoder(workers=2).encode(ts)
    np.testing.assert_array_equal(one, two)
    assert np.all(np.abs(np.linalg.norm(two, axis=1) - 1) < 1e-5)
