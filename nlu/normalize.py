"""Normalise a citizen's text before anything else reads it.

Full-width → half-width, traditional → simplified, miswritten characters and homophones
(身分证, 公基金, 社保咔), and a question typed entirely in pinyin ("shen fen zheng diu le")
turned back into characters using the guide base's own vocabulary.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import zhconv

_SPACE = re.compile(r"\s+")
_LATIN = re.compile(r"[a-zA-Z]")
_PINYIN_TEXT = re.compile(r"^[a-zA-Z\s',.!?，。！？]+$")


def to_halfwidth(text: str) -> str:
    # NFKC folds full-width letters, digits and punctuation; keep Chinese punctuation
    # that NFKC leaves alone anyway.
    return unicodedata.normalize("NFKC", text)


class Normalizer:
    """Stateless after construction; safe to share between threads."""

    def __init__(
        self,
        typos: Mapping[str, str],
        vocabulary: Iterable[str],
        syllables: Iterable[str] = (),
        common: Iterable[tuple[str, int]] = (),
        *,
        decoder: PinyinDecoder | None = None,
    ) -> None:
        """``decoder``: an already built pinyin decoder (e.g. from the model cache); then
        ``vocabulary``, ``syllables`` and ``common`` are not used."""
        # zhconv's default loader leaves its dictionary file open; give it a path instead.
        zhconv.loaddict(str(Path(zhconv.__file__).parent / "zhcdict.json"))
        # Longest first, so 社保咔 wins over a shorter overlapping key.
        self._typos = sorted(typos.items(), key=lambda kv: -len(kv[0]))
        self._pinyin = decoder or PinyinDecoder(vocabulary, syllables, common)

    def __call__(self, text: str) -> str:
        text = to_halfwidth(text).strip()
        text = _SPACE.sub(" ", text)
        if _LATIN.search(text) and _PINYIN_TEXT.match(text):
            decoded = self._pinyin.decode(text)
            if decoded is not None:
                text = decoded
        text = zhconv.convert(text, "zh-cn")
        for wrong, right in self._typos:
            if wrong in text:
                text = text.replace(wrong, right)
        return text.lower()


class PinyinDecoder:
    """Turns toneless pinyin back into words: the most probable segmentation under a
    unigram model (jieba's word frequencies), with the guide's own words preferred."""

    MAX_WORD = 6
    GUIDE_FREQ = 200_000  # a guide word counts like a very common word
    UNKNOWN = -30.0  # log-probability of leaving a syllable undecoded
    EXACT = 20_000

    def __init__(
        self,
        vocabulary: Iterable[str],
        syllables: Iterable[str] = (),
        common: Iterable[tuple[str, int]] = (),
    ) -> None:
        """``vocabulary``: the guide's words (phrase-exact pinyin). ``common``: (word, freq)
        pairs, spelled character by character (fast; phrase-level polyphone readings only
        matter for the guide's own words)."""
        # Imported here: pypinyin's phrase tables take ~0.3 s and ~40 MB, and a decoder
        # read from the model cache (``from_arrays``) never needs them.
        from pypinyin import Style, lazy_pinyin

        self._words: dict[tuple[str, ...], tuple[str, float]] = {}
        known: set[str] = set(syllables)
        chars: dict[str, str] = {}

        def spell(word: str) -> tuple[str, ...]:
            out = []
            for ch in word:
                if ch not in chars:
                    py = lazy_pinyin(ch, style=Style.NORMAL, errors="ignore")
                    chars[ch] = py[0] if py else ""
                out.append(chars[ch])
            return tuple(out) if all(out) else ()

        # Exact (phrase-level) pinyin is slow: only for the first words of the vocabulary.
        entries = [(w, self.GUIDE_FREQ, i < self.EXACT) for i, w in enumerate(vocabulary)]
        entries += [(w, f, False) for w, f in common]
        total = float(sum(f for _, f, _ in entries) or 1)
        for word, freq, exact in entries:
            if not word or _LATIN.search(word) or freq <= 0:
                continue
            key = (
                tuple(lazy_pinyin(word, style=Style.NORMAL, errors="ignore"))
                if exact
                else spell(word)
            )
            if 0 < len(key) <= self.MAX_WORD and len(key) == len(word):
                logp = math.log(freq / total)
                if key not in self._words or self._words[key][1] < logp:
                    self._words[key] = (word, logp)
                known.update(key)
        self._syllables = known
        self._longest = max((len(x) for x in known), default=0)

    def to_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The built table, for the model cache (``from_arrays`` reads it back)."""
        keys = list(self._words)
        return {
            "keys": np.array([" ".join(k) for k in keys], dtype=np.str_),
            "words": np.array([self._words[k][0] for k in keys], dtype=np.str_),
            "logp": np.array([self._words[k][1] for k in keys], dtype=np.float64),
            "syllables": np.array(sorted(self._syllables), dtype=np.str_),
        }

    @classmethod
    def from_arrays(cls, a: Mapping[str, npt.NDArray[np.generic]]) -> PinyinDecoder:
        self = cls.__new__(cls)
        keys: list[str] = a["keys"].tolist()
        self._words = dict(zip((tuple(k.split(" ")) for k in keys),
                               zip(a["words"].tolist(), a["logp"].tolist(), strict=True),
                               strict=True))
        self._syllables = set(a["syllables"].tolist())
        self._longest = max((len(x) for x in self._syllables), default=0)
        return self

    def _split(self, chunk: str) -> list[str] | None:
        """Split run-together pinyin ("shenfenzheng") into known syllables."""
        out: list[str] = []
        i = 0
        while i < len(chunk):
            for size in range(min(self._longest, len(chunk) - i), 0, -1):
                if chunk[i : i + size] in self._syllables:
                    out.append(chunk[i : i + size])
                    i += size
                    break
            else:
                return None
        return out

    def decode(self, text: str) -> str | None:
        syllables: list[str] = []
        for chunk in re.split(r"[\s',.!?，。！？]+", text.lower()):
            if not chunk:
                continue
            parts = self._split(chunk)
            if parts is None:
                return None
            syllables.extend(parts)
        n = len(syllables)
        if n < 2:
            return None
        # best[i]: (log-probability, words, decoded syllables) of the best decoding of [:i]
        start: tuple[float, list[str], int] = (0.0, [], 0)
        unseen: tuple[float, list[str], int] = (-math.inf, [], 0)
        best = [start] + [unseen] * n
        for i in range(n):
            score, words, decoded = best[i]
            if score == -math.inf:
                continue
            for size in range(1, min(self.MAX_WORD, n - i) + 1):
                hit = self._words.get(tuple(syllables[i : i + size]))
                if hit is None:
                    if size > 1:
                        continue
                    cand = (score + self.UNKNOWN, [*words, syllables[i]], decoded)
                else:
                    cand = (score + hit[1], [*words, hit[0]], decoded + size)
                if cand[0] > best[i + size][0]:
                    best[i + size] = cand
        _, words, decoded = best[n]
        # Mostly undecodable: it was probably English, not pinyin.
        if decoded * 2 < n:
            return None
        return "".join(words)
