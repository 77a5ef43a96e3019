"""``daoban kb lint``: content problems that a valid guide base can still have.

``validate`` checks shape and references; the linter checks what a citizen would be told:
dated facts that are behind the current year, a 一件事 bundle promising "不用…" (or
"填一张表") where its members still ask for the paper document (or several forms), the
same material twice in one checklist, and required entries without the practical answers
(``CORE_TOPICS``).
Everything here is a pure function of the loaded guide; no database is needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from knowledge.bundles import bundle_materials
from knowledge.errors import Problem
from knowledge.schema import (
    CORE_TOPICS,
    Bundle,
    Form,
    GuideFile,
    Material,
    MaterialSource,
    MaterialUse,
    Medium,
    Necessity,
    ServiceItem,
)
from knowledge.validate import (
    BUNDLED_DIR,
    GuideBase,
    check_guide,
    cross_check,
    guide_files,
    parse_file,
)

REQUIRED_FILE = BUNDLED_DIR.parent / "required_items.txt"

Entry = ServiceItem | Bundle


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    file: str
    record: str
    field: str
    message: str
    severity: Severity

    def __str__(self) -> str:
        return f"{self.file}: {self.record}: {self.field}: {self.severity.value}: {self.message}"


@dataclass(frozen=True)
class LintedGuide:
    """A loaded guide base and the file each record came from."""

    base: GuideBase
    origin: dict[str, str]  # entry id -> file


# --- dated facts -------------------------------------------------------------------------

_YEAR = re.compile(r"(?<!\d)(20\d{2})\s*年(度)?((?:\d{1,2}\s*月)?(?:\d{1,2}\s*日)?)")
# A year that dates a rule ("2025年1月1日起施行", "2023年起不再发放") or a birth-date range
# is a current fact, not a stale one.
_SINCE_AFTER = re.compile(r"\s*(起|以来|开始|前出生|后出生)")
_RULE_DATE = re.compile(r"施行|实施|修订|修正|颁布|印发|发布|出台|生效|出生|推行|推开")
# A clause stating when to apply: a stale year there sends a citizen to a closed window.
_DEADLINE = re.compile(r"报名|截止|截至|缴费期|参保期|集中|录取|招生|申报期|受理期|认证期|"
                       r"前办理|之前办理|办理时间|开放时间|窗口期|期限")
_CLAUSE_SEP = re.compile(r"[，,。；;！!？?\n（）()]")


def _clause(text: str, start: int, end: int) -> str:
    left = max((m.end() for m in _CLAUSE_SEP.finditer(text, 0, start)), default=0)
    right = _CLAUSE_SEP.search(text, end)
    return text[left: right.start() if right else len(text)]


def stale_years(text: str, year: int) -> Iterator[tuple[int, str, bool]]:
    """(stale year, its clause, whether the clause states a date to apply by)."""
    for m in _YEAR.finditer(text):
        y = int(m.group(1))
        if y >= year or (m.group(2) and y >= year - 1):  # "2025年度汇算" is done in 2026
            continue
        clause = _clause(text, m.start(), m.end())
        if _SINCE_AFTER.match(text, m.end()) or _RULE_DATE.search(clause):
            continue
        if any(int(c) >= year for c in re.findall(r"(?<!\d)(20\d{2})\s*年", clause)):
            continue  # "2027年秋季入学为2020年9月1日…出生": relative to a current year
        yield y, clause, bool(_DEADLINE.search(clause))


def _texts(e: Entry) -> Iterator[tuple[str, str]]:
    yield "summary", e.summary
    for i, c in enumerate(e.conditions):
        yield f"conditions[{i}]", c
    yield "time_limit.text", e.time_limit.text
    yield "fee.text", e.fee.text
    yield "where.text", e.where.text
    for i, f in enumerate(e.faq):
        yield f"faq[{i}].q", f.q
        yield f"faq[{i}].a", f.a
    for topic, a in e.answers.items():
        if a.text:
            yield f"answers.{topic.value}.text", a.text
    for i, r in enumerate(e.eligibility):
        yield f"eligibility[{i}].text", r.text
    for i, w in enumerate(e.windows):
        yield f"windows[{i}].name", w.name
        yield f"windows[{i}].text", w.text


def check_dates(g: LintedGuide, today: date) -> list[Finding]:
    out: list[Finding] = []
    for e in _entries(g.base):
        f = g.origin.get(e.id, "-")
        for i, w in enumerate(e.windows):
            if w.year < today.year:
                out.append(Finding(f, e.id, f"windows[{i}].year",
                                   f"时间窗口“{w.name}”的年份 {w.year} 已过（今年 {today.year}）",
                                   Severity.ERROR))
            if w.year >= today.year and w.end and w.end < today.isoformat():
                out.append(Finding(f, e.id, f"windows[{i}].end",
                                   f"时间窗口“{w.name}”已于 {w.end} 结束，请补上下一期",
                                   Severity.WARNING))
        stale_windows = {f"windows[{i}]." for i, w in enumerate(e.windows) if w.year < today.year}
        for fld, text in _texts(e):
            if fld[: fld.find(".") + 1] in stale_windows:
                continue  # reported once, by its year
            clauses: dict[str, tuple[list[int], bool]] = {}
            for y, clause, deadline in stale_years(text, today.year):
                clauses.setdefault(clause, ([], deadline))[0].append(y)
            for clause, (years, deadline) in clauses.items():
                what = "办理日期" if deadline else "事实"
                out.append(Finding(f, e.id, fld, f"{'、'.join(map(str, years))}年的{what}已过时"
                                   f"（今年 {today.year}）：“{clause}”",
                                   Severity.ERROR if deadline else Severity.WARNING))
    return out


# --- bundle claims against member materials ----------------------------------------------

# Everyday names a bundle's prose uses for catalogue materials (the catalogue names are
# formal: a claim says "不用再开迁移证", the catalogue says 户口迁移证或准予迁入证明).
_NICKNAMES = {
    "户口簿": ("户口本",), "出生医学证明": ("出生证",), "死亡医学证明": ("死亡证明",),
    "不动产权证书": ("房本", "房产证"), "解除或终止劳动关系证明": ("离职证明", "解除劳动合同证明"),
    "火化证明": ("火化证",), "退休证明": ("退休证",), "残疾人证": ("残疾证",),
    "机动车驾驶证": ("驾照",), "社会保障卡": ("社保卡",),
}
_INFO_WORDS = {"户籍": "户口簿", "出生": "出生医学证明", "死亡": "死亡医学证明", "火化": "火化证明",
               "婚姻": "结婚证", "房产": "不动产权证书"}
_QUALIFIERS = ("中华人民共和国", "居民", "户口", "申请人", "本人", "个人", "纸质")
_DOCUMENT = re.compile(r"(证|证明|证书|书|簿|本|照|表|卡|合同|协议|单|函|报告|凭证|材料|照片)$")
_NEGATION = re.compile(r"不用|无需|无须|不需要|不必|不再|免交|免提交|免于提交|不交|少交|不要再")
_NOT_ON_PAPER = re.compile(r"电子证照|共享|调取|网上核验|信息核验|部门核验|免提交|免交|容缺|后补|承诺书?代替")
# "填一张表" promises one form; the computed list says how many there are to fill in.
_ONE_FORM = re.compile(r"一张表|一表申请|一表通办|一份表")
_FORM_NAME = re.compile(r"(表|申请书|清册)$")


def material_names(m: Material) -> set[str]:
    """The catalogue name, its parts ("A或B", "A（B）") and their everyday names."""
    names = {m.name}
    for part in re.split(r"[（）()、/]|或|及|和", m.name):
        part = part.strip()
        if len(part) < 2 or not _DOCUMENT.search(part):  # "法定代表人" is not a document
            continue
        names.add(part)
        for q in _QUALIFIERS:
            if part.startswith(q) and len(part) - len(q) >= 3:
                names.add(part[len(q):])
    for formal, everyday in _NICKNAMES.items():
        if any(formal in n for n in list(names)):
            names.update(everyday)
    return names


def on_paper(use: MaterialUse) -> bool:
    """The citizen must bring this document: required, self-supplied or issued, on paper."""
    return (use.necessity is Necessity.REQUIRED
            and use.source in (MaterialSource.SELF, MaterialSource.ISSUED)
            and use.medium is not Medium.ELECTRONIC)


def _claims(text: str) -> Iterator[tuple[str, str]]:
    """(clause, the part of it a material must appear in to be claimed not needed)."""
    for clause in _CLAUSE_SEP.split(text):
        neg = _NEGATION.search(clause)
        if neg:
            yield clause, clause[neg.end():]
        elif _NOT_ON_PAPER.search(clause):
            # "出生、户籍等信息由部门共享核验" names the documents by what they record.
            info = [doc for w, doc in _INFO_WORDS.items() if "信息" in clause and w in clause]
            yield clause, clause + "".join(info)


def check_bundle_claims(g: LintedGuide) -> list[Finding]:
    out: list[Finding] = []
    for b in g.base.bundles.values():
        f = g.origin.get(b.id, "-")
        members = [g.base.items[m] for m in b.members if m in g.base.items]
        forms = [m.name for m in bundle_materials(g.base, b) if not m.conditions
                 and (m.use.form is Form.FILLED or _FORM_NAME.search(_key(m.name)))]
        for fld, text in _texts(b):
            for clause in _CLAUSE_SEP.split(text):
                if _ONE_FORM.search(clause) and len(forms) > 1:
                    out.append(Finding(f, b.id, fld, f"说“{clause}”，但成员事项要分别填写"
                                       f"{len(forms)}张表：{'、'.join(forms)}", Severity.ERROR))
            for clause, scope in _claims(text):
                needing: dict[str, list[str]] = {}  # material id -> members needing paper
                for member in members:
                    for use in member.materials:
                        mat = g.base.materials.get(use.ref)
                        if mat is not None and on_paper(use) \
                                and any(n in scope for n in material_names(mat)):
                            part = "（部分情形）" if use.when else ""
                            needing.setdefault(mat.id, []).append(
                                f"“{member.name}”({member.id}){part}")
                for mid, who in needing.items():
                    out.append(Finding(
                        f, b.id, fld,
                        f"说“{clause}”，但成员事项{'、'.join(dict.fromkeys(who))}要求提交纸质的"
                        f"{g.base.materials[mid].name}({mid})", Severity.ERROR))
    return out


def _not_needed(use: MaterialUse) -> str | None:
    if use.source in (MaterialSource.SHARED, MaterialSource.E_LICENSE):
        return use.source.value
    if use.necessity is not Necessity.REQUIRED:
        return use.necessity.value
    if use.medium is Medium.ELECTRONIC:
        return "电子材料"
    return None


def _note_claims(note: str, names: set[str]) -> str | None:
    """The clause of a material note saying the material need not be brought."""
    for clause, scope in _claims(note):
        if any(n in scope for n in names) or _BARE_SUBMIT.fullmatch(scope.strip()):
            return clause
    return None


_BARE_SUBMIT = re.compile(r"(再|另)?(提交|提供|交|带)(纸质件|原件|复印件|纸质材料)?")


def check_bundle_lists(g: LintedGuide) -> list[Finding]:
    """A line of a bundle's (computed) material list that says the material is not needed
    — by its flags or by a member's note — while a member requires the paper document."""
    out: list[Finding] = []
    for b in g.base.bundles.values():
        f = g.origin.get(b.id, "-")
        for i, merged in enumerate(bundle_materials(g.base, b)):
            mat = g.base.materials.get(merged.ref)
            why = _not_needed(merged.use)
            if why is None and merged.use.note and mat is not None:
                said = _note_claims(merged.use.note, material_names(mat))
                why = f"备注“{said}”" if said else None
            if why is None:
                continue
            for mid in merged.used_by:
                member = g.base.items[mid]
                if any(u.ref == merged.ref and on_paper(u) for u in member.materials):
                    out.append(Finding(
                        f, b.id, f"materials[{i}]",
                        f"一件事清单里{merged.name}({merged.ref})标为不用提交（{why}），"
                        f"但成员事项“{member.name}”({mid})要求提交纸质材料", Severity.ERROR))
                    break
    return out


# --- duplicates in one checklist ---------------------------------------------------------

def _key(name: str) -> str:
    return re.sub(r"[\s《》“”]|[（(][^）)]*[）)]", "", name)


def _overlap(a: dict[str, list[str]], b: dict[str, list[str]]) -> bool:
    """Whether two ``when`` conditions can hold at once (empty = always)."""
    return all(set(a[s]) & set(b[s]) for s in a.keys() & b.keys())


def check_duplicates(g: LintedGuide) -> list[Finding]:
    out: list[Finding] = []
    mats = g.base.materials
    for item in g.base.items.values():
        f = g.origin.get(item.id, "-")
        for j, use in enumerate(item.materials):
            for i, prev in enumerate(item.materials[:j]):
                same_ref = prev.ref == use.ref
                same_name = (prev.ref in mats and use.ref in mats
                             and _key(mats[prev.ref].name) == _key(mats[use.ref].name))
                if (same_ref or same_name) and _overlap(prev.when, use.when):
                    name = mats[use.ref].name if use.ref in mats else use.ref
                    out.append(Finding(f, item.id, f"materials[{j}]",
                                       f"材料“{name}”与 materials[{i}] 重复（同一情形下出现两次）",
                                       Severity.ERROR))
                    break
    for b in g.base.bundles.values():
        f = g.origin.get(b.id, "-")
        seen: dict[str, int] = {}
        for i, merged in enumerate(bundle_materials(g.base, b)):
            k = _key(merged.name)
            if k in seen:
                out.append(Finding(f, b.id, f"materials[{i}]",
                                   f"合并后的材料清单里“{merged.name}”出现两次"
                                   f"（{merged.ref} 与 materials[{seen[k]}]）", Severity.ERROR))
            seen.setdefault(k, i)
    return out


# --- required entries --------------------------------------------------------------------

def read_required(path: Path) -> list[tuple[int, str]]:
    """(line number, entry name) for each name in a required-items list; # comments."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(n, s.strip()) for n, s in enumerate(lines, 1)
            if s.strip() and not s.lstrip().startswith("#")]


def check_required(g: LintedGuide, required: Sequence[tuple[int, str]],
                   required_file: str) -> list[Finding]:
    by_name = {e.name: e for e in _entries(g.base)}
    out: list[Finding] = []
    for n, name in required:
        e = by_name.get(name)
        if e is None:
            out.append(Finding(required_file, name, f"line {n}",
                               "必办事项在指南库中没有同名条目", Severity.ERROR))
            continue
        missing = [t.value for t in CORE_TOPICS if t not in e.answers]
        if missing:
            out.append(Finding(g.origin.get(e.id, "-"), e.id, "answers",
                               f"必办事项缺少实用问答: {', '.join(missing)}", Severity.ERROR))
    return out


# --- the whole lint ----------------------------------------------------------------------

def check_examples(g: LintedGuide, examples: Mapping[str, Sequence[str]],
                   examples_file: str) -> list[Finding]:
    """Example questions filed under an id the guide base does not have (retrieval skips
    them): usually an entry renamed or removed since the questions were collected."""
    known = {e.id for e in _entries(g.base)}
    return [Finding(examples_file, entry_id, "questions",
                    f"问法示例对应的事项不存在，{len(said)} 条示例不起作用", Severity.WARNING)
            for entry_id, said in examples.items() if entry_id not in known]


def _entries(base: GuideBase) -> list[Entry]:
    return [*base.items.values(), *base.bundles.values()]


def lint(g: LintedGuide, *, today: date, required: Sequence[tuple[int, str]] = (),
         required_file: str = "-") -> list[Finding]:
    findings = [*check_dates(g, today), *check_bundle_claims(g), *check_bundle_lists(g),
                *check_duplicates(g), *check_required(g, required, required_file)]
    return sorted(findings, key=lambda x: (x.severity is not Severity.ERROR, x.file, x.record))


def load(path: Path | None = None) -> tuple[LintedGuide, list[Problem]]:
    """The guide base at ``path`` (default: the bundled one) with each entry's file."""
    root = path or BUNDLED_DIR
    if not root.exists() or not guide_files(root):
        empty, why = check_guide(root)  # says what is wrong with the path
        return LintedGuide(empty, {}), why
    parsed: list[tuple[Path, GuideFile]] = []
    problems: list[Problem] = []
    origin: dict[str, str] = {}
    for file in guide_files(root):
        gf, errs = parse_file(file)
        problems.extend(errs)
        if gf is not None:
            parsed.append((file, gf))
            for e in gf.items:
                origin.setdefault(e.id, str(file))
    base, cross = cross_check(parsed)
    return LintedGuide(base, origin), problems + cross


def lint_path(path: Path | None = None, *, today: date | None = None,
              required_file: Path | None = None,
              examples: Mapping[str, Sequence[str]] | None = None,
              examples_file: str = "-") -> list[Finding]:
    """Validation problems (as errors) and lint findings for a guide base on disk; the
    required-items list defaults to the bundled one when the bundled guide is linted."""
    g, problems = load(path)
    if required_file is None and (path is None or path.resolve() == BUNDLED_DIR.resolve()):
        required_file = REQUIRED_FILE
    found = [Finding(p.file, p.record, p.field, p.message, Severity.ERROR) for p in problems]
    required: list[tuple[int, str]] = []
    if required_file is not None:
        try:
            required = read_required(required_file)
        except (OSError, UnicodeDecodeError) as exc:
            found.append(Finding(str(required_file), "-", "-", f"无法读取必办事项清单: {exc}",
                                 Severity.ERROR))
    if examples is not None:
        found.extend(check_examples(g, examples, examples_file))
    return found + lint(g, today=today or date.today(), required=required,
                        required_file=str(required_file or "-"))
