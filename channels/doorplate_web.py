"""The 政务门牌 (QR door-sign) routes: ``GET /d/{token}`` opens the chat scoped to the place;
``/doorplate/stats`` and ``/doorplate/stats.csv`` show what is scanned and asked where — to
signed-in supervisors and admins only (the agent console's staff sessions)."""

from __future__ import annotations

import csv
import io
import logging
import re
import secrets
from html import escape
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from channels.settings import Settings
from channels.staff import MaybeStaff, Supervisor, sign_in_url
from channels.web import STATIC
from doorplate.jurisdiction import Locator
from doorplate.places import Place
from doorplate.service import Doorplates, open_doorplates
from doorplate.tokens import Keyring, TokenError
from knowledge.validate import GuideBase

log = logging.getLogger(__name__)
router = APIRouter()

_INTRO = re.compile(
    r'<div class="row bot intro">.*?</div>\s*</div>\s*</div>', re.DOTALL)
# The token is a credential of sorts: never sent on to the map sites or cached by proxies.
_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def build_doorplates(settings: Settings, engine: Engine, guide: GuideBase) -> Doorplates:
    spec = settings.doorplate_keys
    if not spec:
        log.warning("DAOBAN_DOORPLATE_KEYS is not set: door-sign QR codes are signed with a "
                    "random key and stop working when the server restarts")
        spec = f"tmp{secrets.token_hex(4)}:{secrets.token_urlsafe(32)}"
    return open_doorplates(
        engine, Keyring.parse(spec), data=settings.doorplate_data,
        known_entries={*guide.items, *guide.bundles},
        grace_days=settings.doorplate_key_grace_days, public_url=settings.public_url,
    )


def doorplate_locator(doorplates: Doorplates | None, guide: GuideBase) -> Locator | None:
    if doorplates is None:
        return None
    return Locator(doorplates.places, doorplates.store.top_items, guide.entry)


def _greeting(doorplates: Doorplates, guide: GuideBase, place: Place) -> str:
    label = escape(doorplates.places.label(place))
    buttons = []
    locator = doorplate_locator(doorplates, guide)
    assert locator is not None
    for eid in locator.popular(place.id, 3):
        e = guide.entry(eid)
        if e is not None:
            ask = escape(f"{e.name}在哪办")
            buttons.append(f'<button type="button" class="btn choice" data-text="{ask}">'
                           f'{escape(e.name)}</button>')
    return (
        '<div class="row bot intro">\n        <div class="bubble">\n'
        '          <p class="who sr-only">导办助手：</p>\n'
        f'          <p class="text place-greeting">您好！您扫的是<strong>{label}</strong>的政务门牌。'
        '我是导办助手，告诉您办事去哪里、带什么材料；问“在哪办”，我按这个地址帮您找。</p>\n'
        '          <p class="hint">这里大家常问：</p>\n'
        f'          <div class="buttons">{"".join(buttons)}</div>\n'
        '        </div>\n      </div>'
    )


def scoped_page(doorplates: Doorplates, guide: GuideBase, place: Place) -> str:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    greeting = _greeting(doorplates, guide, place)
    scoped, n = _INTRO.subn(lambda _: greeting, html, count=1)
    if n == 0:
        log.warning("index.html has no intro block: the door-sign greeting is not shown")
    return scoped


_FAIL = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>二维码无法使用 — 导办</title>
<style>body{font-family:system-ui,"Noto Sans CJK SC",sans-serif;max-width:32rem;margin:3rem auto;
padding:0 1.2rem;line-height:1.7;color:#222}h1{font-size:1.4rem}a{color:#b22}</style>
</head><body>
<h1>这个政务门牌二维码暂时无法使用</h1>
<p>可能是二维码已经更换、停用，或者扫描时没有读完整。给您带来不便，请谅解。</p>
<p>您仍然可以<a href="/">直接打开导办助手</a>，说说要办的事；也可以拨打政务服务便民热线
<strong>12345</strong>。</p>
</body></html>
"""


def failure_page(status: int) -> HTMLResponse:
    # The same words for every failure: nothing tells a prober why the token was refused.
    return HTMLResponse(_FAIL, status_code=status, headers=_PRIVATE)


@router.get("/d/{token}", include_in_schema=False)
async def scan(token: str, request: Request) -> Response:
    services = request.app.state.services
    doorplates: Doorplates | None = getattr(services, "doorplates", None)
    if doorplates is None:
        return failure_page(404)
    try:
        place = await anyio.to_thread.run_sync(doorplates.verify, token)
    except TokenError as exc:
        # Revoked, retired and forged alike: one status, one page, so a prober learns
        # nothing about which plates exist (the reason stays in the log).
        log.info("door-sign token refused: %s", exc.reason)
        return failure_page(404)
    guide = services.assistant.guide
    client = request.client.host if request.client else "?"

    def work() -> str:
        doorplates.record_scan(place.id, client)
        return scoped_page(doorplates, guide, place)

    html = await anyio.to_thread.run_sync(work)
    return HTMLResponse(html, headers=_PRIVATE)


def _table(title: str, head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows) or f'<tr><td colspan="{len(head)}">暂无数据</td></tr>'
    return f"<h2>{escape(title)}</h2><table><tr>{th}</tr>{body}</table>"


_FORBIDDEN = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>无权查看 — 政务门牌统计</title>
<style>body{font-family:system-ui,"Noto Sans CJK SC",sans-serif;max-width:32rem;margin:3rem auto;
padding:0 1.2rem;line-height:1.7;color:#222}h1{font-size:1.4rem}a{color:#0b4f9c}</style>
</head><body>
<h1>您没有查看政务门牌统计的权限</h1>
<p>门牌统计记录了市民在哪里扫码、问了什么，只对值班长和管理员开放。
如需查看，请联系管理员开通。</p>
<p><a href="/agent">返回人工帮办工作台</a></p>
</body></html>
"""
_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/doorplate/stats", include_in_schema=False)
async def stats_page(request: Request, staff: MaybeStaff) -> Response:
    # What citizens scanned and asked where: for supervisors and admins only.
    if staff is None:
        return RedirectResponse(sign_in_url(request), status_code=303, headers=_NO_STORE)
    if not staff.sees_all:
        return HTMLResponse(_FORBIDDEN, status_code=403, headers=_NO_STORE)
    log.info("door-sign statistics shown to %s", staff.username)
    services = request.app.state.services
    doorplates: Doorplates | None = getattr(services, "doorplates", None)
    if doorplates is None:
        return HTMLResponse("<p>政务门牌未启用</p>", status_code=404)
    s = await anyio.to_thread.run_sync(doorplates.stats)
    guide = services.assistant.guide

    def name(eid: str) -> str:
        e = guide.entry(eid)
        return e.name if e else eid

    parts = [
        _table("按门牌", ["门牌", "位置", "扫码次数", "提问次数"], [list(r) for r in s.plates]),
        _table("按社区", ["社区", "扫码次数"], [[n, c] for _, n, c in s.communities]),
        _table("按街道", ["街道", "扫码次数"], [[n, c] for _, n, c in s.streets]),
        _table("按日期", ["日期", "扫码次数"], [list(r) for r in s.days]),
    ]
    for pid, label, _, _ in s.plates:
        qs = [[q, n] for q, n in s.questions.get(pid, [])]
        its = [[name(i), n] for i, n in s.items.get(pid, [])]
        parts.append(_table(f"{label}：常问问题", ["问题", "次数"], qs))
        parts.append(_table(f"{label}：常问事项", ["事项", "次数"], its))
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>政务门牌统计</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse;"
        "margin-bottom:1rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}"
        "</style></head><body><h1>政务门牌统计（道里区试点）</h1>"
        '<p><a href="/doorplate/stats.csv">下载 CSV</a>　标“示例”的门牌为演示数据。</p>'
        + "".join(parts) + "</body></html>"
    )
    return HTMLResponse(html, headers=_NO_STORE)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def defuse_csv(text: str) -> str:
    """A cell a spreadsheet would run as a formula (citizens' questions are in the file)
    gets a leading apostrophe (OWASP's CSV injection advice)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(io.StringIO(text)):
        writer.writerow(["'" + c if c.startswith(_FORMULA) else c for c in row])
    return out.getvalue()


@router.get("/doorplate/stats.csv", include_in_schema=False)
async def stats_csv(request: Request, staff: Supervisor) -> Response:
    log.info("door-sign statistics downloaded by %s", staff.username)
    services = request.app.state.services
    doorplates: Doorplates | None = getattr(services, "doorplates", None)
    if doorplates is None:
        return Response(status_code=404)
    guide = services.assistant.guide

    def name(eid: str) -> str:
        e = guide.entry(eid)
        return e.name if e else eid

    text = await anyio.to_thread.run_sync(doorplates.stats_csv, name)
    return Response(defuse_csv(text), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="doorplate-stats.csv"',
        "Cache-Control": "no-store"})
