"""The model cache (nlu/model_cache.py): the intent model and the pinyin decoder are read
back from disk instead of rebuilt, give the same answers as a fresh build, are rebuilt
when what they were built from changes, and a cache that cannot be used is no error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knowledge.validate import load_guide
from nlu import model_cache
from nlu.intents import EmbeddedClassifier, TrainingData, load_training
from nlu.normalize import PinyinDecoder
from nlu.tokenizer import Tokenizer

QUESTIONS = ["社保卡丢了咋整", "转人工", "谢谢", "我在道里区住", "要带啥材料", "SBK 咋补",
             "", "  ", "a", "营业执照 办理 多久", "今天天气怎么样"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(model_cache.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


@pytest.fixture(scope="module")
def small() -> TrainingData:
    """Every third example: the same 17 intents, fitted in a fraction of the time."""
    data = load_training()
    return TrainingData(data.examples[::3], data.lookups, data.synonyms)


def _words(text: str) -> list[str]:
    return [text[i:i + 2] for i in range(len(text) - 1)]


def test_a_cached_model_answers_exactly_as_the_fitted_one(
    cache: Path, small: TrainingData
) -> None:
    fitted = EmbeddedClassifier(small, words=_words)
    assert not fitted.from_cache and len(list(cache.glob("intents-*.npz"))) == 1
    read = EmbeddedClassifier(small, words=_words)
    assert read.from_cache
    for q in QUESTIONS:
        a, b = fitted.parse(q), read.parse(q)
        assert a.intent == b.intent and a.ranking == b.ranking and a.entities == b.entities


def test_the_hand_applied_model_is_scikit_learns(cache: Path, small: TrainingData) -> None:
    """parse() applies the fitted numbers without scikit-learn: the probabilities must be
    those of TfidfVectorizer (char_wb 1-3 + words, sublinear tf) + LogisticRegression."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = [t for t, _ in small.examples]
    labels = [i for _, i in small.examples]
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
    words = TfidfVectorizer(analyzer=_words, sublinear_tf=True)
    x = sparse.hstack([chars.fit_transform(texts), words.fit_transform(texts)]).tocsr()
    model = LogisticRegression(C=8.0, max_iter=2000).fit(x, labels)
    clf = EmbeddedClassifier(small, words=_words)
    for q in [*QUESTIONS, *texts[:40]]:
        xq = sparse.hstack([chars.transform([q]), words.transform([q])]).tocsr()
        expected = dict(zip(model.classes_, model.predict_proba(xq)[0], strict=True))
        for intent, p in clf.parse(q).ranking:
            assert p == pytest.approx(expected[intent], abs=1e-9), (q, intent)


def test_other_training_data_or_tokens_mean_another_model(
    cache: Path, small: TrainingData
) -> None:
    EmbeddedClassifier(small, words=_words)
    assert EmbeddedClassifier(small, words=_words).from_cache
    fewer = TrainingData(small.examples[:-1], small.lookups, small.synonyms)
    assert not EmbeddedClassifier(fewer, words=_words).from_cache
    assert not EmbeddedClassifier(small, words=lambda t: list(t)).from_cache
    assert len(list(cache.glob("intents-*.npz"))) == 3


def test_a_damaged_cache_file_is_refitted_and_replaced(cache: Path, small: TrainingData) -> None:
    fitted = EmbeddedClassifier(small, words=_words)
    (path,) = cache.glob("intents-*.npz")
    path.write_bytes(b"not a zip file")
    again = EmbeddedClassifier(small, words=_words)
    assert not again.from_cache and again.parse("谢谢").ranking == fitted.parse("谢谢").ranking
    assert EmbeddedClassifier(small, words=_words).from_cache


def test_an_unwritable_cache_directory_only_means_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: TrainingData
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv(model_cache.CACHE_ENV, str(blocked))
    clf = EmbeddedClassifier(small, words=_words)
    assert not clf.from_cache and clf.parse("转人工").intent == "request_human"
    monkeypatch.setenv(model_cache.CACHE_ENV, "off")
    assert model_cache.models_dir() is None
    assert not EmbeddedClassifier(small, words=_words).from_cache


def test_the_default_directory_is_under_the_users_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(model_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert model_cache.models_dir() == Path("/somewhere/cache/daoban/models")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert model_cache.models_dir() == Path.home() / ".cache" / "daoban" / "models"


def test_save_is_atomic_and_old_files_are_pruned(cache: Path) -> None:
    for i in range(model_cache.KEEP + 3):
        assert model_cache.save("x", f"k{i}", {"a": np.arange(i + 1)}) is not None
    assert len(list(cache.glob("x-*.npz"))) == model_cache.KEEP
    assert not list(cache.glob(".*"))  # no temporary file left behind
    got = model_cache.load("x", f"k{model_cache.KEEP + 2}")
    assert got is not None and got["a"].tolist() == list(range(model_cache.KEEP + 3))


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tokenizer]:
    """A cache directory holding the real intent model and pinyin decoder, and the
    tokenizer that built the decoder."""
    root = tmp_path_factory.mktemp("warm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(model_cache.CACHE_ENV, str(root))
        built = Tokenizer(load_guide())
        assert not EmbeddedClassifier(words=built.plain_terms).from_cache
    assert len(list((root / "models").glob("*.npz"))) == 2
    return root, built


def test_the_pinyin_decoder_read_back_decodes_as_built(
    warm: tuple[Path, Tokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, built = warm
    monkeypatch.setenv(model_cache.CACHE_ENV, str(root))
    read = Tokenizer(load_guide())
    a: PinyinDecoder = built.normalize._pinyin
    b: PinyinDecoder = read.normalize._pinyin
    assert a is not b and a._words == b._words and a._syllables == b._syllables
    for q in ["shen fen zheng diu le", "shebaoka bu ban", "gongjijin tiqu", "hello world"]:
        assert read.normalize(q) == built.normalize(q)
    assert read.normalize("shen fen zheng diu le") == "身份证丢了"


def test_a_warm_start_imports_neither_scikit_learn_nor_pypinyin(
    warm: tuple[Path, Tokenizer]
) -> None:
    code = ("import sys\n"
            "from knowledge.validate import load_guide\n"
            "from nlu.tokenizer import Tokenizer\n"
            "from nlu.intents import EmbeddedClassifier\n"
            "tok = Tokenizer(load_guide())\n"
            "clf = EmbeddedClassifier(words=tok.plain_terms)\n"
            "print(clf.from_cache, clf.parse('社保卡丢了咋整').intent,\n"
            "      sorted(m for m in ('sklearn', 'pypinyin') if m in sys.modules))\n")
    env = {**os.environ, model_cache.CACHE_ENV: str(warm[0])}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "True ask_item []"
