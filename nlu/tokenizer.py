"""daoban's tokenizer: its own ``jieba.Tokenizer`` (never the global one), a user
dictionary generated from the guide base, and the curated everyday-words lexicon."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import jieba
import yaml

from knowledge.validate import GuideBase
from nlu import model_cache
from nlu.model_cache import fingerprint
from nlu.normalize import Normalizer, PinyinDecoder

LEXICON = Path(__file__).parent / "data" / "lexicon.yml"
# The code that builds the pinyin decoder: part of its cache key, so an edit rebuilds it.
_CODE = b"".join((Path(__file__).parent / f).read_bytes() for f in ("tokenizer.py", "normalize.py"))
log = logging.getLogger(__name__)
MAX_DICT_WORDS = 30_000  # guide words added to jieba (the Harbin guide has ~2,000)
_HAN_OR_WORD = re.compile(r"[\u4e00-\u9fff]|[a-z0-9]+")
PUNCT = _PUNCT = re.compile(r"[（）()《》“”\"'，。、！？?!,.;；:：\s·—\-/]+")

# Function words and question fillers that say nothing about *which* item is meant.
STOPWORDS = frozenset(
    ["的", "了", "吗", "呢", "吧", "啊", "呀", "嘛", "哦", "哈", "么", "我", "我们", "你", "你们", "他", "她", "它", "要", "想", "得", "地", "是", "在", "有", "和", "与", "及", "或", "怎么", "怎么样", "怎样", "如何", "咋", "咋整", "咋办", "咋弄", "啥", "什么", "哪", "哪里", "哪儿", "去哪", "请问", "一下", "这个", "那个", "那", "这", "能", "可以", "可不可以", "需要", "需要什么", "办", "办理", "办啥", "弄", "整", "搞", "手续", "帮", "帮我", "给", "把", "被", "就", "都", "还", "也", "又", "再", "刚", "刚刚", "该", "应该", "一个", "个", "下", "吗?", "呗", "嘞", "啦", "呐", "咧", "不", "没", "没有", "多少", "多久", "几", "天", "时候", "现在", "已经", "之后", "以后", "后", "前", "里", "上", "去", "来", "到", "用", "让", "跟", "请", "您", "谢谢", "好", "好的", "对", "是不是", "有没有", "能不能", "行", "行不行"]
)


@dataclass(frozen=True)
class Lexicon:
    typos: dict[str, str] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path = LEXICON) -> Lexicon:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(
            typos={str(k): str(v) for k, v in (raw.get("typos") or {}).items()},
            synonyms={str(k): [str(x) for x in v] for k, v in (raw.get("synonyms") or {}).items()},
            words=[str(w) for w in raw.get("words") or []],
        )


def guide_vocabulary(guide: GuideBase) -> list[str]:
    """Names, aliases and material names: the words the user dictionary must keep whole."""
    words: list[str] = []
    for e in [*guide.items.values(), *guide.bundles.values()]:
        words.append(e.name)
        words.extend(e.aliases)
        # Parts of official names: 居民身份证补领 → 居民身份证, 补领 via the bracket split.
        words.extend(p for p in _PUNCT.split(e.name) if len(p) >= 2)
    for m in guide.materials.values():
        words.append(m.name)
        words.extend(p for p in _PUNCT.split(m.name) if len(p) >= 2)
    for d in guide.departments.values():
        words.append(d.short)
    return [w for w in dict.fromkeys(words) if 2 <= len(w) <= 20]


def _lexicon_words(lexicon: Lexicon) -> list[str]:
    return [*lexicon.words, *lexicon.synonyms, *lexicon.typos.values()]


def _vocabulary(vocab: list[str], lexicon: Lexicon) -> list[str]:
    """The guide's words, then the lexicon's, each once."""
    return list(dict.fromkeys([*vocab, *_lexicon_words(lexicon)]))


def _signature(vocabulary: list[str]) -> str:
    return hashlib.sha256("\n".join(vocabulary).encode()).hexdigest()


def signature(guide: GuideBase, lexicon: Lexicon) -> str:
    """What a tokenizer built from ``guide`` and ``lexicon`` would have as its signature,
    without building one (a jieba dictionary: ~1 s and ~130 MB)."""
    return _signature(_vocabulary(guide_vocabulary(guide), lexicon))


class Tokenizer:
    def __init__(self, guide: GuideBase, lexicon: Lexicon | None = None) -> None:
        self.lexicon = lexicon or Lexicon.load()
        self._jieba = jieba.Tokenizer()
        logging.getLogger("jieba").setLevel(logging.WARNING)
        self._jieba.initialize()
        vocab = guide_vocabulary(guide)
        extra = _lexicon_words(self.lexicon)
        # jieba stores every prefix of every added word: for a huge guide base the names
        # would cost more memory than they help (character bigrams still match them).
        dictionary = vocab if len(vocab) <= MAX_DICT_WORDS else vocab[:MAX_DICT_WORDS]
        for w in [*dictionary, *extra]:
            if 2 <= len(w) <= 20 and not _PUNCT.search(w):
                self._jieba.add_word(w, freq=20000)
        vocabulary = _vocabulary(vocab, self.lexicon)
        # What a rebuild compares (the list itself is ~17 MB at 100k items: not kept).
        self.signature = _signature(vocabulary)
        self.normalize = Normalizer(self.lexicon.typos, (),
                                    decoder=self._pinyin_decoder(guide, vocabulary))
        self._synonyms = sorted(self.lexicon.synonyms.items(), key=lambda kv: -len(kv[0]))

    def _pinyin_decoder(self, guide: GuideBase, vocabulary: list[str]) -> PinyinDecoder:
        """Built from the guide's words and jieba's (seconds of pypinyin), so kept in the
        model cache (nlu/model_cache.py) by the hash of its inputs and of this code."""
        key = fingerprint([
            _CODE, self.signature, str(MAX_DICT_WORDS),
            *(e.summary for e in [*guide.items.values(), *guide.bundles.values()]),
            metadata.version("jieba"), metadata.version("pypinyin"),
        ])
        cached = model_cache.load("pinyin", key)
        if cached is not None:
            try:
                return PinyinDecoder.from_arrays(cached)
            except (KeyError, ValueError) as exc:
                log.warning("rebuilding the pinyin decoder, its cache is damaged: %s", exc)
        guide_words, common = self._pinyin_vocabulary(guide, vocabulary)
        decoder = PinyinDecoder(guide_words, self._syllables(), common)
        model_cache.save("pinyin", key, decoder.to_arrays())
        return decoder

    def _pinyin_vocabulary(
        self, guide: GuideBase, vocabulary: list[str]
    ) -> tuple[list[str], list[tuple[str, int]]]:
        """Guide words first, then common words by frequency, so "ti qu" → 提取 not 体区."""
        entries = [*guide.items.values(), *guide.bundles.values()]
        # Summaries add everyday words the guide uses; too slow to segment for huge guides.
        texts = [e.summary for e in entries] if len(entries) <= 20_000 else []
        guide_words = [w for t in texts for w in self._jieba.lcut(t) if len(w) >= 2]
        common = sorted(
            ((w, f) for w, f in self._jieba.FREQ.items() if f > 0 and 1 <= len(w) <= 4),
            key=lambda wf: -wf[1],
        )[:60000]
        words = list(dict.fromkeys([*vocabulary, *guide_words]))
        return words[:MAX_DICT_WORDS * 2], common

    def _syllables(self) -> set[str]:
        from pypinyin import Style, lazy_pinyin  # only on a cache miss (see PinyinDecoder)

        return {
            p
            for w, f in self._jieba.FREQ.items()
            if len(w) == 1 and f > 0
            for p in lazy_pinyin(w, style=Style.NORMAL, errors="ignore")
            if p.isalpha() and p.isascii()
        }

    def words(self, text: str) -> list[str]:
        """Words of already-normalised text (no stop-word filtering)."""
        return [w for w in self._jieba.lcut(text) if w.strip() and not _PUNCT.fullmatch(w)]

    def expansions(self, text: str) -> list[str]:
        """Official terms that everyday phrases in ``text`` stand for."""
        out: list[str] = []
        for phrase, terms in self._synonyms:
            if phrase in text:
                out.extend(terms)
        return out

    def terms(self, text: str, *, expand: bool = False) -> list[str]:
        """Index terms: content words plus character bigrams (robust to segmentation)."""
        parts = [text, *self.expansions(text)] if expand else [text]
        out: list[str] = []
        for part in parts:
            # Search mode also yields the sub-words of long words: 居民户口簿 → 户口, 户口簿.
            words = [
                w for w in self._jieba.lcut_for_search(part)
                if w.strip() and w not in STOPWORDS and not _PUNCT.fullmatch(w)
            ]
            out.extend(words)
            for chunk in _PUNCT.split(part):
                out.extend(chunk[i : i + 2] for i in range(len(chunk) - 1))
        return out

    def plain_terms(self, text: str) -> list[str]:
        """jieba words only: the baseline the evaluation compares against."""
        return [w for w in self.words(text) if w not in STOPWORDS]
