"""Every required item answers the six practical questions citizens ask most.

For each of the 51 required items (``knowledge/data/required_items.txt``) a conversation
opens by naming the item, then asks 能代办吗 / 本人要去吗 / 要提前多久办 / 能加急吗 /
能邮寄吗 / 外地能办吗. Each reply must answer that question for that item: the sourced
fact of the item's ``answers`` topic, or — when the guide holds ``unknown`` — the honest
"指南里没有写明" with where to ask. Never the generic fallback, never another item.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answers import ASKED
from channels.dialogue_eval import FALLBACK_MARKERS
from knowledge.lint import REQUIRED_FILE, read_required
from knowledge.schema import CORE_TOPICS, Topic, Tri
from knowledge.validate import GuideBase
from tests.harness import Chat, make_assistant, shared_understanding

REQUIRED = [name for _, name in read_required(REQUIRED_FILE)]
QUESTIONS = [("能代办吗", Topic.PROXY), ("本人要去吗", Topic.IN_PERSON),
             ("要提前多久办", Topic.ADVANCE), ("能加急吗", Topic.EXPEDITE),
             ("能邮寄吗", Topic.MAIL), ("外地能办吗", Topic.OFFSITE)]
WHERE_TO_ASK = ("请向办理窗口", "咨询电话")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Chat, GuideBase]:
    folder: Path = tmp_path_factory.mktemp("required")
    assistant = make_assistant(f"sqlite:///{folder / 'r.db'}", folder / "idx")
    guide, _ = shared_understanding(folder / "idx")
    return Chat(assistant), guide


def test_the_list_and_the_questions() -> None:
    assert len(REQUIRED) == len(set(REQUIRED)) == 51
    assert {t for _, t in QUESTIONS} == set(CORE_TOPICS)


@pytest.mark.parametrize("name", REQUIRED)
def test_required_item_answers_the_practical_questions(
        name: str, setup: tuple[Chat, GuideBase]) -> None:
    template, guide = setup
    entry = next((e for e in [*guide.items.values(), *guide.bundles.values()]
                  if e.name == name), None)
    assert entry is not None, f"no entry named {name}"
    chat = Chat(template.assistant)
    opener = chat.say(f"我要办{name}")
    assert (chat.state()["current_item"] or {}).get("id") == entry.id, opener[:300]
    problems = []
    for question, topic in QUESTIONS:
        reply = chat.say(question)
        current = (chat.state()["current_item"] or {}).get("id")
        ans = entry.answers.get(topic)
        known = ans is not None and ans.answer is not Tri.UNKNOWN
        if known:
            assert ans is not None and ans.text
            ok = ans.text in reply
        else:
            ok = ("没有写明" in reply and ASKED[topic.value] in reply  # names the question
                  and any(w in reply for w in WHERE_TO_ASK))
        cards = [line for line in reply.splitlines() if line.startswith("【")]
        if (not ok or current != entry.id or f"“{name}”" not in reply
                or any(m in reply for m in FALLBACK_MARKERS) or cards):
            problems.append(f"{question} ({topic.value}, {'known' if known else 'unknown'}; "
                            f"current={current}): {reply[:300]}")
    assert not problems, f"{name}:\n" + "\n".join(problems)
