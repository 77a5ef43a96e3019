"""Understanding: normalisation, tokenizer, intents, hybrid retrieval, rebuilds, harness."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import jieba
import pytest

from channels.cli import main as cli
from knowledge.embed import UseEncoder, VectorCache
from knowledge.index import Scope
from knowledge.schema import Audience
from knowledge.store import content_hash
from knowledge.validate import GuideBase, load_guide
from nlu.evaluate import EvalFileError, evaluate, read_cases
from nlu.intents import load_training
from nlu.understand import Understanding
from tests.guidegen import small_guide, write


@pytest.fixture(scope="session")
def guide() -> GuideBase:
    return load_guide()


@pytest.fixture(scope="session")
def und(guide: GuideBase, tmp_path_factory: pytest.TempPathFactory) -> Understanding:
    return Understanding(guide, content_hash(guide), index_dir=tmp_path_factory.mktemp("idx"))


def top(und: Understanding, q: str) -> str | None:
    hits = und.understand(q).hits
    return hits[0].name if hits else None


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("身分证丢了", "身份证丢了"),
        ("公基金怎么取", "公积金怎么取"),
        ("社保咔", "社保卡"),
        ("ＡＢＣ１２３身份證", "abc123身份证"),
        ("戶口遷移", "户口迁移"),
    ],
)
def test_normalize(und: Understanding, raw: str, want: str) -> None:
    assert und.tokenizer.normalize(raw) == want


@pytest.mark.parametrize(
    ("raw", "contains"),
    [("shen fen zheng diu le", "身份证"), ("shenfenzheng", "身份证"), ("gong ji jin", "公积金")],
)
def test_pinyin_questions_become_characters(und: Understanding, raw: str, contains: str) -> None:
    assert contains in und.tokenizer.normalize(raw)


def test_english_is_not_mistaken_for_pinyin(und: Understanding) -> None:
    assert und.tokenizer.normalize("hello world") == "hello world"


def test_own_jieba_instance_keeps_guide_words_whole(und: Understanding) -> None:
    assert "住房公积金提取" in und.tokenizer.words("我想办住房公积金提取")
    # The global jieba dictionary is never touched.
    assert und.tokenizer._jieba is not jieba.dt
    assert "出生医学证明" not in jieba.dt.FREQ or jieba.dt.FREQ.get("出生医学证明", 0) < 20000


def test_synonyms_expand_everyday_words(und: Understanding) -> None:
    assert "驾驶证" in und.tokenizer.expansions("驾照快到期了")
    assert "住房公积金提取" in und.tokenizer.expansions("怎么取公积金")


def test_training_file_is_rasa_format() -> None:
    data = load_training()
    intents = {i for _, i in data.examples}
    assert {"ask_item", "ask_materials", "choose", "request_human", "out_of_scope"} <= intents
    assert "道里区" in data.lookups["district"]
    assert all("](" not in t for t, _ in data.examples)  # entity markup stripped


def test_intent_dev_accuracy() -> None:
    from nlu.intents import EmbeddedClassifier

    clf = EmbeddedClassifier()
    lines = Path("nlu/data/eval/intents_dev.jsonl").read_text(encoding="utf-8").splitlines()
    cases = [json.loads(x) for x in lines if x.strip()]
    ok = sum(clf.parse(c["text"]).intent == c["intent"] for c in cases)
    assert ok / len(cases) >= 0.85, ok / len(cases)


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [("我在道里区", "district", "道里区"), ("道里这边能办吗", "district", "道里区"),
     ("公司要办", "audience", "企业")],
)
def test_entities(und: Understanding, text: str, entity: str, value: str) -> None:
    ents = und.classifier.parse(text).entities
    assert any(e.entity == entity and e.value == value for e in ents), ents


@pytest.mark.parametrize(
    ("q", "name"),
    [
        ("身份证丢了咋整", "居民身份证补领"),
        ("身份证过期了要换", "居民身份证换领"),
        ("孩子16岁了第一次办身份证", "居民身份证申领（首次申领）"),
        ("身份证还没办下来，先要个临时的坐火车", "临时居民身份证申领"),
        ("社保咔丢了", "社会保障卡挂失补换"),
        ("驾照快到期了", "机动车驾驶证期满换证"),
        ("老人走了户口咋办", "死亡人员户口注销"),
        ("租房子能取公积金不", "住房公积金提取（租房）"),
        ("退休了公积金怎么取出来", "住房公积金提取（退休）"),
    ],
)
def test_colloquial_questions_reach_the_item(und: Understanding, q: str, name: str) -> None:
    assert top(und, q) == name


@pytest.mark.parametrize("q", ["今天天气怎么样", "帮我订外卖", "给我讲个笑话", "明天股票能涨吗"])
def test_out_of_scope_gets_no_match(und: Understanding, q: str) -> None:
    assert und.understand(q).hits == []


def test_scope_filter_narrows_results(und: Understanding, guide: GuideBase) -> None:
    hits = und.search("营业执照", k=10, scope=Scope(audience=Audience.PERSON))
    assert hits and all(Audience.PERSON in guide.entry(h.id).audience for h in hits)  # type: ignore[union-attr]
    only = frozenset({"id-card-replacement"})
    assert [h.id for h in und.search("身份证丢了", scope=Scope(entry_ids=only))] == [
        "id-card-replacement"
    ]


def test_index_rebuilds_atomically_when_guide_changes(tmp_path: Path) -> None:
    g1 = load_guide(write(tmp_path / "a.yaml", small_guide()))
    u = Understanding(g1, content_hash(g1), index_dir=tmp_path / "idx")
    old = u.search_service.index
    assert u.refresh(g1, content_hash(g1)) is False  # same content: nothing rebuilt
    doc = small_guide()
    doc["items"][0]["name"] = "丙事项新名字"
    g2 = load_guide(write(tmp_path / "b.yaml", doc))
    seen: list[str] = []

    def reader() -> None:
        for _ in range(200):
            seen.append(u.search_service.index.content_hash)

    t = threading.Thread(target=reader)
    t.start()
    assert u.refresh(g2, content_hash(g2)) is True
    t.join()
    assert set(seen) <= {content_hash(g1), content_hash(g2)}
    assert u.search_service.index is not old
    assert any(h.name == "丙事项新名字" for h in u.search("丙事项新名字"))


def test_rebuild_keeps_the_tokenizer_unless_names_change(tmp_path: Path) -> None:
    g1 = load_guide(write(tmp_path / "a.yaml", small_guide()))
    u = Understanding(g1, content_hash(g1), index_dir=tmp_path / "idx")
    tok = u.tokenizer
    doc = small_guide()
    doc["items"][0]["summary"] = "改过的说明，带好新的材料"
    g2 = load_guide(write(tmp_path / "b.yaml", doc))
    assert u.refresh(g2, content_hash(g2)) is True
    assert u.tokenizer is tok  # no names changed: the same dictionary
    doc["items"][0]["aliases"] = ["焕然一新的叫法"]
    g3 = load_guide(write(tmp_path / "c.yaml", doc))
    assert u.refresh(g3, content_hash(g3)) is True
    assert u.tokenizer is not tok
    assert "焕然一新的叫法" in u.tokenizer.words("我想办焕然一新的叫法")


def test_vector_cache_reuses_vectors(tmp_path: Path) -> None:
    enc = UseEncoder()
    cache = VectorCache(tmp_path, enc)
    a = cache.encode(["居民身份证补领", "结婚登记"])
    assert cache.misses == 2
    cache2 = VectorCache(tmp_path, enc)
    b = cache2.encode(["结婚登记", "居民身份证补领", "新的句子"])
    assert cache2.hits == 2 and cache2.misses == 1
    assert abs(float(a[0] @ b[1]) - 1.0) < 1e-5
    (tmp_path / cache.path.name).write_bytes(b"garbage")  # damaged cache: rebuilt, not trusted
    assert VectorCache(tmp_path, enc).encode(["结婚登记"]).shape == (1, 512)


def test_eval_harness(und: Understanding, guide: GuideBase, tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text(
        "\n".join(
            json.dumps(x, ensure_ascii=False)
            for x in [
                {"q": "身份证丢了咋整", "expect": ["居民身份证补领"]},
                {"q": "驾照快到期了", "expect": ["driving-license-renewal"]},
                {"q": "今天天气怎么样", "expect": []},
            ]
        ),
        encoding="utf-8",
    )
    r = evaluate(und, guide, read_cases(f)).as_json()
    assert r["n"] == 3 and r["top1"] == 1.0 and r["oos_accuracy"] == 1.0
    assert set(r["baseline"]) == {"top1", "top3", "mrr"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": 1}\n', encoding="utf-8")
    with pytest.raises(EvalFileError):
        read_cases(bad)
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"q": "x", "expect": ["没有这个事项"]}\n', encoding="utf-8")
    with pytest.raises(EvalFileError):
        evaluate(und, guide, read_cases(unknown))


def test_cli_search_json(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAOBAN_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DAOBAN_INDEX_DIR", str(tmp_path / "idx"))
    assert cli(["search", "社保卡丢了咋整", "--json", "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["query"] == "社保卡丢了咋整"
    assert set(out["intent"]) == {"name", "confidence"}
    assert 1 <= len(out["items"]) <= 3
    assert out["items"][0]["id"] == "social-security-card-replace"
    assert set(out["items"][0]) == {"id", "name", "kind", "score"}
    assert cli(["search", "今天天气怎么样", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["items"] == []
