"""Guide base storage on SQLite and real PostgreSQL: import, export, round trip, merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.cli import main as cli
from knowledge.bundles import bundle_materials
from knowledge.db import make_engine, migrate
from knowledge.schema import Form, Necessity
from knowledge.store import (
    content_hash,
    ensure_loaded,
    import_guide,
    load_stored,
    stored_hash,
    to_document,
)
from knowledge.validate import load_guide
from tests.guidegen import small_guide, write


def test_bundle_merge_deduplicates_and_keeps_stricter_use(tmp_path: Path) -> None:
    base = load_guide(write(tmp_path / "g.yaml", small_guide()))
    merged = {m.ref: m for m in bundle_materials(base, base.bundles["bundle-ab"])}
    assert list(merged) == ["m-id", "m-cert", "m-book"]  # m-id used by both, listed once
    ident = merged["m-id"]
    assert ident.used_by == ["item-a", "item-b"]
    assert ident.use.form is Form.ORIGINAL  # 原件 beats 复印件
    assert ident.use.copies == 2
    assert ident.use.necessity is Necessity.REQUIRED  # 必要 beats 容缺
    assert ident.conditions == []


def test_bundle_merge_keeps_conditions_of_conditional_materials(tmp_path: Path) -> None:
    doc = small_guide()
    doc["items"][0]["materials"][1]["when"] = {"s1": ["no"]}
    base = load_guide(write(tmp_path / "g.yaml", doc))
    merged = {m.ref: m for m in bundle_materials(base, base.bundles["bundle-ab"])}
    assert [(c.item_id, c.when) for c in merged["m-cert"].conditions] == [
        ("item-a", {"s1": ["no"]})
    ]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip_is_stable(db_url: str, tmp_path: Path, fmt: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ensure_loaded(engine)  # the bundled Harbin guide base
    first = to_document(load_stored(engine))
    exported = tmp_path / f"export.{fmt}"
    if fmt == "json":
        exported.write_text(json.dumps(first, ensure_ascii=False), encoding="utf-8")
    else:
        write(exported, first)
    engine2 = make_engine(f"sqlite:///{tmp_path / 'second.db'}")
    migrate(engine2)
    import_guide(engine2, load_guide(exported))
    second = to_document(load_stored(engine2))
    assert second == first
    assert stored_hash(engine) == stored_hash(engine2) == content_hash(load_stored(engine2))
    engine.dispose()
    engine2.dispose()


def test_export_has_required_fields(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAOBAN_DATABASE_URL", sqlite_url)
    out = tmp_path / "out.json"
    assert cli(["kb", "export", "--json", "-o", str(out)]) == 0  # first run loads bundled data
    doc = json.loads(out.read_text(encoding="utf-8"))
    kinds = {e["kind"] for e in doc["items"]}
    assert kinds == {"item", "bundle"}
    for e in doc["items"]:
        for key in ("id", "name", "kind", "materials", "source", "confidence"):
            assert e.get(key), (e["id"], key)
    newborn = next(e for e in doc["items"] if e["name"] == "新生儿出生一件事")
    refs = [m["ref"] for m in newborn["materials"]]
    assert len(refs) == len(set(refs))


def test_invalid_import_leaves_database_untouched(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAOBAN_DATABASE_URL", db_url)
    good = write(tmp_path / "good.yaml", small_guide())
    assert cli(["kb", "import", str(good)]) == 0
    engine = make_engine(db_url)
    before = to_document(load_stored(engine))
    doc = small_guide()
    doc["items"][0]["name"] = "甲事项（改）"  # a valid change …
    doc["items"][1]["materials"][0]["ref"] = "missing"  # … next to an invalid one
    bad = write(tmp_path / "bad.yaml", doc)
    assert cli(["kb", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "item-b" in err and "未知材料引用" in err and "未写入" in err
    assert to_document(load_stored(engine)) == before
    engine.dispose()


def test_import_upserts_by_id(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAOBAN_DATABASE_URL", db_url)
    assert cli(["kb", "import", str(write(tmp_path / "g.yaml", small_guide()))]) == 0
    doc = small_guide()
    doc["items"][0]["name"] = "乙事项"  # swap names: renames must not collide mid-import
    doc["items"][1]["name"] = "甲事项"
    doc["items"][1]["materials"] = [{"ref": "m-cert"}]
    update = {"format": "daoban-guide/1", "items": doc["items"][:2]}  # refs stored materials
    assert cli(["kb", "import", str(write(tmp_path / "u.yaml", update))]) == 0
    engine = make_engine(db_url)
    base = load_stored(engine)
    engine.dispose()
    assert base.items["item-a"].name == "乙事项"
    assert [m.ref for m in base.items["item-b"].materials] == ["m-cert"]
    assert len(base.items) == 2 and len(base.bundles) == 1


def test_first_run_loads_bundled_guide(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine)
    counts = ensure_loaded(engine)
    assert counts is not None and counts.items + counts.bundles >= 200
    assert ensure_loaded(engine) is None  # second run: nothing to do
    engine.dispose()


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["kb", "validate"]) == 0
    assert "校验通过" in capsys.readouterr().out
    doc = small_guide()
    doc["items"][2]["members"] = ["item-a", "ghost"]
    assert cli(["kb", "validate", str(write(tmp_path / "b.yaml", doc))]) == 1
    err = capsys.readouterr().err
    assert "b.yaml: bundle-ab: members[1]: 成员事项不存在: ghost" in err
