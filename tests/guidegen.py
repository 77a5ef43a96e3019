"""Small valid guide-base records for tests; each test breaks one thing on purpose."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

PROV = {"source": "测试数据", "verified": "2026-11-01", "confidence": "typical"}


def item(item_id: str, name: str, materials: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": item_id,
        "kind": "item",
        "name": name,
        "aliases": [],
        "summary": f"{name}的说明。",
        "audience": ["个人"],
        "item_type": "行政确认",
        "department": "dept-a",
        "time_limit": {"instant": True, "text": "即办"},
        "fee": {"free": True, "text": "不收费"},
        "channels": [{"type": "窗口", "name": "测试窗口"}],
        "where": {"text": "测试地点", "point_type": "派出所"},
        "visits": 1,
        "materials": materials,
        "provenance": PROV,
    }
    rec.update(extra)
    return rec


def bundle(bundle_id: str, name: str, members: list[str], **extra: Any) -> dict[str, Any]:
    rec = item(bundle_id, name, [], **extra)
    for k in ("item_type", "department", "materials"):
        rec.pop(k)
    rec.update(kind="bundle", lead_department="dept-a", members=members)
    rec.update(extra)
    return rec


def small_guide() -> dict[str, Any]:
    return copy.deepcopy(
        {
            "format": "daoban-guide/1",
            "departments": [{"id": "dept-a", "name": "测试局", "short": "测试"}],
            "materials": [
                {"id": "m-id", "name": "居民身份证", "how_to_get": "到派出所办理"},
                {"id": "m-book", "name": "居民户口簿", "how_to_get": "户主保管"},
                {"id": "m-cert", "name": "出生医学证明", "how_to_get": "医院签发"},
            ],
            "items": [
                item(
                    "item-a",
                    "甲事项",
                    [{"ref": "m-id", "form": "复印件"}, {"ref": "m-cert"}],
                    situations=[
                        {
                            "id": "s1",
                            "question": "婚生吗？",
                            "options": [{"id": "yes", "label": "婚生"}, {"id": "no", "label": "非婚生"}],
                        }
                    ],
                ),
                item(
                    "item-b",
                    "乙事项",
                    [
                        {"ref": "m-id", "form": "原件", "copies": 2, "necessity": "容缺可后补"},
                        {"ref": "m-book", "when": {}},
                    ],
                ),
                bundle("bundle-ab", "甲乙一件事", ["item-a", "item-b"]),
            ],
            "service_points": [],
        }
    )


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
