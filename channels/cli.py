"""The ``daoban`` command line: serve, chat, kb validate|lint|import|export, search, eval."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from assistant.components import NotReady
from channels.settings import Settings
from knowledge.db import make_engine, migrate
from knowledge.errors import GuideInvalid, Problem
from knowledge.store import ensure_loaded, import_guide, load_stored, to_document
from knowledge.validate import check_guide, load_guide


def _print_problems(problems: Sequence[Problem]) -> None:
    for p in problems:
        print(str(p), file=sys.stderr)
    print(f"共 {len(problems)} 个问题 ({len(problems)} problem(s))", file=sys.stderr)


def open_db(settings: Settings, *, autoload: bool = True) -> Engine:
    """Engine with migrated tables; an empty database gets the bundled guide base."""
    engine = make_engine(settings.database_url)
    migrate(engine)
    if autoload:
        counts = ensure_loaded(engine, settings.guide_path)
        if counts is not None:
            print(f"已载入办事指南库: {counts}", file=sys.stderr)
    return engine


def cmd_kb_validate(args: argparse.Namespace, settings: Settings) -> int:
    base, problems = check_guide(Path(args.path) if args.path else settings.guide_path)
    if problems:
        _print_problems(problems)
        return 1
    print(
        f"校验通过 (valid): {len(base.items)} items, {len(base.bundles)} bundles, "
        f"{len(base.materials)} materials, {len(base.service_points)} service points"
    )
    return 0


def cmd_kb_lint(args: argparse.Namespace, settings: Settings) -> int:
    from knowledge.lint import Severity, lint_path
    from nlu.examples import QUESTIONS_FILE, ExamplesError, load_examples

    path = Path(args.path) if args.path else settings.guide_path
    try:
        examples = load_examples(QUESTIONS_FILE)
    except ExamplesError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    findings = lint_path(path, required_file=Path(args.required) if args.required else None,
                         examples=examples, examples_file=str(QUESTIONS_FILE))
    errors = sum(f.severity is Severity.ERROR for f in findings)
    if args.json:
        print(json.dumps({"errors": errors, "warnings": len(findings) - errors,
                          "findings": [{"file": f.file, "record": f.record, "field": f.field,
                                        "severity": f.severity.value, "message": f.message}
                                       for f in findings]}, ensure_ascii=False, indent=1))
    else:
        for f in findings:
            print(str(f))
        print(f"共 {errors} 个错误、{len(findings) - errors} 个警告 "
              f"({errors} error(s), {len(findings) - errors} warning(s))")
    return 1 if errors else 0


def cmd_kb_import(args: argparse.Namespace, settings: Settings) -> int:
    engine = open_db(settings, autoload=False)
    try:
        base = load_guide(Path(args.path), known=load_stored(engine))
        counts = import_guide(engine, base)
    except GuideInvalid as exc:
        _print_problems(exc.problems)
        print("未写入任何数据 (nothing written)", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"已导入 (imported): {counts}")
    return 0


def cmd_kb_export(args: argparse.Namespace, settings: Settings) -> int:
    engine = open_db(settings)
    try:
        doc = to_document(load_stored(engine))
    finally:
        engine.dispose()
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"已导出 {len(doc['items'])} 条到 {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="daoban", description="导办 — 政务服务智能导办助手")
    sub = p.add_subparsers(dest="command", required=True)

    kb = sub.add_parser("kb", help="办事指南库: validate / lint / import / export").add_subparsers(
        dest="kb_command", required=True
    )
    v = kb.add_parser("validate", help="校验指南文件 (默认: 内置指南库)")
    v.add_argument("path", nargs="?")
    v.set_defaults(func=cmd_kb_validate)
    li = kb.add_parser("lint", help="检查指南内容: 过期日期、一件事自相矛盾、重复材料、必办事项缺问答")
    li.add_argument("path", nargs="?")
    li.add_argument("--required", help="必办事项清单 (每行一个名称; 默认: 内置清单, 仅对内置指南库)")
    li.add_argument("--json", action="store_true", help="JSON 输出")
    li.set_defaults(func=cmd_kb_lint)
    i = kb.add_parser("import", help="校验并导入 (按 id 更新, 单个事务)")
    i.add_argument("path")
    i.set_defaults(func=cmd_kb_import)
    e = kb.add_parser("export", help="导出整个指南库")
    e.add_argument("--json", action="store_true", help="JSON (the only format for now)")
    e.add_argument("-o", "--output")
    e.set_defaults(func=cmd_kb_export)

    _add_later_commands(sub)
    return p


def _add_later_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands whose implementation lives in other modules (imported lazily: fast CLI)."""
    from channels import cli_chat, cli_doorplate, cli_nlu

    cli_nlu.register(sub)
    cli_chat.register(sub)
    cli_doorplate.register(sub)
    from channels import wechat_cli

    wechat_cli.register(sub)
    from channels import cli_agent

    cli_agent.register(sub)
    from channels import retention

    retention.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings()
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        return func(args, settings)
    except SQLAlchemyError as exc:
        print(f"数据库错误: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 2
    except NotReady as exc:
        print(str(exc), file=sys.stderr)  # one line naming each fix
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
