"""Normalise a citizen's text before anything else reads it.

Full-width → half-width, traditional → simplified, miswritten characters and homophones
(身分证, 公基金, 社保咔), and a question typed entirely in pinyin ("shen fen zheng diu le")
turned back into characters using the guide base's own vocabulary.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

import zhconv
from pypinyin import Style, lazy_pinyin

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
        self, typos: Mapping[str, str], vocabulary: Iterable[str], syllables: Iterable[str] = ()
    ) -> None:
        # zhconv's default loader leaves its dictionary file open; give it a path instead.
        zhconv.loaddict(str(Path(zhconv.__file__).parent / "zhcdict.json"))
        # Longest first, so 社保咔 wins over a shorter overlapping key.
        self._typos = sorted(typos.items(), key=lambda kv: -len(kv[0]))
        self._pinyin = PinyinDecoder(vocabulary, syllables)

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
    """Turns toneless pinyin back into words of a known vocabulary (longest match)."""

    MAX_WORD = 6

    def __init__(self, vocabulary: Iterable[str], syllables: Iterable[str] = ()) -> None:
        """``vocabulary`` in order of preference: the first word with a given pinyin wins."""
        self._words: dict[tuple[str, ...], str] = {}
        known: set[str] = set(syllables)
        for word in vocabulary:
            if not word or _LATIN.search(word):
                continue
            key = tuple(lazy_pinyin(word, style=Style.NORMAL, errors="ignore"))
            if 0 < len(key) <= self.MAX_WORD and len(key) == len(word):
                self._words.setdefault(key, word)
                known.update(key)
        syllables = known
        self._syllables = syllables
        self._longest = max((len(s) for s in syllables), default=0)

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
        if len(syllables) < 2:
            return None
        out: list[str] = []
        i = 0
        decoded = 0
        while i < len(syllables):
            for size in range(min(self.MAX_WORD, len(syllables) - i), 0, -1):
                word = self._words.get(tuple(syllables[i : i + size]))
                if word is not None:
                    out.append(word)
                    decoded += size
                    i += size
                    break
            else:
                out.append(syllables[i])
                i += 1
        # Mostly undecodable: it was probably English, not pinyin.
        if decoded * 2 < len(syllables):
            return None
        return "".join(out)
