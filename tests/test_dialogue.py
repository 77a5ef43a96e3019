"""Multi-turn dialogues the way citizens talk, through the REST API and the Rasa webhook.

One test per kind of conversation failure named in the conversation-competence issue
(docs/dialogue.md). Each dialogue is played by the same checker as ``daoban eval
--dialogues`` (``channels/dialogue_eval.py``), so a turn fails on a missing fact, a
forbidden one, the wrong current item, the wrong mode, or a generic fallback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from channels.dialogue_eval import check_turn, read_dialogues
from tests.harness import play_turns as run
from tests.harness import rest_client, rest_conversation


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with rest_client(tmp_path_factory.mktemp("dialogue"), "d") as c:
        yield c


def test_short_follow_up_stays_on_the_current_item(client: TestClient) -> None:
    run(client,
        {"user": "生孩子单位给的那个生育津贴咋领", "item": "maternity-allowance"},
        {"user": "能领几个月的", "item": "maternity-allowance", "must": [["98"]]},
        {"user": "啥人能领", "item": "maternity-allowance", "must": ["生育津贴"]})


def test_numeric_eligibility_is_answered_with_the_number(client: TestClient) -> None:
    run(client,
        {"user": "被单位辞退了 想领失业金", "item": "unemployment-benefit"},
        {"user": "才交了半年能领吗", "item": "unemployment-benefit",
         "must": [["不满1年", "还不满"]], "must_not": ["已满"]},
        {"user": "交了三年呢", "item": "unemployment-benefit", "must": ["已满"]})


def test_free_answers_to_the_bots_own_questions(client: TestClient) -> None:
    run(client,
        {"user": "孩子出生了给孩子上户口", "item": "hukou-birth-registration"},
        {"user": "要带啥", "must": ["婚生还是非婚生"]},
        {"user": "俺俩没扯证", "must": ["非婚生", "随父亲还是随母亲"]},
        {"user": "跟他妈", "must": ["随母亲落户", "民族"]},
        {"user": "都是汉族", "item": "hukou-birth-registration",
         "must": ["非婚生育情况说明"], "must_not": ["亲子鉴定", "民族成份确认书"]})


def test_the_question_asked_is_answered_or_honestly_not(client: TestClient) -> None:
    run(client,
        {"user": "身份证丢了", "item": "id-card-replacement"},
        {"user": "能让我儿子替我去办吗", "item": "id-card-replacement",
         "must": ["本人"], "must_not": ["多久办好"]},
        {"user": "能邮寄吗", "item": "id-card-replacement", "must": [["邮寄", "没有写明"]]},
        {"user": "周末能办吗", "item": "id-card-replacement",
         "must": [["没有写明", "周末"]], "must_not": ["收费"]})


def test_an_opener_carrying_a_question_gets_both(client: TestClient) -> None:
    run(client,
        {"user": "下个月想去登记结婚 户口本还要带吗", "item": "marriage-registration",
         "must": ["户口", ["不用带", "没有"]]})


def test_clarification_offers_the_common_cases_and_reads_the_reply(client: TestClient) -> None:
    cid, auth = rest_conversation(client)
    replies = client.post(f"/api/v1/conversations/{cid}/messages", headers=auth,
                          json={"text": "公积金咋取"}).json()["replies"]
    titles = [b["title"] for rep in replies for b in rep["buttons"]]
    assert titles[:2] == ["住房公积金提取（租房）", "住房公积金提取（购房）"], titles
    client.post(f"/api/v1/conversations/{cid}/messages", headers=auth, json={"text": "房子是租的"})
    state = client.get(f"/api/v1/conversations/{cid}", headers=auth).json()
    assert state["current_item"]["id"] == "hpf-withdraw-rent"


def test_stated_facts_are_remembered_and_shown_back(client: TestClient) -> None:
    run(client,
        {"user": "公积金咋取", "must": ["租房"]},
        {"user": "我是租房住的 没买房", "item": "hpf-withdraw-rent", "must": ["按您说的：租房"]},
        {"user": "要带啥", "item": "hpf-withdraw-rent", "must": ["按您说的：租房"]})


def test_one_member_gets_the_member_several_get_the_bundle(client: TestClient) -> None:
    run(client,
        {"user": "给孩子上户口", "item": "hukou-birth-registration",
         "must": ["一起办：新生儿出生一件事"]})
    run(client,
        {"user": "孩子出生了 上户口和办医保能一起办不", "item": "newborn-bundle"})


def test_listing_members_gets_the_bundle_naming_one_gets_it(client: TestClient) -> None:
    # several members of one 一件事 listed clause by clause, none named in full
    run(client,
        {"user": "想开个小饭馆 执照 食品许可证 消防 招牌都得办吧", "item": "restaurant-bundle"})
    # the member named, its 一件事 close behind: the member, not a choice between them
    run(client, {"user": "生完孩子了 生育津贴咋领", "item": "maternity-allowance"})
    # "everything to do" about a life event
    run(client, {"user": "下个月到岁数了 退休都要办啥", "item": "retirement-bundle"})


def test_a_material_asked_about_is_not_the_errand(client: TestClient) -> None:
    run(client,
        {"user": "想跟对象去扯证 要带户口本不", "item": "marriage-registration",
         "must_not": ["户口簿补领"]})
    run(client, {"user": "户口本丢了咋补", "item": "hukou-book-replacement"})


def test_weak_matches_elsewhere_do_not_change_the_subject(client: TestClient) -> None:
    run(client,
        {"user": "创业担保贷款咋申请", "item": "rs-startup-guarantee-loan"},
        {"user": "利息咋算", "item": "rs-startup-guarantee-loan",
         "must": [["没有写明", "贴息", "利息"]]})


def test_vague_openers_and_unasked_ratings(client: TestClient) -> None:
    run(client, {"user": "户口的事", "must": ["哪一项", "出生登记"]})
    run(client,
        {"user": "社保卡丢了咋整", "item": "social-security-card-replace"},
        {"user": "行了 不满意 给1分", "must": ["谢谢您的评价：非常不满意"]})
    run(client,
        {"user": "转人工", "mode": "WAITING_AGENT"},
        {"user": "不用人工了 5分", "mode": "BOT", "must": ["谢谢您的评价：非常满意"]})


def test_checklist_agrees_with_the_card(client: TestClient) -> None:
    run(client,
        {"user": "户口迁过来 在这边买了房", "any_item": ["hukou-move-in"]},
        {"press": "逐项核对材料", "must_not": ["您是否已准备好《户口迁移证"]})


def test_questions_while_queued_and_after_a_rating(client: TestClient) -> None:
    run(client,
        {"user": "转人工", "mode": "WAITING_AGENT"},
        {"user": "社保卡丢了咋整", "item": "social-security-card-replace",
         "mode": "WAITING_AGENT", "must": ["仍在人工排队"]},
        {"user": "不等了 我自己先问问", "mode": "BOT"})
    run(client,
        {"user": "身份证丢了", "item": "id-card-replacement"},
        {"user": "再见", "must": ["打个分"]},
        {"user": "满意", "must": ["谢谢您的评价"]},
        {"user": "社保卡丢了咋整", "item": "social-security-card-replace",
         "must_not": ["意见已记下"]})


def test_bad_input_keeps_the_conversation(client: TestClient) -> None:
    run(client,
        {"user": "社保卡丢了咋整", "item": "social-security-card-replace"},
        {"user": "😀😀😀", "item": "social-security-card-replace", "must": ["没看懂", "用文字"]},
        {"user": "啊" * 2000, "fallback_ok": True, "must": ["太长"]},
        {"user": "/pick:no-such-item", "fallback_ok": True, "must": ["失效"]},
        {"user": "要带啥", "item": "social-security-card-replace", "must": ["身份证"]})


def test_rasa_webhook_follow_up(client: TestClient) -> None:
    def say(text: str) -> str:
        r = client.post("/webhooks/rest/webhook", json={"sender": "dlg-follow", "message": text})
        assert r.status_code == 200
        return "\n".join(m["text"] for m in r.json())

    assert "生育津贴" in say("生育津贴咋领")
    reply = say("能领几个月的")
    assert "98" in reply and not check_turn({}, reply, None, "BOT")


def test_bundled_dialogue_sets_parse_and_cover_every_kind() -> None:
    from pathlib import Path

    from channels.dialogue_eval import KINDS

    root = Path(__file__).parent / "dialogues"
    dev = read_dialogues([root / "dev.jsonl"])
    blind = read_dialogues([root / "blind.jsonl"])
    assert len(dev) >= 200 and len(blind) >= 60
    for kind in KINDS:
        assert sum(kind in d["kinds"] for d in dev) >= 15, kind
        assert sum(kind in d["kinds"] for d in blind) >= 5, kind


def test_check_turn_reads_plain_mode_names() -> None:
    assert not check_turn({"mode": "waiting"}, "排队中", None, "WAITING_AGENT")
    assert not check_turn({"mode": "WAITING_AGENT"}, "排队中", None, "WAITING_AGENT")
    assert check_turn({"mode": "waiting"}, "您好", None, "BOT") == ["mode:BOT≠waiting"]
    assert check_turn({"mode": "bot"}, "排队中", None, "WAITING_AGENT") == ["mode:WAITING_AGENT≠bot"]
