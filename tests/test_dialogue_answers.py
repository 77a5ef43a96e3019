"""Answers to the bot's own questions, facts the citizen states, the checklist, the queue
and the rating, and a 一件事's members — through the REST API, each kind said several ways.

Played by the checker of ``daoban eval --dialogues`` (``channels/dialogue_eval.py``): a turn
fails on a missing or forbidden phrase, the wrong current item, the wrong mode or a generic
fallback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.harness import play_turns as run
from tests.harness import rest_client

BIRTH = "hukou-birth-registration"
ETHNIC_FORM = "民族成份确认书"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with rest_client(tmp_path_factory.mktemp("answers"), "a") as c:
        yield c


# --- a fact stated with the question settles the 办事情形 it answers -----------------------


@pytest.mark.parametrize("said", ["俺俩都是汉族 要带啥", "我们民族一样 要准备啥材料",
                                  "我汉族 他也是汉族 都得带啥", "两口子都是满族 带什么"])
def test_same_nationality_drops_the_nationality_form(client: TestClient, said: str) -> None:
    run(client,
        {"user": "孩子出生了给孩子上户口", "item": BIRTH},
        {"user": said, "item": BIRTH, "must": ["出生医学证明"], "must_not": [ETHNIC_FORM]})


@pytest.mark.parametrize("said", ["我是满族 他爸汉族 要带啥", "民族不一样 要准备啥材料",
                                  "他是回族 我是汉族 都得带啥"])
def test_different_nationalities_keep_the_nationality_form(client: TestClient,
                                                           said: str) -> None:
    run(client,
        {"user": "孩子出生了给孩子上户口", "item": BIRTH},
        {"user": said, "item": BIRTH, "must": [ETHNIC_FORM]})


@pytest.mark.parametrize("opener", ["公司买了台新车 上牌咋办", "单位买的新车 怎么上牌",
                                    "企业名下的新车要上牌"])
def test_a_company_car_is_not_asked_whose_name_it_is_in(client: TestClient,
                                                        opener: str) -> None:
    run(client,
        {"user": opener, "item": "vehicle-registration"},
        {"user": "要带啥", "item": "vehicle-registration", "must": ["营业执照"],
         "must_not": ["个人名下还是单位名下"]})


@pytest.mark.parametrize("opener", ["我租了个门市 想开个小超市 先办执照",
                                    "跟房东租的门面 想办个体户执照",
                                    "租了间铺子开小卖店 办营业执照"])
def test_a_rented_shop_is_remembered_for_the_materials(client: TestClient,
                                                       opener: str) -> None:
    run(client,
        {"user": opener, "item": "individual-business-registration"},
        {"user": "要带啥 我自己去", "item": "individual-business-registration",
         "must": ["租赁合同"], "must_not": ["自己的房子还是租的", "授权委托书"]})


# --- someone acting for another: the 本人/代办 question is not asked again -----------------


@pytest.mark.parametrize("opener", ["我妈社保卡坏了 我替她去换", "我爸社保卡读不出来了 我帮他去换",
                                    "社保卡坏了 给我妈换 我去办"])
def test_acting_for_a_parent_is_remembered(client: TestClient, opener: str) -> None:
    run(client,
        {"user": opener, "item": "social-security-card-replace",
         "must_not": ["本人办还是委托他人代办"]},
        {"user": "逐项核对材料", "item": "social-security-card-replace",
         "must": ["身份证"], "must_not": ["本人办还是委托他人代办"]})


@pytest.mark.parametrize("answer", ["我是他邻居 替他申请", "亲戚帮他申请", "社区代为申请"])
def test_a_proxy_answer_in_own_words_is_understood(client: TestClient, answer: str) -> None:
    run(client,
        {"user": "村里有个孤寡老人 想申请五保", "item": "destitute-person-support"},
        {"user": "要带啥", "item": "destitute-person-support"},
        {"user": answer, "item": "destitute-person-support", "must": ["代办人"],
         "must_not": ["您是说"]})


@pytest.mark.parametrize("answer", ["我老伴是残疾人", "家里有个残疾人", "孩子是残疾人 有证"])
def test_the_distinctive_part_of_an_option_is_enough(client: TestClient, answer: str) -> None:
    run(client,
        {"user": "家里太困难了 想申请低保", "item": "minimum-living-allowance"},
        {"user": "要带啥", "must": ["残疾或重病"]},
        {"user": answer, "item": "minimum-living-allowance", "must": ["残疾人证"],
         "must_not": ["您是说"]})


def test_a_stated_fact_does_not_switch_to_another_member_of_a_bundle(
        client: TestClient) -> None:
    run(client,
        {"user": "外地户口 租房住 想办居住证", "item": "residence-permit"},
        {"user": "我自己去 要带啥", "item": "residence-permit", "must": ["居住证明"]})


# --- materials named with their state go on the checklist ---------------------------------


def test_materials_said_in_passing_update_the_checklist(client: TestClient) -> None:
    run(client,
        {"user": "联系殡仪馆火化要带啥", "item": "cremation-service"},
        {"user": "挨个帮我核对下材料", "must": ["（1/"]},
        {"user": "有", "must": ["身份证"]},
        {"user": "老人身份证有", "must": ["户口"]},
        {"user": "户口本找不着了", "must": ["代办人"]},
        {"user": "我身份证带着呢", "must": ["还缺", "户口"]})


@pytest.mark.parametrize("typed", ["一样一样帮我对一下", "挨个给我核对下", "逐个对一下要带的"])
def test_asking_to_go_through_the_materials_starts_the_walk(client: TestClient,
                                                          typed: str) -> None:
    run(client,
        {"user": "养犬登记咋办", "item": "dog-registration"},
        {"user": typed, "must": ["（1/"]})


def test_a_material_named_out_of_turn_is_recorded_not_the_one_asked(
        client: TestClient) -> None:
    run(client,
        {"user": "我妈社保卡坏了 我替她去换", "item": "social-security-card-replace"},
        {"user": "逐项核对材料", "must": ["（1/"]},
        {"user": "我妈身份证我拿着呢 有", "must": ["社会保障卡"]},
        {"user": "旧卡在", "must": ["委托书"]},
        {"user": "委托书还没写", "must": ["代办人"]},
        {"user": "我身份证有", "must": ["还缺", "委托书"]})


def test_after_the_walk_a_correction_updates_the_list(client: TestClient) -> None:
    run(client,
        {"user": "新身份证没下来 想办个临时的", "item": "temp-id-card"},
        {"press": "逐项核对材料", "must": ["（1/"]},
        {"user": "有"},
        {"user": "有", "must": ["材料都准备齐了"]},
        {"user": "没有照片", "must": ["照片", ["照相", "拍"]]},
        {"user": "户口本有", "must": ["已备好"]})


# --- the queue and the rating never swallow a question -------------------------------------


@pytest.mark.parametrize("question,must", [
    ("那我先问下 补卡要钱不", ["工本费", "免收", "不收费"]),
    ("排队的时候问下 在哪补", ["银行", "社保"]),
    ("顺便问问 挂失打哪个电话", ["12333"])])
def test_a_question_while_queued_is_answered(client: TestClient, question: str,
                                           must: list[str]) -> None:
    run(client,
        {"user": "社保卡丢了咋整", "item": "social-security-card-replace"},
        {"user": "找个真人说", "mode": "WAITING_AGENT"},
        {"user": question, "item": "social-security-card-replace", "must": [must, "排队"],
         "mode": "WAITING_AGENT"})


@pytest.mark.parametrize("done", ["好的 谢谢 没别的了", "行 谢谢啊 没事了", "谢谢 就这些"])
def test_done_asks_for_a_rating_and_a_rating_word_is_taken(client: TestClient,
                                                           done: str) -> None:
    run(client,
        {"user": "居住证多久能办下来", "item": "residence-permit"},
        {"user": done, "must": ["打个分"]},
        {"user": "非常满意", "must": ["谢谢您的评价"]})


# --- a follow-up on a 一件事 about one of its members --------------------------------------


@pytest.mark.parametrize("opener,follow,member,must", [
    ("孩子刚生下来 都要办些啥手续啊", "那先说上户口 去哪上", BIRTH, "派出所"),
    ("老人走了 都要办啥手续", "丧葬费在哪领", "funeral-allowance", "社保经办机构"),
    ("失业了要办啥手续", "先登记是吧 在哪登记", "unemployment-registration", "便民服务中心"),
])
def test_a_members_question_after_the_bundle_goes_to_the_member(
        client: TestClient, opener: str, follow: str, member: str, must: str) -> None:
    run(client,
        {"user": opener},
        {"user": follow, "item": member, "must": [must]})


def test_a_question_on_the_whole_bundle_stays_on_it(client: TestClient) -> None:
    run(client,
        {"user": "孩子刚生下来 都要办些啥手续啊", "item": "newborn-bundle"},
        {"user": "要花钱不", "item": "newborn-bundle"},
        {"user": "能在医院一次都办了不", "item": "newborn-bundle"})


# --- the case stated, and 办事情形 answered before they are asked ---------------------------


@pytest.mark.parametrize("said", ["丢了 孩子都三岁了", "找不着了 想补一个", "出生证弄丢了"])
def test_a_case_stated_after_the_card_goes_to_that_cases_item(client: TestClient,
                                                              said: str) -> None:
    run(client,
        {"user": "出生医学证明首次签发咋办", "item": "birth-medical-certificate-issue"},
        {"user": said, "item": "birth-medical-certificate-reissue"})


@pytest.mark.parametrize("said", ["商贷", "银行按揭的", "是商业贷款"])
def test_a_situation_answered_before_it_is_asked(client: TestClient, said: str) -> None:
    run(client,
        {"user": "有房贷 能提公积金还贷款不", "item": "gj-withdraw-loan-repay"},
        {"user": said, "item": "gj-withdraw-loan-repay", "must": ["借款合同"],
         "must_not": ["是什么贷款"]})


@pytest.mark.parametrize("said,must,must_not", [
    ("我和我对象都提 要带啥", ["结婚证"], []),
    ("两口子都想提 带什么材料", ["结婚证"], []),
    ("要啥材料 就我自己提", [], ["结婚证"]),
])
def test_whose_fund_is_drawn_is_understood(client: TestClient, said: str, must: list[str],
                                           must_not: list[str]) -> None:
    run(client,
        {"user": "买房了 想把公积金取出来", "item": "hpf-withdraw-purchase"},
        {"user": said, "item": "hpf-withdraw-purchase", "must": must, "must_not": must_not})


@pytest.mark.parametrize("score", ["给你打5分", "五星", "非常满意"])
def test_a_rating_while_queued_is_taken(client: TestClient, score: str) -> None:
    run(client,
        {"user": "社保卡丢了咋整", "item": "social-security-card-replace"},
        {"user": "找个真人说", "mode": "WAITING_AGENT"},
        {"user": score, "must": ["谢谢您的评价"], "mode": "WAITING_AGENT"})


@pytest.mark.parametrize("other", ["我是满族 他爸汉族", "民族不一样", "他是回族 我是汉族"])
def test_another_question_answered_while_a_guess_awaits_confirmation(
        client: TestClient, other: str) -> None:
    run(client,
        {"user": "孩子出生了给孩子上户口", "item": BIRTH},
        {"user": "要带啥", "must": ["婚生还是非婚生"]},
        {"user": "俺俩没扯证", "must": ["随父亲还是随母亲"]},
        {"user": "随我户口", "must": [["您是说", "没太听明白"]]},  # 我: father or mother?
        {"user": other, "must": ["民族不同", ETHNIC_FORM, "随父亲还是随母亲"]})


@pytest.mark.parametrize("opener", ["个体户想转给我弟弟经营 能直接变更不",
                                    "个体户变更登记 店兑给我小舅子了",
                                    "个体户转给我闺女经营了 要变更吧"])
def test_a_person_named_fits_an_option_that_says_someone_else(client: TestClient,
                                                              opener: str) -> None:
    run(client,
        {"user": opener, "item": "individual-business-change"},
        {"user": "要带啥", "item": "individual-business-change",
         "must_not": ["要变更什么"]})


@pytest.mark.parametrize("missing", ["没有", "还没有", "这个没带"])
def test_the_end_of_the_walk_says_where_to_get_what_is_missing(client: TestClient,
                                                               missing: str) -> None:
    run(client,
        {"user": "新身份证没下来 想办个临时的", "item": "temp-id-card"},
        {"press": "逐项核对材料", "must": ["（1/"]},
        {"user": missing},
        {"user": "有", "must": ["还缺1项", "· 《"]})
