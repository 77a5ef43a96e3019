"""``daoban serve`` (HTTP server) and ``daoban chat`` (the conversation in a terminal)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from channels.settings import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from channels.prefork import SharedStateMissing, check_shared_state
    from channels.serving import run

    host = args.host or settings.host
    port = args.port or settings.port
    try:
        check_shared_state(settings, args.workers)  # before seconds of loading
    except SharedStateMissing as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"导办 daoban: http://{host}:{port}/ (Ctrl+C 退出)", file=sys.stderr)
    return run(settings, host, port, args.workers)


def render(replies: list, buttons_out: list) -> str:  # type: ignore[type-arg]
    """Plain text with numbered buttons; the last buttons can be chosen by number."""
    lines = []
    buttons_out.clear()
    for r in replies:
        lines.append(r.text)
        if r.buttons:
            buttons_out[:] = list(r.buttons)
    if buttons_out:
        lines.append("  ".join(f"[{i}] {b.title}" for i, b in enumerate(buttons_out, 1)))
    return "\n".join(lines)


async def chat_loop(settings: Settings, stdin: TextIO | None = None) -> int:
    import anyio

    from assistant.core import MessageRejected
    from assistant.model import UserMessage
    from channels.app import build_services

    print("正在准备……", file=sys.stderr)
    services = await anyio.to_thread.run_sync(build_services, settings)
    assistant = services.assistant
    cid = await assistant.create(channel="cli")
    print("导办助手：您好！请说说您要办的事（输入“退出”结束）。")
    buttons: list = []  # type: ignore[type-arg]
    stream = stdin or sys.stdin
    while True:
        print("> ", end="", flush=True)
        line = await anyio.to_thread.run_sync(stream.readline)
        if not line:
            break
        text = line.strip()
        if text in ("退出", "exit", "quit"):
            break
        if not text:
            continue
        if text.isdigit() and buttons and 1 <= int(text) <= len(buttons):
            text = buttons[int(text) - 1].payload
        try:
            replies = await assistant.handle(UserMessage(cid, text, channel="cli"))
        except MessageRejected as exc:
            print(f"导办助手：{exc}")
            continue
        print("导办助手：" + render(replies, buttons))
    assistant.store.engine.dispose()
    print("再见！")
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(chat_loop(settings))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("serve", help="启动 HTTP 服务")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int, default=1,
                   help="进程数 (>1: 预先载入后 fork, 需要 PostgreSQL + Redis; docs/deploy.md)")
    s.set_defaults(func=cmd_serve)
    c = sub.add_parser("chat", help="在终端里对话")
    c.set_defaults(func=cmd_chat)
