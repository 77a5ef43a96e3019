"""``daoban wechat menu [--push]``: the official account's custom menu."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from channels.settings import Settings


def cmd_menu(args: argparse.Namespace, settings: Settings) -> int:
    from channels.wechat import load_menu

    menu = load_menu()["menu"]
    print(json.dumps(menu, ensure_ascii=False, indent=1))
    if not args.push:
        return 0
    if not (settings.wechat_appid and settings.wechat_appsecret):
        print("推送菜单需要 DAOBAN_WECHAT_APPID 和 DAOBAN_WECHAT_APPSECRET", file=sys.stderr)
        return 2
    from channels.wechat_api import WeChatApiError

    try:
        asyncio.run(_push(settings, menu))
    except WeChatApiError as exc:
        print(f"推送失败: {exc}", file=sys.stderr)
        return 1
    print("菜单已推送 (menu pushed)", file=sys.stderr)
    return 0


async def _push(settings: Settings, menu: dict[str, object]) -> None:
    import httpx

    from channels.wechat_api import WeChatApi

    assert settings.wechat_appid and settings.wechat_appsecret
    async with httpx.AsyncClient(timeout=10.0) as client:
        api = WeChatApi(settings.wechat_api_base, settings.wechat_appid,
                        settings.wechat_appsecret, client)
        await api.create_menu(menu)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("wechat", help="微信公众号: menu")
    ws = w.add_subparsers(dest="wechat_command", required=True)
    m = ws.add_parser("menu", help="打印自定义菜单 JSON (--push: 推送到微信)")
    m.add_argument("--push", action="store_true", help="用 AppID/AppSecret 推送到微信")
    m.set_defaults(func=cmd_menu)
