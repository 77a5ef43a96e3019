"""Load and validate guide-base files: every problem with file, record id and field.

Validation never stops at the first problem: an editor fixing a 200-item file wants
the whole list. ``load_guide`` returns a merged ``GuideBase`` only when there is none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from knowledge.errors import GuideInvalid, Problem
from knowledge.schema import (
    Bundle,
    Department,
    GuideFile,
    Material,
    ServiceItem,
    ServicePoint,
)

BUNDLED_DIR = Path(__file__).parent / "data" / "guide"
SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class GuideBase:
    """A whole, valid guide base (all files merged)."""

    departments: dict[str, Department] = field(default_factory=dict)
    materials: dict[str, Material] = field(default_factory=dict)
    items: dict[str, ServiceItem] = field(default_factory=dict)
    bundles: dict[str, Bundle] = field(default_factory=dict)
    service_points: dict[str, ServicePoint] = field(default_factory=dict)

    def entry(self, entry_id: str) -> ServiceItem | Bundle | None:
        return self.items.get(entry_id) or self.bundles.get(entry_id)


def guide_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
    return [path]


def _read(path: Path) -> tuple[Any, list[Problem]]:
    name = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return None, [Problem(name, "-", "-", f"无法读取文件: {exc.strerror}")]
    if size > MAX_FILE_BYTES:
        return None, [Problem(name, "-", "-", f"文件过大 ({size} 字节, 上限 {MAX_FILE_BYTES})")]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [Problem(name, "-", "-", "文件不是 UTF-8 编码")]
    try:
        if path.suffix == ".json":
            return json.loads(text), []
        return yaml.safe_load(text), []
    except json.JSONDecodeError as exc:
        return None, [Problem(name, "-", f"line {exc.lineno}", f"JSON 格式错误: {exc.msg}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "-"
        return None, [Problem(name, "-", where, f"YAML 格式错误: {getattr(exc, 'problem', exc)}")]


def _record_id(raw: Any, loc: Sequence[int | str]) -> tuple[str, str]:
    """Map a pydantic error location to (record id, field path inside the record)."""
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(raw, dict):
        records = raw.get(str(loc[0]))
        rid = f"{loc[0]}[{loc[1]}]"
        if isinstance(records, list) and loc[1] < len(records):
            rec = records[loc[1]]
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                rid = rec["id"]
        rest = [str(x) for x in loc[2:] if str(x) not in ("item", "bundle")]
        return rid, ".".join(rest) or "-"
    return "-", ".".join(str(x) for x in loc) or "-"


def _drop_derived(raw: dict[str, Any]) -> None:
    """Drop what ``kb export`` adds for readers, so an export imports again unchanged."""
    items = raw.get("items")
    if not isinstance(items, list):
        return
    for rec in items:
        if isinstance(rec, dict):
            rec.pop("source", None)
            rec.pop("confidence", None)
            if rec.get("kind") == "bundle":
                rec.pop("materials", None)


def parse_file(path: Path) -> tuple[GuideFile | None, list[Problem]]:
    raw, problems = _read(path)
    if problems:
        return None, problems
    if not isinstance(raw, dict):
        return None, [Problem(str(path), "-", "-", "顶层必须是一个对象 (format/items/...)")]
    _drop_derived(raw)
    try:
        return GuideFile.model_validate(raw), []
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            rid, fld = _record_id(raw, err["loc"])
            out.append(Problem(str(path), rid, fld, err["msg"]))
        return None, out


def cross_check(
    files: Iterable[tuple[Path, GuideFile]], known: GuideBase | None = None
) -> tuple[GuideBase, list[Problem]]:
    """Merge parsed files and check everything that spans records.

    ``known`` (e.g. what is already stored) may satisfy references the files make.
    """
    known = known or GuideBase()
    problems: list[Problem] = []
    base = GuideBase()
    origin: dict[str, str] = {}
    parsed = list(files)

    def put(table: dict[str, Any], rec: Any, fname: str, kind: str) -> None:
        key = f"{kind}:{rec.id}" if kind != "entry" else f"entry:{rec.id}"
        if key in origin:
            problems.append(
                Problem(fname, rec.id, "id", f"重复的 id (首次出现在 {origin[key]})")
            )
            return
        origin[key] = fname
        table[rec.id] = rec

    for path, gf in parsed:
        fname = str(path)
        for d in gf.departments:
            put(base.departments, d, fname, "department")
        for m in gf.materials:
            put(base.materials, m, fname, "material")
        for e in gf.items:
            put(base.items if isinstance(e, ServiceItem) else base.bundles, e, fname, "entry")
        for sp in gf.service_points:
            put(base.service_points, sp, fname, "point")

    where_of = {}
    for path, gf in parsed:
        for e in gf.items:
            where_of[e.id] = str(path)
        for sp in gf.service_points:
            where_of["point:" + sp.id] = str(path)

    names: dict[str, str] = {
        e.name: e.id
        for e in [*known.items.values(), *known.bundles.values()]
        if e.id not in base.items and e.id not in base.bundles
    }
    for entry in [*base.items.values(), *base.bundles.values()]:
        fname = where_of[entry.id]
        if entry.name in names and names[entry.name] != entry.id:
            problems.append(
                Problem(fname, entry.id, "name", f"名称与 {names[entry.name]} 重复")
            )
        names.setdefault(entry.name, entry.id)

    for item in base.items.values():
        fname = where_of[item.id]
        if item.department not in base.departments and item.department not in known.departments:
            problems.append(Problem(fname, item.id, "department", f"未知部门 {item.department}"))
        situations = {s.id: {o.id for o in s.options} for s in item.situations}
        seen_refs: set[str] = set()
        for i, use in enumerate(item.materials):
            fld = f"materials[{i}]"
            if use.ref not in base.materials and use.ref not in known.materials:
                problems.append(Problem(fname, item.id, fld + ".ref", f"未知材料引用 {use.ref}"))
            key = use.ref + repr(sorted(use.when.items()))
            if key in seen_refs:
                problems.append(Problem(fname, item.id, fld + ".ref", f"材料 {use.ref} 重复"))
            seen_refs.add(key)
            for sid, opts in use.when.items():
                if sid not in situations:
                    problems.append(Problem(fname, item.id, fld + ".when", f"未知办事情形 {sid}"))
                    continue
                for o in opts:
                    if o not in situations[sid]:
                        problems.append(
                            Problem(fname, item.id, fld + ".when", f"情形 {sid} 没有选项 {o}")
                        )
        if len(situations) != len(item.situations):
            problems.append(Problem(fname, item.id, "situations", "办事情形 id 重复"))

    for entry in [*base.items.values(), *base.bundles.values()]:
        for topic, ans in entry.answers.items():
            for j, ref in enumerate(ans.materials):
                if ref not in base.materials and ref not in known.materials:
                    problems.append(Problem(where_of[entry.id], entry.id,
                                            f"answers.{topic.value}.materials[{j}]",
                                            f"未知材料引用 {ref}"))

    for bundle in base.bundles.values():
        fname = where_of[bundle.id]
        if (
            bundle.lead_department not in base.departments
            and bundle.lead_department not in known.departments
        ):
            problems.append(
                Problem(fname, bundle.id, "lead_department", f"未知部门 {bundle.lead_department}")
            )
        if len(set(bundle.members)) != len(bundle.members):
            problems.append(Problem(fname, bundle.id, "members", "成员事项重复"))
        for i, mid in enumerate(bundle.members):
            if mid not in base.items and mid not in known.items:
                is_bundle = mid in base.bundles or mid in known.bundles
                what = "成员不能是另一个一件事" if is_bundle else "成员事项不存在"
                problems.append(Problem(fname, bundle.id, f"members[{i}]", f"{what}: {mid}"))

    for sp in base.service_points.values():
        fname = where_of["point:" + sp.id]
        for i, iid in enumerate(sp.items):
            if all(iid not in t for t in (base.items, base.bundles, known.items, known.bundles)):
                problems.append(Problem(fname, sp.id, f"items[{i}]", f"未知事项 {iid}"))
    return base, problems


def load_guide(path: Path | None = None, known: GuideBase | None = None) -> GuideBase:
    """Load a file or a directory of files; raise ``GuideInvalid`` listing every problem."""
    base, problems = check_guide(path, known)
    if problems:
        raise GuideInvalid(problems)
    return base


def check_guide(
    path: Path | None = None, known: GuideBase | None = None
) -> tuple[GuideBase, list[Problem]]:
    root = path or BUNDLED_DIR
    if not root.exists():
        return GuideBase(), [Problem(str(root), "-", "-", "路径不存在")]
    files = guide_files(root)
    if not files:
        return GuideBase(), [Problem(str(root), "-", "-", "目录中没有 .yaml/.yml/.json 文件")]
    parsed: list[tuple[Path, GuideFile]] = []
    problems: list[Problem] = []
    for f in files:
        gf, errs = parse_file(f)
        problems.extend(errs)
        if gf is not None:
            parsed.append((f, gf))
    base, cross = cross_check(parsed, known)
    return base, problems + cross
