"""Trained models kept on disk between runs, named by a hash of everything they were
trained from (the training data, the tokens the tokenizer made of it, the hyperparameters,
the library versions and this format's version).

A hit replaces seconds of training at every start with a ~10 ms read. Files are plain
``.npz`` arrays read with ``allow_pickle=False``: a cache directory someone else can write
to can corrupt an answer but never run code. The directory is ``$DAOBAN_CACHE_DIR/models``
(default ``~/.cache/daoban/models``); ``DAOBAN_CACHE_DIR=off`` turns the cache off. An
unwritable or unreadable directory only means no cache: nothing fails because of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

CACHE_ENV = "DAOBAN_CACHE_DIR"
OFF = frozenset({"off", "0", "none", "false"})
KEEP = 6  # files kept per kind of model: older ones are deleted when a new one is written

Arrays = dict[str, npt.NDArray[np.generic]]


def cache_root() -> Path | None:
    """``$DAOBAN_CACHE_DIR`` or ``$XDG_CACHE_HOME/daoban`` or ``~/.cache/daoban``; None: off."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() in OFF:
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    try:
        base = Path(xdg) if xdg else Path.home() / ".cache"
    except RuntimeError:  # no home directory (a locked-down service account)
        return None
    return base / "daoban"


def models_dir() -> Path | None:
    root = cache_root()
    return None if root is None else root / "models"


def fingerprint(parts: Iterable[str | bytes]) -> str:
    """A hash of ``parts`` in order, each length-prefixed (so ["ab","c"] ≠ ["a","bc"])."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:20]


def _path(kind: str, key: str) -> Path | None:
    d = models_dir()
    return None if d is None else d / f"{kind}-{key}.npz"


def load(kind: str, key: str) -> Arrays | None:
    """The arrays stored under ``kind``/``key``, or None (absent, unreadable, damaged)."""
    path = _path(kind, key)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays: Arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("ignoring the damaged model cache file %s: %s", path, exc)
        return None
    return arrays


def save(kind: str, key: str, arrays: Arrays) -> Path | None:
    """Write atomically (a temporary file renamed into place, so a concurrent reader sees
    the whole file or none); None when the directory cannot be written."""
    path = _path(kind, key)
    if path is None:
        return None
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{kind}-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.chmod(tmp, 0o644)  # as an ordinary new file (mkstemp makes it 0600)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.info("no model cache (%s): %s", path.parent, exc)
        return None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    _prune(path.parent, kind, keep=path)
    return path


def _prune(directory: Path, kind: str, keep: Path) -> None:
    try:
        old = sorted(
            (p for p in directory.glob(f"{kind}-*.npz") if p != keep),
            key=lambda p: p.stat().st_mtime, reverse=True,
        )
        for p in old[KEEP - 1:]:
            p.unlink(missing_ok=True)
    except OSError:
        pass
