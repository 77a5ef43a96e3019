"""Scripted conversations against the real Assistant (issue 4): what a citizen gets.

No mocks: the bundled guide base, the real understanding and a real SQL store. Expected
values are read from the guide data, never copied from the assistant's own output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assistant.closing import DESK_HOURS
from assistant.core import Assistant, MessageRejected
from assistant.model import UserMessage
from knowledge.schema import Bundle
from tests.harness import Chat, make_assistant

CARD_BUTTONS = ["查看材料", "逐项核对材料", "在哪办", "转人工"]
RATING_BUTTONS = ["非常满意", "满意", "一般", "不满意", "非常不满意"]
WALK_BUTTONS = ["有", "没有", "不清楚"]


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    d = tmp_path_factory.mktemp("conversations")
    a = make_assistant(f"sqlite:///{d / 'daoban.db'}", d / "idx")
    yield a
    a.store.engine.dispose()


@pytest.fixture
def pg_assistant(pg_url: str, tmp_path: Path) -> Iterator[Assistant]:
    a = make_assistant(pg_url, tmp_path / "idx")
    yield a
    a.store.engine.dispose()


@pytest.fixture
def chat(assistant: Assistant) -> Callable[[], Chat]:
    return lambda: Chat(assistant)


def material_name(a: Assistant, ref: str) -> str:
    return a.guide.materials[ref].name


def item_name(a: Assistant, eid: str) -> str:
    e = a.guide.entry(eid)
    assert e is not None, eid
    return e.name


def events(c: Chat) -> list[dict]:  # type: ignore[type-arg]
    return c.assistant.store.events(c.cid)


def answer_all(c: Chat, answer: str = "有", limit: int = 30) -> str:
    """Answer every material question the same way until the checklist comes."""
    text = ""
    for _ in range(limit):
        if c.buttons != WALK_BUTTONS:
            return text
        text = c.say(answer)
    raise AssertionError("the walkthrough never ended")


# --- 1. answer cards ------------------------------------------------------------------------


def test_item_answer_card(chat: Callable[[], Chat]) -> None:
    c = chat()
    text = c.say("身份证丢了")
    e = c.assistant.guide.items["id-card-replacement"]
    assert f"【{e.name}】" in text and f"俗称：{e.aliases[0]}" in text
    assert f"多久办好：{e.time_limit.text}" in text
    assert f"收费：{e.fee.text}" in text and "40元" in text
    assert f"在哪办：{e.where.text}" in text
    assert f"到现场次数：{e.visits}次" in text
    assert "需要材料：3项" in text
    # The card's buttons, then the 一件事 this item belongs to ("还可以一起办").
    assert c.buttons == [*CARD_BUTTONS, "一起办：身份证丢失补办一件事"]
    [card] = c.cards
    assert card["type"] == "item" and card["id"] == "id-card-replacement"
    assert card["name"] == e.name and card["plain_name"] == e.aliases[0]
    assert card["time_limit"] == e.time_limit.text and card["fee"] == e.fee.text
    assert card["where"] == e.where.text and card["visits"] == e.visits
    assert card["materials_count"] == len(e.materials) == 3
    assert card["online"] and all("：" in o for o in card["online"])
    assert c.state()["current_item"] == {"id": e.id, "name": e.name, "kind": "item"}


def test_bundle_card_lists_members_and_reductions(chat: Callable[[], Chat]) -> None:
    c = chat()
    text = c.say("孩子出生了要办啥")
    b = c.assistant.guide.entry("newborn-bundle")
    assert isinstance(b, Bundle) and b.reductions
    [card] = c.cards
    assert card["type"] == "bundle" and card["id"] == "newborn-bundle"
    assert [m["id"] for m in card["members"]] == list(b.members)
    assert "一次办好这些事" in text
    for m in b.members:
        assert item_name(c.assistant, m) in text
    assert len(card["reductions"]) == len(b.reductions)
    r = b.reductions[0]
    assert f"{r.what}从{r.before}{r.unit}减到{r.after}{r.unit}" in text
    assert c.buttons == CARD_BUTTONS
    assert c.state()["current_item"]["kind"] == "bundle"


# --- 2. clarification -----------------------------------------------------------------------


def test_clarify_gongjijin_answered_by_ordinal(chat: Callable[[], Chat]) -> None:
    c = chat()
    text = c.say("怎么取公积金")
    assert "您想办的是哪一项" in text
    options = c.buttons
    assert 2 <= len(options) <= 5
    assert all(o.startswith("住房公积金提取") for o in options)
    assert c.state()["stage"] == "clarify" and not c.cards
    text = c.say("第二个")
    [card] = c.cards
    assert card["name"] == options[1] and f"【{options[1]}】" in text
    assert c.state()["stage"] == "idle"


def test_clarify_id_card_answered_by_digit(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("身份证")
    options = c.buttons
    assert 2 <= len(options) <= 5 and all("身份证" in o for o in options)
    c.say("2")
    assert [k["name"] for k in c.cards] == [options[1]]
    assert c.state()["current_item"]["name"] == options[1]


def test_clarify_hukou_answered_by_button(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("户口的事")
    assert len(c.buttons) <= 5
    birth = item_name(c.assistant, "hukou-birth-registration")
    assert birth in c.buttons and item_name(c.assistant, "hukou-move-in") in c.buttons
    c.click(birth)
    assert [k["id"] for k in c.cards] == ["hukou-birth-registration"]


def test_clarify_hukou_answered_in_words(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("户口的事")
    assert item_name(c.assistant, "hukou-birth-registration") in c.buttons
    c.say("出生登记")
    assert [k["id"] for k in c.cards] == ["hukou-birth-registration"]


def test_clarify_gongjijin_answered_in_words(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("住房公积金提取")
    rent = item_name(c.assistant, "hpf-withdraw-rent")
    assert rent in c.buttons and len(c.buttons) <= 5
    # Ordered by how often citizens mean them: 租房 and 购房 before the rare cases.
    assert c.buttons.index(rent) <= 1 and c.buttons.index(item_name(c.assistant, "hpf-withdraw-purchase")) <= 1
    text = c.say("租房的")
    assert [k["id"] for k in c.cards] == ["hpf-withdraw-rent"]
    assert "租房提公积金" in text


# --- 3. 办事情形 ------------------------------------------------------------------------------


def _birth_walk(c: Chat, marital: str) -> str:
    c.say("给孩子上户口")
    text = c.click("逐项核对材料")
    assert "先确认一下您的情况" in text and "婚生还是非婚生" in text
    assert c.buttons == ["婚生", "非婚生"]
    text = c.say(marital)  # answered in words
    assert "随父亲还是随母亲" in text
    c.click("随父亲落户")
    return c.click("民族相同")


def test_situations_change_the_material_list(chat: Callable[[], Chat]) -> None:
    a = chat().assistant
    married, single = chat(), chat()
    t1 = _birth_walk(married, "婚生")
    t2 = _birth_walk(single, "非婚生")
    assert "好的，我们一项一项核对" in t1 and "好的，我们一项一项核对" in t2
    s1 = a.store.load(married.cid)
    s2 = a.store.load(single.cid)
    assert s1 is not None and s2 is not None
    assert s1.situations["hukou-birth-registration"]["marital"] == "marital"
    assert s2.situations["hukou-birth-registration"]["marital"] == "non-marital"
    q1 = [*s1.walk.answers, *s1.walk.queue]  # type: ignore[union-attr]
    q2 = [*s2.walk.answers, *s2.walk.queue]  # type: ignore[union-attr]
    assert "marriage-certificate" in q1 and "marriage-certificate" not in q2
    answer_all(married)
    answer_all(single)
    assert material_name(a, "marriage-certificate") in married.state()["checklist"]["not_needed"]
    cl2 = single.state()["checklist"]
    assert material_name(a, "marriage-certificate") not in [*cl2["ready"], *cl2["not_needed"]]


def test_item_without_situations_goes_straight_to_materials(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("驾照丢了")
    assert not c.assistant.guide.items["driving-license-replacement"].situations
    text = c.click("逐项核对材料")
    assert "先确认一下您的情况" not in text
    assert "我们一项一项核对“机动车驾驶证补领”的3项材料" in text
    assert "（1/3）您是否已准备好《居民身份证》（原件1份）？" in text
    assert c.buttons == WALK_BUTTONS and c.state()["stage"] == "walk"


# --- 4. materials walkthrough -----------------------------------------------------------------


def script_walk_have_missing_unsure(c: Chat) -> None:
    a = c.assistant
    c.say("驾照丢了")
    c.click("逐项核对材料")
    text = c.click("有")
    assert "（2/3）" in text and "机动车驾驶证申请表" in text
    text = c.say("没有")
    form_ref = next(
        m.ref
        for m in a.guide.items["driving-license-replacement"].materials
        if material_name(a, m.ref) == "机动车驾驶证申请表"
    )
    how = a.guide.materials[form_ref].how_to_get
    assert f"《机动车驾驶证申请表》的办法：{how}" in text
    assert "（3/3）" in text and c.buttons == WALK_BUTTONS
    text = c.say("不清楚")
    assert "先记为“待确认”" in text
    assert "材料清单" in text and "✔ 已备好：居民身份证" in text
    [card] = c.cards
    assert card["type"] == "checklist" and card["entry"] == "driving-license-replacement"
    assert card["ready"] == ["居民身份证"]
    assert card["to_get"] == ["机动车驾驶证申请表", "驾驶证照片（白底彩色）（待确认）"]
    cl = c.state()["checklist"]
    assert {k: cl[k] for k in ("ready", "to_get", "not_needed")} == {
        k: card[k] for k in ("ready", "to_get", "not_needed")
    }
    assert cl["pending"] == []
    assert "请为这次服务打个分" in text and c.buttons == RATING_BUTTONS


def test_walk_have_missing_unsure(chat: Callable[[], Chat]) -> None:
    script_walk_have_missing_unsure(chat())


def test_walk_deferrable_material_may_follow_later(chat: Callable[[], Chat]) -> None:
    c = chat()
    use = next(
        m for m in c.assistant.guide.items["temp-id-card"].materials if m.ref == "photo-1inch"
    )
    assert use.necessity.value == "容缺可后补"
    c.say("临时身份证")
    c.click("逐项核对材料")
    text = c.click("有")
    assert "（3/3）您是否已准备好《1寸彩色免冠照片》" in text
    text = c.click("没有")
    assert "这项可以容缺受理：可先办理，之后再补交。" in text
    assert "1寸彩色免冠照片（可容缺后补）" in c.state()["checklist"]["to_get"]


def test_walk_commitment_replaces_certificate(chat: Callable[[], Chat]) -> None:
    c = chat()
    use = next(
        m
        for m in c.assistant.guide.items["unemployment-registration"].materials
        if m.ref == "termination-proof"
    )
    assert use.necessity.value == "告知承诺可替代"
    c.say("失业登记")
    text = c.click("逐项核对材料")
    name = material_name(c.assistant, "termination-proof")
    assert f"您是否已准备好《{name}》" in text
    text = c.say("没有")
    assert "这项可以签一份告知承诺书代替，不用另外开证明。" in text
    assert f"{name}（可签告知承诺书代替）" in c.state()["checklist"]["to_get"]


def test_walk_skips_electronic_licence_with_reason(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("身份证丢了")
    text = c.click("逐项核对材料")
    assert "这些可以不带纸质件" in text
    assert "《居民户口簿》：窗口可以调取电子证照，可不带纸质件（带上更稳妥）。" in text
    assert "您是否已准备好《居民户口簿》" not in text
    assert c.state()["checklist"]["not_needed"] == ["居民户口簿"]


def test_walk_skips_shared_material_with_reason(chat: Callable[[], Chat]) -> None:
    c = chat()
    shared = [
        m.ref
        for m in c.assistant.guide.items["vehicle-temp-plate"].materials
        if m.source.value == "共享免提交"
    ]
    assert shared
    c.say("临时牌照")
    c.click("逐项核对材料")
    text = answer_all(c)
    all_text = "\n".join(t["text"] for t in c.state()["transcript"] if t["from"] == "bot")
    assert "部门之间已共享这项信息，不用您提交" in all_text
    for ref in shared:
        assert f"您是否已准备好《{material_name(c.assistant, ref)}》" not in all_text
        assert material_name(c.assistant, ref) in c.state()["checklist"]["not_needed"]
    assert "○ 可不带纸质件（部门共享或电子证照）" in text


def test_leave_walk_and_resume(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("驾照丢了")
    c.click("逐项核对材料")
    c.say("有")
    text = c.say("先不核对了")
    assert "已暂停核对" in text and "继续核对" in c.buttons
    st = c.state()
    assert st["stage"] == "idle"
    assert st["checklist"]["ready"] == ["居民身份证"]
    assert st["checklist"]["pending"] == ["机动车驾驶证申请表", "驾驶证照片（白底彩色）"]
    assert "机动车驾驶证补领" in c.say("要钱吗？")  # other questions in between
    text = c.say("继续核对")
    assert "（2/3）您是否已准备好《机动车驾驶证申请表》" in text
    assert c.state()["stage"] == "walk"
    text = answer_all(c)
    assert "材料清单" in text
    assert c.state()["checklist"]["ready"] == [
        "居民身份证",
        "机动车驾驶证申请表",
        "驾驶证照片（白底彩色）",
    ]


def test_leave_during_situations_and_resume(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("给孩子上户口")
    c.click("逐项核对材料")
    c.click("婚生")
    text = c.say("先不核对了")
    assert "继续核对" in text
    text = c.say("继续核对")  # said, not clicked: it must do what the reply promised
    assert "随父亲还是随母亲" in text
    c.click("随父亲落户")
    text = c.click("民族相同")
    assert "我们一项一项核对“出生登记（新生儿落户）”" in text


def script_topic_switch_mid_walk(c: Chat) -> None:
    c.say("临时身份证")
    c.click("逐项核对材料")
    c.say("有")
    text = c.say("那身份证丢了呢")
    assert "已暂停“临时居民身份证申领”的材料核对" in text
    assert [k["id"] for k in c.cards] == ["id-card-replacement"]
    assert c.state()["current_item"]["id"] == "id-card-replacement"
    assert "40元" in c.say("要钱吗？")  # about the new item
    text = c.say("继续核对")
    assert "您是否已准备好《1寸彩色免冠照片》" in text
    assert c.state()["current_item"]["id"] == "temp-id-card"
    text = c.say("没有")
    assert "“临时居民身份证申领”材料清单" in text
    assert c.state()["checklist"]["ready"] == ["居民身份证受理回执（领取凭证）"]
    c.click("满意")
    assert c.assistant.store.ratings(c.cid) == [
        {"entry_id": "temp-id-card", "score": 4, "comment": None}
    ]


def test_topic_switch_mid_walk_and_back(chat: Callable[[], Chat]) -> None:
    script_topic_switch_mid_walk(chat())


def script_bundle_walk_union(c: Chat) -> None:
    a = c.assistant
    b = a.guide.entry("id-card-loss-bundle")
    assert isinstance(b, Bundle)
    refs = [m.ref for mid in b.members for m in a.guide.items[mid].materials]
    assert len(set(refs)) < len(refs)  # the members share a material
    c.say("身份证丢失补办一件事")
    text = c.click("查看材料")
    assert f"需要{len(set(refs))}项材料" in text
    c.click("逐项核对材料")
    answer_all(c)
    cl = c.state()["checklist"]
    names = [*cl["ready"], *cl["to_get"], *cl["not_needed"]]
    assert len(names) == len(set(names))
    assert set(names) == {material_name(a, r) for r in refs}
    assert names.count("居民户口簿") == 1
    assert [k["type"] for k in c.cards] == ["checklist"]


def test_bundle_walk_checklist_is_deduplicated_union(chat: Callable[[], Chat]) -> None:
    script_bundle_walk_union(chat())


# --- 5. follow-ups in context -----------------------------------------------------------------


def test_follow_ups_refer_to_current_item(chat: Callable[[], Chat]) -> None:
    c = chat()
    e = c.assistant.guide.items["id-card-replacement"]
    c.say("身份证丢了")
    assert f"“{e.name}”多久办好：{e.time_limit.text}" in c.say("要多久？")
    assert f"“{e.name}”收费：{e.fee.text}" in c.say("要钱吗？")
    where = c.say("在哪办？")
    assert f"“{e.name}”在哪办：{e.where.text}" in where and "咨询电话" in where
    online = c.say("能网上办吗？")
    assert f"“{e.name}”可以这样办" in online
    assert all(ch.name in online for ch in e.channels if ch.type.value in ("网上", "邮寄"))
    in_person = c.say("要本人去吗？")
    assert f"“{e.name}”" in in_person and "本人到场" in in_person and "指纹" in in_person
    mats = c.say("需要什么材料")
    assert f"“{e.name}”需要3项材料" in mats
    for m in e.materials:
        assert material_name(c.assistant, m.ref) in mats
    assert "逐项核对材料" in c.buttons
    assert c.state()["current_item"]["id"] == e.id  # no card, no topic change


def test_new_topic_switches_cleanly(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("身份证丢了")
    c.say("要多久？")
    text = c.say("那社保卡丢了呢")
    assert [k["id"] for k in c.cards] == ["social-security-card-replace"]
    assert "已暂停" not in text  # nothing was being checked
    reply = c.say("要多久？")
    ss = c.assistant.guide.items["social-security-card-replace"]
    assert f"“{ss.name}”多久办好：{ss.time_limit.text}" in reply
    assert "居民身份证补领" not in reply


def test_question_with_follow_up_gets_card_and_answer(chat: Callable[[], Chat]) -> None:
    c = chat()
    text = c.say("身份证丢了要多久")
    assert [k["id"] for k in c.cards] == ["id-card-replacement"]
    assert "“居民身份证补领”多久办好" in text


def test_online_question_for_item_without_online_channel(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("临时身份证")
    assert "“临时居民身份证申领”暂不支持网上办理" in c.say("能网上办吗？")


def test_follow_up_without_item_asks_which(chat: Callable[[], Chat]) -> None:
    c = chat()
    assert "您想问哪个事项" in c.say("要多久？")
    assert c.state()["current_item"] is None


# --- 6. fallback ----------------------------------------------------------------------------


def test_no_match_offers_rephrase_and_suggestions(chat: Callable[[], Chat]) -> None:
    c = chat()
    text = c.say("嗯嗯")
    assert "换个说法" in text
    assert 2 <= len(c.buttons) <= 3
    assert all(
        b in {item_name(c.assistant, s) for s in c.assistant.ctx.suggestions} for b in c.buttons
    )
    assert "转人工" not in c.buttons
    mine = [q for q in c.assistant.store.unanswered() if q["conversation_id"] == c.cid]
    assert mine == [{"text": "嗯嗯", "reason": "no_match", "conversation_id": c.cid}]
    c.click(c.buttons[0])  # a suggestion works like a question
    assert c.cards and c.cards[0]["name"] == c.state()["current_item"]["name"]


def test_second_consecutive_miss_offers_human(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("嗯嗯")
    text = c.say("哦哦哦")
    assert "要不要转人工" in text and "转人工" in c.buttons and len(c.buttons) <= 5
    mine = [q["text"] for q in c.assistant.store.unanswered() if q["conversation_id"] == c.cid]
    assert sorted(mine) == ["哦哦哦", "嗯嗯"]
    text = c.click("转人工")
    assert c.state()["mode"] == "WAITING_AGENT" and "12345" in text


def test_a_match_resets_the_miss_count(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("嗯嗯")
    c.say("身份证丢了")
    text = c.say("哦哦哦")
    assert "换个说法" in text and "转人工" not in c.buttons


def test_out_of_scope_says_what_daoban_does(chat: Callable[[], Chat]) -> None:
    c = chat()
    text = c.say("今天天气怎么样")
    assert "帮不上忙" in text and "政务服务事项" in text
    assert "带什么材料" in text and "在哪办" in text
    assert c.buttons
    mine = [q for q in c.assistant.store.unanswered() if q["conversation_id"] == c.cid]
    assert mine == [{"text": "今天天气怎么样", "reason": "out_of_scope", "conversation_id": c.cid}]


# --- 7. handoff -----------------------------------------------------------------------------


def script_handoff(c: Chat) -> None:
    text = c.say("转人工")
    st = c.state()
    assert st["mode"] == "WAITING_AGENT"
    assert "转人工" in text and "12345" in text and DESK_HOURS in text
    assert "9:00-17:00" in text
    assert c.buttons == ["返回机器人"]
    assert {"from": "system", "mode": "WAITING_AGENT"}.items() <= st["transcript"][-2].items()
    text = c.say("好的 我等着 麻烦快点")
    assert "留言已记下" in text and "12345" in text
    assert not c.cards
    # A real question while waiting is answered, and the place in the queue is kept.
    text = c.say("我的社保卡丢了，急用")
    assert [k["id"] for k in c.cards] == ["social-security-card-replace"]
    assert "仍在人工排队" in text
    assert c.state()["mode"] == "WAITING_AGENT"
    left = [e["text"] for e in events(c) if e["type"] == "message_for_agent"]
    assert left == ["好的 我等着 麻烦快点", "我的社保卡丢了，急用"]
    text = c.say("返回机器人")
    assert "已回到导办助手" in text and c.state()["mode"] == "BOT"
    c.say("身份证丢了")
    assert [k["id"] for k in c.cards] == ["id-card-replacement"]


def test_handoff_on_request_and_back_to_bot(chat: Callable[[], Chat]) -> None:
    script_handoff(chat())


def test_complaint_hands_off(chat: Callable[[], Chat]) -> None:
    c = chat()
    text = c.say("你们这太慢了我要投诉")
    assert "很抱歉" in text and "12345" in text and DESK_HOURS in text
    assert c.state()["mode"] == "WAITING_AGENT"
    assert [e["reason"] for e in events(c) if e["type"] == "mode"] == ["complaint"]
    c.click("返回机器人")
    assert c.state()["mode"] == "BOT"


def test_handoff_button_on_card_mid_walk(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("驾照丢了")
    c.click("逐项核对材料")
    c.say("先不核对了")
    c.click("转人工")
    assert c.state()["mode"] == "WAITING_AGENT"
    assert c.state()["checklist"]["pending"]  # the progress is kept for later


# --- 8. 好差评 ------------------------------------------------------------------------------


def test_rating_after_walkthrough_by_button(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("驾照丢了")
    c.click("逐项核对材料")
    answer_all(c)
    assert c.buttons == RATING_BUTTONS
    assert c.state()["stage"] == "rating"
    text = c.click("非常满意")
    assert "谢谢您的评价：非常满意" in text and c.buttons == ["没有"]
    text = c.click("没有")
    assert "祝您办事顺利" in text
    assert c.assistant.store.ratings(c.cid) == [
        {"entry_id": "driving-license-replacement", "score": 5, "comment": None}
    ]


def script_rating_after_goodbye(c: Chat) -> None:
    c.say("身份证丢了")
    text = c.say("再见")
    assert "再见" in text and "打个分" in text and c.buttons == RATING_BUTTONS
    text = c.say("满意")
    assert "谢谢您的评价：满意" in text and "意见或建议" in text
    text = c.say("窗口排队时间有点长")
    assert "意见已记下" in text
    assert c.assistant.store.ratings(c.cid) == [
        {"entry_id": "id-card-replacement", "score": 4, "comment": "窗口排队时间有点长"}
    ]
    assert c.state()["stage"] == "idle"


def test_rating_after_goodbye_in_words_with_comment(chat: Callable[[], Chat]) -> None:
    script_rating_after_goodbye(chat())


@pytest.mark.parametrize(("words", "score"), [("很满意", 4), ("不满意", 2), ("非常不满意", 1)])
def test_rating_words_are_a_rating_not_a_complaint(
    chat: Callable[[], Chat], words: str, score: int
) -> None:
    c = chat()
    c.say("再见")
    text = c.say(words)
    assert "谢谢您的评价" in text
    assert c.state()["mode"] == "BOT"
    assert [r["score"] for r in c.assistant.store.ratings(c.cid)] == [score]


def test_complaining_comment_is_recorded(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("身份证丢了")
    c.say("再见")
    c.click("不满意")
    text = c.say("办事太慢了")
    assert "意见已记下" in text and "转人工" in c.buttons
    assert c.assistant.store.ratings(c.cid) == [
        {"entry_id": "id-card-replacement", "score": 2, "comment": "办事太慢了"}
    ]
    c.click("转人工")
    assert c.state()["mode"] == "WAITING_AGENT"


def test_not_a_rating_is_handled_as_a_new_question(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("再见")
    c.say("身份证丢了")
    assert [k["id"] for k in c.cards] == ["id-card-replacement"]
    assert c.assistant.store.ratings(c.cid) == []


# --- message handling, transcript -------------------------------------------------------------


def test_repeated_message_id_is_processed_once(chat: Callable[[], Chat]) -> None:
    c = chat()
    first = c.send("身份证丢了", message_id="m-1")
    again = c.send("身份证丢了", message_id="m-1")
    assert again == first and first[0].card is not None
    citizen = [t["text"] for t in c.state()["transcript"] if t["from"] == "citizen"]
    assert citizen == ["身份证丢了"]
    c.send("要多久？", message_id="m-2")
    c.send("要多久？", message_id="m-2")
    citizen = [t["text"] for t in c.state()["transcript"] if t["from"] == "citizen"]
    assert citizen == ["身份证丢了", "要多久？"]


@pytest.mark.parametrize("text", ["", "   \n", "啊" * 1001])
def test_empty_or_overlong_message_is_rejected(chat: Callable[[], Chat], text: str) -> None:
    c = chat()
    with pytest.raises(MessageRejected):
        c.say(text)
    assert c.assistant.store.load(c.cid) is None  # nothing stored


def test_message_at_the_length_limit_is_accepted(assistant: Assistant) -> None:
    replies = asyncio.run(assistant.handle(UserMessage("limit", "证" * 1000), create=True))
    assert replies and replies[0].text


def test_transcript_holds_the_conversation(chat: Callable[[], Chat]) -> None:
    c = chat()
    c.say("身份证丢了")
    c.click("在哪办")
    st = c.state()
    assert st["id"] == c.cid
    tr = st["transcript"]
    assert [t["from"] for t in tr] == ["citizen", "bot", "citizen", "bot"]
    assert tr[0]["text"] == "身份证丢了" and tr[2]["text"] == "/where"
    assert tr[1]["card"]["id"] == "id-card-replacement"
    assert [b["title"] for b in tr[1]["buttons"]][:4] == CARD_BUTTONS
    assert "“居民身份证补领”在哪办" in tr[3]["text"]
    assert all(t["at"] for t in tr)


def test_greeting_and_thanks(chat: Callable[[], Chat]) -> None:
    c = chat()
    assert "导办助手" in c.say("你好") and c.buttons
    c.say("身份证丢了")
    assert "不客气" in c.say("谢谢")


# --- the same scripts on PostgreSQL ---------------------------------------------------------


@pytest.mark.postgres
def test_pg_walkthrough(pg_assistant: Assistant) -> None:
    script_walk_have_missing_unsure(Chat(pg_assistant))
    script_bundle_walk_union(Chat(pg_assistant))


@pytest.mark.postgres
def test_pg_topic_switch_and_rating(pg_assistant: Assistant) -> None:
    script_topic_switch_mid_walk(Chat(pg_assistant))
    script_rating_after_goodbye(Chat(pg_assistant))


@pytest.mark.postgres
def test_pg_handoff_and_repeated_message(pg_assistant: Assistant) -> None:
    script_handoff(Chat(pg_assistant))
    c = Chat(pg_assistant)
    first = c.send("身份证丢了", message_id="pg-1")
    assert c.send("身份证丢了", message_id="pg-1") == first
    assert [t["from"] for t in c.state()["transcript"]] == ["citizen", "bot"]
