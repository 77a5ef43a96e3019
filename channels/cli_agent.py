"""``daoban agent add|list|disable``: the human 帮办 accounts."""

from __future__ import annotations

import argparse
import getpass
import sys

from channels.settings import Settings


def _store(settings: Settings):  # type: ignore[no-untyped-def]
    from assistant.agents import SqlAgentStore
    from assistant.agents import migrate as migrate_agents
    from knowledge.db import make_engine

    engine = make_engine(settings.database_url)
    migrate_agents(engine)
    return SqlAgentStore(engine)


NO_TERMINAL = ("没有终端，无法输入密码：请用 --password-stdin 从标准输入读一行密码 "
               "(no terminal: pass --password-stdin and the password on standard input)")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        # getpass would fall back to echoing, or die in termios, without a terminal.
        raise SystemExit(NO_TERMINAL)
    try:
        first = getpass.getpass("密码: ")
        again = getpass.getpass("再输一次: ")
    except EOFError:
        raise SystemExit(NO_TERMINAL) from None
    if again != first:
        raise SystemExit("两次输入的密码不一样")
    return first


def _skills(text: str | None, settings: Settings) -> tuple[str, ...]:
    """The departments named in ``--skills``, as the guide base's short names (公安, 人社 …);
    a department's id or full name is accepted too. Unknown names refuse the whole command."""
    names = [s.strip() for s in (text or "").replace("，", ",").replace("、", ",").split(",")]
    names = [s for s in names if s]
    if not names:
        return ()
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from channels.cli import open_db
    from knowledge.models import DepartmentRow

    engine = open_db(settings)  # the bundled guide base on first use, as every command
    try:
        with Session(engine) as s:
            rows = s.execute(select(DepartmentRow.id, DepartmentRow.name, DepartmentRow.short)
                             .order_by(DepartmentRow.id)).all()
    finally:
        engine.dispose()
    known = {key: short for id_, name, short in rows for key in (id_, name, short)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"没有添加: 指南库里没有这些部门: {'、'.join(unknown)}。"
                         f"可用的技能: {'、'.join(short for _, _, short in rows)}")
    return tuple(dict.fromkeys(known[n] for n in names))


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.agents import AgentError, Role

    skills = _skills(args.skills, settings)
    password = _password(args)
    store = _store(settings)
    try:
        a = store.add(args.username, password, display_name=args.name,
                      role=Role(args.role), skills=skills, max_chats=args.max_chats)
    except AgentError as exc:
        print(f"没有添加: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    print(f"已添加帮办人员 {a.username}（{a.role.value}，技能：{'、'.join(a.skills) or '无'}，"
          f"最多同时接待 {a.max_chats} 个）")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    try:
        for a in store.all():
            state = "已停用" if a.disabled else a.presence.value
            print(f"{a.id}\t{a.username}\t{a.display_name}\t{a.role.value}\t"
                  f"{','.join(a.skills)}\t{a.max_chats}\t{state}")
    finally:
        store.engine.dispose()
    return 0


def cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.agents import UnknownAgent

    store = _store(settings)
    try:
        store.disable(args.username)
    except UnknownAgent:
        print(f"没有这个帮办人员: {args.username}", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    print(f"已停用 {args.username}（登录会话已注销）")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("agent", help="人工帮办账号: add / list / disable")
    s = a.add_subparsers(dest="agent_command", required=True)
    add = s.add_parser("add", help="添加帮办人员")
    add.add_argument("username")
    add.add_argument("--name", help="显示名 (默认: 用户名)")
    add.add_argument("--role", choices=["agent", "supervisor", "admin"], default="agent")
    add.add_argument("--skills", help="业务技能 = 指南库里的部门简称, 逗号分隔: 公安,人社,医保 …")
    add.add_argument("--max-chats", type=int, default=3, help="最多同时接待几个会话")
    add.add_argument("--password-stdin", action="store_true", help="从标准输入读一行密码")
    add.set_defaults(func=cmd_add)
    ls = s.add_parser("list", help="列出帮办人员")
    ls.set_defaults(func=cmd_list)
    d = s.add_parser("disable", help="停用 (并注销其登录)")
    d.add_argument("username")
    d.set_defaults(func=cmd_disable)
