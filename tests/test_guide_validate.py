"""Validation: every class of problem is reported with file, record id and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from knowledge.errors import Problem
from knowledge.validate import check_guide
from tests.guidegen import item, small_guide, write


def problems_of(tmp_path: Path, doc: dict[str, Any]) -> list[Problem]:
    path = write(tmp_path / "g.yaml", doc)
    _, problems = check_guide(path)
    return problems


def assert_problem(problems: list[Problem], record: str, field: str, text: str) -> None:
    hits = [p for p in problems if p.record == record and field in p.field and text in p.message]
    assert hits, f"no problem {record}/{field}/{text!r} in {[str(p) for p in problems]}"
    assert all(p.file.endswith("g.yaml") for p in hits)


def test_small_guide_is_valid(tmp_path: Path) -> None:
    assert problems_of(tmp_path, small_guide()) == []


def test_duplicate_id(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"].append(item("item-a", "另一个名字", [{"ref": "m-id"}]))
    assert_problem(problems_of(tmp_path, doc), "item-a", "id", "重复的 id")


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    doc = small_guide()
    write(tmp_path / "a.yaml", doc)
    other = {"format": "daoban-guide/1", "items": [item("item-b", "丙事项", [{"ref": "m-id"}])]}
    write(tmp_path / "b.yaml", other)
    _, problems = check_guide(tmp_path)
    assert any(p.record == "item-b" and "a.yaml" in p.message for p in problems), problems


def test_unknown_material_reference(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][0]["materials"].append({"ref": "no-such-material"})
    assert_problem(problems_of(tmp_path, doc), "item-a", "materials[2].ref", "未知材料引用")


def test_bundle_member_missing(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][2]["members"].append("item-zzz")
    assert_problem(problems_of(tmp_path, doc), "bundle-ab", "members[2]", "成员事项不存在")


def test_bundle_cannot_contain_bundle(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][2]["members"].append("bundle-ab")
    assert_problem(problems_of(tmp_path, doc), "bundle-ab", "members", "成员")


@pytest.mark.parametrize(
    ("limit", "text"),
    [
        ({"text": "很快"}, "legal_days"),
        ({"legal_days": 5, "promised_days": 9, "text": "9天"}, "promised_days"),
        ({"legal_days": -1, "text": "x"}, "greater than or equal"),
        ({"legal_days": "三天", "text": "x"}, "integer"),
    ],
)
def test_bad_time_limit(tmp_path: Path, limit: dict[str, Any], text: str) -> None:
    doc = small_guide()
    doc["items"][1]["time_limit"] = limit
    assert_problem(problems_of(tmp_path, doc), "item-b", "time_limit", text)


def test_unknown_department(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][0]["department"] = "dept-zzz"
    assert_problem(problems_of(tmp_path, doc), "item-a", "department", "未知部门")


def test_unknown_situation_and_option(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][0]["materials"][0]["when"] = {"nope": ["yes"]}
    doc["items"][0]["materials"][1]["when"] = {"s1": ["maybe"]}
    problems = problems_of(tmp_path, doc)
    assert_problem(problems, "item-a", "materials[0].when", "未知办事情形")
    assert_problem(problems, "item-a", "materials[1].when", "没有选项")


def test_missing_required_fields_and_unknown_field(tmp_path: Path) -> None:
    doc = small_guide()
    del doc["items"][0]["fee"]
    doc["items"][1]["colour"] = "red"
    doc["items"][1]["materials"] = []
    problems = problems_of(tmp_path, doc)
    assert_problem(problems, "item-a", "fee", "required")
    assert_problem(problems, "item-b", "colour", "Extra inputs")
    assert_problem(problems, "item-b", "materials", "at least 1")


def test_bad_enum_and_id(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][0]["materials"][0]["necessity"] = "随便"
    doc["items"][1]["id"] = "Bad ID!"
    problems = problems_of(tmp_path, doc)
    assert_problem(problems, "item-a", "materials.0.necessity", "Input should be")
    assert_problem(problems, "Bad ID!", "id", "pattern")


def test_free_fee_must_not_name_a_price(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][0]["fee"] = {"free": True, "text": "工本费20元"}
    assert_problem(problems_of(tmp_path, doc), "item-a", "fee", "must not name a price")


def test_duplicate_name(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"].append(item("item-c", "甲事项", [{"ref": "m-id"}]))
    assert_problem(problems_of(tmp_path, doc), "item-c", "name", "重复")


def test_service_point_unknown_item(tmp_path: Path) -> None:
    doc = small_guide()
    doc["service_points"] = [
        {
            "id": "sp-1", "name": "测试点", "address": "示例地址", "district": "道里区",
            "hours": "工作日", "point_type": "派出所", "items": ["item-a", "item-x"],
            "placeholder": True,
            "provenance": {"source": "测试", "verified": "2026-11-01", "confidence": "typical"},
        }
    ]
    assert_problem(problems_of(tmp_path, doc), "sp-1", "items[1]", "未知事项")


def test_malformed_yaml_and_json(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("items: [\n  - {id: x\n", encoding="utf-8")
    _, problems = check_guide(bad_yaml)
    assert len(problems) == 1 and "YAML 格式错误" in problems[0].message
    assert problems[0].field.startswith("line ")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"items": [}', encoding="utf-8")
    _, problems = check_guide(bad_json)
    assert len(problems) == 1 and "JSON 格式错误" in problems[0].message


def test_wrong_top_level_and_encoding(tmp_path: Path) -> None:
    p = tmp_path / "list.json"
    p.write_text(json.dumps([1, 2]), encoding="utf-8")
    assert "顶层" in check_guide(p)[1][0].message
    g = tmp_path / "gbk.yaml"
    g.write_bytes("名称: 测试".encode("gbk"))
    assert "UTF-8" in check_guide(g)[1][0].message


def test_missing_path(tmp_path: Path) -> None:
    assert "不存在" in check_guide(tmp_path / "nope")[1][0].message


def test_all_problems_reported_not_just_first(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][0]["department"] = "x-1"
    doc["items"][1]["materials"][0]["ref"] = "x-2"
    doc["items"][2]["members"].append("x-3")
    assert len(problems_of(tmp_path, doc)) == 3


def test_bundled_guide_base_content() -> None:
    """The bundled Harbin guide base: size, required items, distinguishable neighbours."""
    from knowledge.bundles import bundle_materials

    base, problems = check_guide()
    assert problems == []
    assert len(base.items) + len(base.bundles) >= 200
    names = {e.name for e in [*base.items.values(), *base.bundles.values()]}
    required = Path(__file__).parents[2] / "shared" / "domain" / "required_items.txt"
    if required.exists():
        wanted = [x.strip() for x in required.read_text(encoding="utf-8").splitlines() if x.strip()]
        assert [w for w in wanted if w not in names] == []
        assert sum(1 for w in wanted if w.endswith("一件事")) == 19
    departments = {i.department for i in base.items.values()}
    assert {"gongan", "renshe", "jiaotong", "shichang", "yibao", "gjj", "budongchan", "minzheng",
            "jiaoyu", "weijian", "canlian", "shuiwu"} <= departments
    # No alias names two entries, and no two catalogue materials share a name, so a
    # bundle's merged list never shows one document twice.
    seen: dict[str, str] = {}
    for e in [*base.items.values(), *base.bundles.values()]:
        for a in e.aliases:
            assert seen.setdefault(a, e.id) == e.id, (a, seen[a], e.id)
    mat_names = [m.name for m in base.materials.values()]
    assert len(mat_names) == len(set(mat_names))
    for b in base.bundles.values():
        merged = [m.name for m in bundle_materials(base, b)]
        assert len(merged) == len(set(merged)), b.id
    # Placeholders and caveats: unverified points are marked; entries carry provenance.
    for p in base.service_points.values():
        assert p.placeholder or p.provenance.confidence.value != "typical"
    assert all(e.provenance.source for e in [*base.items.values(), *base.bundles.values()])
    # Never an invented phone number: only the national public-service hotlines.
    hotlines = {"12345", "12333", "12393", "12329", "12366", "12123", "12367", "12315"}
    phones = [e.phone for e in [*base.items.values(), *base.bundles.values()] if e.phone]
    phones += [d.phone for d in base.departments.values() if d.phone]
    phones += [p.phone for p in base.service_points.values() if p.phone]
    assert phones and set(phones) <= hotlines
