"""``daoban kb lint``: each kind of content problem is reported with file, record and field."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from channels.cli import main
from knowledge.lint import REQUIRED_FILE, Finding, Severity, lint_path, read_required
from knowledge.schema import CORE_TOPICS
from tests.guidegen import small_guide, write

TODAY = date(2026, 11, 29)
ANSWERS = {t.value: {"answer": "unknown"} for t in CORE_TOPICS}


def clean_guide() -> dict[str, Any]:
    doc = small_guide()
    doc["format"] = "daoban-guide/2"
    for rec in doc["items"]:
        rec["answers"] = dict(ANSWERS)
    return doc


def broken_guide() -> dict[str, Any]:
    """One example of every kind of problem the linter knows."""
    doc = clean_guide()
    a, b, ab = doc["items"]
    doc["materials"].append({"id": "m-id-2", "name": "居民身份证（正反面）", "how_to_get": "同身份证"})
    # A yearly window whose year is over, an enrolment date of a past year, a past-year
    # fact in prose, and a rule's effective date (which is not stale).
    a["windows"] = [{"name": "2025年度集中缴费期", "year": 2025, "text": "以当年公告为准"}]
    b["conditions"] = ["2024年为6月3日至14日网上报名"]
    b["windows"] = [{"name": "2026年度集中缴费期", "year": 2026, "start": "2026-09-01",
                     "end": "2026-11-01", "text": "以当年公告为准"}]
    a["summary"] = "甲事项的说明。2023年全市办理1万件。"
    b["faq"] = [{"q": "什么时候开始的？", "a": "2025年1月1日起施行新规定。"}]
    # The bundle says the 户口本 is not needed; member item-b asks for the paper one.
    ab["summary"] = "甲乙一起办，不用再带户口本。"
    ab["conditions"] = ["户籍信息由部门共享核验"]
    # "填一张表" while each member has its own application form.
    ab["time_limit"] = {"instant": True, "text": "填一张表，当场办结"}
    doc["materials"] += [{"id": "m-form-a", "name": "甲申请表", "how_to_get": "窗口领取"},
                         {"id": "m-form-b", "name": "乙申请书", "how_to_get": "窗口领取"}]
    # A member's note, shown on the bundle's list, says 出生医学证明 need not be handed in,
    # while the other member requires the paper original.
    a["materials"][1].update(source="共享免提交", note="无需提交，部门共享")
    b["materials"].append({"ref": "m-cert"})
    # The same material twice in one item's list (both apply when s1 is yes), and twice
    # under two catalogue ids in the bundle's merged list.
    a["materials"].append({"ref": "m-id", "when": {"s1": ["yes"]}})
    b["materials"][0]["ref"] = "m-id-2"
    a["materials"].append({"ref": "m-form-a", "form": "填写"})
    b["materials"].append({"ref": "m-form-b"})
    # A required item without its practical answers.
    del b["answers"]
    return doc


def run(tmp_path: Path, doc: dict[str, Any], required: list[str]) -> list[Finding]:
    (tmp_path / "guide").mkdir(exist_ok=True)
    write(tmp_path / "guide" / "g.yaml", doc)
    (tmp_path / "required.txt").write_text("\n".join(["# 必办事项", *required]) + "\n",
                                           encoding="utf-8")
    return lint_path(tmp_path / "guide", today=TODAY, required_file=tmp_path / "required.txt")


def find(findings: list[Finding], record: str, field: str, text: str,
         severity: Severity = Severity.ERROR, file: str = "g.yaml") -> Finding:
    hits = [f for f in findings if f.record == record and f.field == field and text in f.message
            and f.severity is severity and f.file.endswith(file)]
    assert hits, f"no {severity} {record}/{field}/{text!r} in\n" + "\n".join(map(str, findings))
    return hits[0]


@pytest.fixture
def findings(tmp_path: Path) -> list[Finding]:
    return run(tmp_path, broken_guide(), ["甲事项", "乙事项", "甲乙一件事", "没有这个事项"])


def test_a_clean_guide_has_no_findings(tmp_path: Path) -> None:
    assert run(tmp_path, clean_guide(), ["甲事项", "乙事项", "甲乙一件事"]) == []


def test_stale_years(findings: list[Finding]) -> None:
    find(findings, "item-a", "windows[0].year", "2025")
    find(findings, "item-b", "conditions[0]", "2024年的办理日期")
    find(findings, "item-a", "summary", "2023年", Severity.WARNING)
    find(findings, "item-b", "windows[0].end", "已于 2026-11-01 结束", Severity.WARNING)
    assert not [f for f in findings if f.field.startswith("faq")], "a rule's start date is not stale"


def test_bundle_claim_contradicts_a_member(findings: list[Finding]) -> None:
    f = find(findings, "bundle-ab", "summary", "不用再带户口本")
    assert "item-b" in f.message and "m-book" in f.message
    f = find(findings, "bundle-ab", "conditions[0]", "户籍信息由部门共享核验")
    assert "m-book" in f.message
    f = find(findings, "bundle-ab", "time_limit.text", "填一张表")
    assert "2张表" in f.message and "甲申请表" in f.message and "乙申请书" in f.message


def test_material_not_needed_in_the_bundle_list(findings: list[Finding]) -> None:
    f = find(findings, "bundle-ab", "materials[1]", "无需提交")
    assert "m-cert" in f.message and "item-b" in f.message


def test_same_material_twice(findings: list[Finding]) -> None:
    find(findings, "item-a", "materials[2]", "居民身份证")
    find(findings, "bundle-ab", "materials[3]", "m-id-2")


def test_required_items(findings: list[Finding]) -> None:
    f = find(findings, "item-b", "answers", "必办事项缺少实用问答")
    assert all(t.value in f.message for t in CORE_TOPICS)
    find(findings, "没有这个事项", "line 5", "没有同名条目", file="required.txt")
    assert not [f for f in findings if f.record in ("item-a", "bundle-ab")
                and f.field == "answers"]


def test_invalid_guide_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    doc = clean_guide()
    doc["items"][0]["materials"].append({"ref": "no-such"})
    found = run(tmp_path, doc, [])
    find(found, "item-a", "materials[2].ref", "未知材料引用")


def test_cli_exit_code_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(tmp_path, broken_guide(), ["甲事项"])
    args = ["kb", "lint", str(tmp_path / "guide"), "--required", str(tmp_path / "required.txt")]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "g.yaml: bundle-ab: summary: error:" in out and "warning" in out
    assert main([*args, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"] >= 6 and doc["warnings"] >= 1
    assert {"file", "record", "field", "severity", "message"} <= set(doc["findings"][0])
    (tmp_path / "ok").mkdir()
    write(tmp_path / "ok" / "g.yaml", clean_guide())
    assert main(["kb", "lint", str(tmp_path / "ok")]) == 0


def test_the_bundled_guide_base_lints_without_errors() -> None:
    required = read_required(REQUIRED_FILE)
    assert len(required) == 51
    errors = [str(f) for f in lint_path() if f.severity is Severity.ERROR]
    assert errors == [], "\n".join(errors)
