"""The question actually asked gets the answer (issue 13, kind 3): questions particular to
one item are answered with the guide's own sentence for them; a question type the item has
no field for is answered from the sentence that says it, or honestly not.

Each case is asked the way several citizens would ask it, through the REST API, played by
the same checker as ``daoban eval --dialogues``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.harness import play_turns as run
from tests.harness import rest_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with rest_client(tmp_path_factory.mktemp("questions"), "q") as c:
        yield c


def test_an_item_specific_question_gets_the_faq_answer(client: TestClient) -> None:
    item = "childcare-subsidy"
    run(client,
        {"user": "育儿补贴咋领", "item": item},
        {"user": "孩子都两岁了还能领不", "item": item, "must": [["剩余", "折算"]],
         "must_not": ["谁能办"]},
        {"user": "这钱要交税不", "item": item, "must": ["免征"], "must_not": ["收费："]},
        {"user": "这补贴用交个税吗", "item": item, "must": ["免征"]},
        {"user": "要扣税不", "item": item, "must": ["免征"]})


def test_validity_is_answered_from_the_sentence_that_states_it(client: TestClient) -> None:
    item = "food-business-license"
    run(client,
        {"user": "食品经营许可证咋办", "item": item},
        {"user": "有效期多久", "item": item, "must": ["5年"], "must_not": ["多久办好"]},
        {"user": "能用几年", "item": item, "must": ["5年"]},
        {"user": "证管几年", "item": item, "must": ["5年"]},
        {"user": "几年有效", "item": item, "must": ["5年"]})


def test_a_question_the_guide_does_not_answer_is_not_answered_with_another_fact(
        client: TestClient) -> None:
    run(client,
        {"user": "育儿补贴咋领", "item": "childcare-subsidy"},
        {"user": "有效期多久", "item": "childcare-subsidy", "must": ["没有写明"],
         "must_not": ["多久办好"]})


def test_a_relative_acting_for_the_citizen_is_a_proxy_question(client: TestClient) -> None:
    item = "hukou-birth-registration"
    run(client,
        {"user": "给孩子上户口", "item": item},
        {"user": "我俩都上班 让孩子奶奶去办行不", "item": item, "must": ["委托书"]},
        {"user": "叫他姥姥去办行吗", "item": item, "must": ["委托书"]},
        {"user": "孩子爷爷替我们去办可以不", "item": item, "must": ["委托书"]},
        {"user": "能找我妈帮忙去办吗", "item": item, "must": ["委托书"]})


def test_where_the_money_goes_is_not_where_the_office_is(client: TestClient) -> None:
    item = "rs-resident-pension-claim"
    run(client,
        {"user": "农村养老金咋领", "item": item},
        {"user": "钱打到哪", "item": item, "must": ["社保卡"], "must_not": ["在哪办"]},
        {"user": "钱发到哪个卡上", "item": item, "must": ["社保卡"]},
        {"user": "养老金打到什么账户", "item": item, "must": ["社保卡"]},
        {"user": "钱是打到我卡上吗", "item": item, "must": ["社保卡"]})


def test_a_stated_fact_in_a_question_finds_the_guides_words(client: TestClient) -> None:
    item = "birth-medical-certificate-issue"
    run(client,
        {"user": "办出生证明", "item": item},
        {"user": "没结婚能办不", "item": item, "must": ["不需要结婚证"], "must_not": ["谁能办"]},
        {"user": "未婚生的孩子能办吗", "item": item, "must": ["不需要结婚证"]},
        {"user": "我一个人去能办不", "item": item, "must": ["委托书"]})


def test_the_material_list_is_still_the_answer_to_what_to_bring(client: TestClient) -> None:
    run(client,
        {"user": "买了个二手房 公积金能提出来不", "item": "hpf-withdraw-purchase"},
        {"user": "要带啥", "item": "hpf-withdraw-purchase", "must": ["项材料"]})


def test_a_question_naming_a_material_is_answered_from_the_list(client: TestClient) -> None:
    run(client,
        {"user": "结婚登记要带啥", "item": "marriage-registration"},
        {"user": "照片要几张", "item": "marriage-registration", "must": ["3份"]},
        {"user": "能手机上弄吗", "item": "marriage-registration", "must": ["网上"]})
    run(client,
        {"user": "残疾证咋办", "item": "disability-certificate"},
        {"user": "要几张照片", "item": "disability-certificate", "must": ["4份"]})


def test_an_opener_carrying_an_item_specific_question_gets_it_answered(
        client: TestClient) -> None:
    run(client,
        {"user": "孩子都两岁了 育儿补贴还能领不", "item": "childcare-subsidy",
         "must": ["3600", ["剩余", "折算"]]})
    run(client,
        {"user": "养老保险交了12年 到岁数能退休领钱不", "item": "pension-claim",
         "must": ["还不满"]})


def test_how_often_is_answered_from_the_sentence_that_says_it(client: TestClient) -> None:
    item = "pension-qualification-certification"
    run(client,
        {"user": "养老金认证咋做", "item": item},
        {"user": "多长时间认证一回", "item": item, "must": ["每年"], "must_not": ["多久办好"]},
        {"user": "认证多久做一次", "item": item, "must": ["每年"]},
        {"user": "一年要认证几次", "item": item, "must": ["每年"]})
    run(client,
        {"user": "居住证咋办", "item": "residence-permit"},
        {"user": "居住证每年还要弄啥不", "item": "residence-permit", "must": ["签注"]},
        {"user": "多久签一次", "item": "residence-permit", "must": ["签注"]})
    run(client,
        {"user": "车船税在哪交", "item": "vehicle-vessel-tax"},
        {"user": "电车要交不", "item": "vehicle-vessel-tax", "must": ["不征"]})
