"""The example bank: citizens' own wordings (nlu/data/questions.yml) steer retrieval."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.index import SearchIndex
from knowledge.lint import Severity, lint_path
from knowledge.validate import load_guide
from nlu.examples import QUESTIONS_FILE, ExamplesError, load_examples
from nlu.understand import Understanding
from tests.harness import shared_understanding

# Said nowhere in the guide base: only an example can tie it to 投靠亲属落户.
STORY = "把老娘从老家接过来养老 她那户口也跟过来 咋整"


@pytest.fixture(scope="module")
def und(tmp_path_factory: pytest.TempPathFactory) -> Understanding:
    return shared_understanding(tmp_path_factory.mktemp("idx"))[1]


def _rank(index: SearchIndex, und: Understanding, q: str, entry_id: str) -> tuple[int, float]:
    n = und.tokenizer.normalize(q)
    hits = index.search(n, k=len(index.entries))
    at = [h.id for h in hits].index(entry_id)
    return at, hits[at].score


def test_an_example_lifts_the_item_it_belongs_to(und: Understanding) -> None:
    base = und.search_service.index
    plain = SearchIndex(base.guide, "t", und.tokenizer.terms, und.encoder)
    said = {"hukou-kinship-settlement": [und.tokenizer.normalize("把老娘接过来养老 户口也跟着过来")]}
    taught = SearchIndex(base.guide, "t", und.tokenizer.terms, und.encoder, examples=said)
    rank0, score0 = _rank(plain, und, STORY, "hukou-kinship-settlement")
    rank1, score1 = _rank(taught, und, STORY, "hukou-kinship-settlement")
    assert score1 > score0 + 0.05
    assert rank1 == 0 and rank0 > 0
    # Everything else scores exactly as without the example.
    other = _rank(taught, und, STORY, "hukou-move-in")[1]
    assert other == pytest.approx(_rank(plain, und, STORY, "hukou-move-in")[1])


def test_examples_for_unknown_ids_are_skipped(und: Understanding) -> None:
    base = und.search_service.index
    index = SearchIndex(base.guide, "t", und.tokenizer.terms, und.encoder,
                        examples={"no-such-item": ["随便问问"]})
    assert index.example_vectors is None
    assert index.search("身份证丢了", k=1)


def test_bundled_examples_load_and_name_guide_entries() -> None:
    said = load_examples()
    guide = load_guide()
    known = {*guide.items, *guide.bundles}
    assert sum(map(len, said.values())) >= 1000
    assert set(said) <= known


@pytest.mark.parametrize("text", ["questions: [1, 2]", "questions:\n  a: 3\n", ":\n- [", ""])
def test_a_malformed_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "questions.yml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ExamplesError, match=str(bad)):
        load_examples(bad)


def test_a_broken_file_leaves_retrieval_working_and_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "questions.yml"
    bad.write_text("questions: nope\n", encoding="utf-8")
    guide = load_guide()
    und = Understanding(guide, "t", encoder=False, examples_file=bad)
    assert und.examples == {}
    assert und.examples_problem and str(bad) in und.examples_problem
    assert und.search("社保卡丢了咋整", k=1)
    # /health names it, with the fix.
    from types import SimpleNamespace
    from typing import Any, cast

    from channels.health import standard_components
    from channels.settings import Settings

    assistant = cast(Any, SimpleNamespace(understanding=und))
    states = standard_components(Settings(), assistant)
    state = states.snapshot()["example_questions"]
    assert state.degraded and str(bad) in state.detail and "questions.yml" in (state.fix or "")


def test_lint_warns_about_examples_for_missing_entries() -> None:
    findings = lint_path(examples={"gone-item": ["问法"], "passport": ["办护照"]},
                         examples_file=str(QUESTIONS_FILE))
    mine = [f for f in findings if f.field == "questions"]
    assert [(f.record, f.severity) for f in mine] == [("gone-item", Severity.WARNING)]
