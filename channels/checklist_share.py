"""A checklist to take along on another phone: a short link and a QR code to a read-only
copy, kept 30 days. ``POST /api/v1/conversations/{id}/checklist/share`` makes one;
``GET /c/{token}`` shows it. An unknown and an expired token get the same 404 page."""

from __future__ import annotations

import re
from functools import partial
from html import escape
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from assistant.checklist import STATES, snapshot
from assistant.core import Assistant, ConversationNotFound
from assistant.shares import create_share, load_share
from channels.rest import ConversationId, authorize
from doorplate import qr

router = APIRouter()
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,43}$")
_LOCAL = re.compile(r"^https?://(127\.|localhost|\[::1\]|0\.0\.0\.0)")


def _assistant(request: Request) -> Assistant:
    assistant: Assistant = request.app.state.services.assistant
    return assistant


def base_url(request: Request) -> str:
    """The configured public address; a loopback one (the default) would not open on
    another phone, so then the address this request came to."""
    public = str(request.app.state.services.settings.public_url).rstrip("/")
    return str(request.base_url).rstrip("/") if _LOCAL.match(public) else public


@router.post("/api/v1/conversations/{conversation_id}/checklist/share")
async def share(request: Request, conversation_id: ConversationId) -> Any:
    await authorize(request, conversation_id)  # the same check as GET /api/v1/conversations/{id}
    assistant = _assistant(request)
    conv = await anyio.to_thread.run_sync(assistant.store.load, conversation_id)
    if conv is None:
        raise ConversationNotFound(conversation_id)
    snap = snapshot(conv, assistant.ctx)
    if snap is None:
        return JSONResponse({"error": "还没有材料清单：请先说说您要办的事，再点“查看材料”或“逐项核对材料”。",
                             "code": "no_checklist"}, status_code=409)
    made = await anyio.to_thread.run_sync(
        partial(create_share, assistant.store.engine, snap))
    url = f"{base_url(request)}/c/{made.token}"
    svg = qr.make(url).svg_inline(scale=4, border=2, title="材料清单二维码")
    return {"url": url, "qr_svg": svg, "expires_at": made.expires_at.isoformat()}


@router.get("/c/{token}", include_in_schema=False)
async def shared_page(request: Request, token: str) -> HTMLResponse:
    snap = None
    if _TOKEN.match(token):
        snap = await anyio.to_thread.run_sync(
            partial(load_share, _assistant(request).store.engine, token))
    if snap is None:
        return HTMLResponse(_page("清单不存在或已过期", _GONE), status_code=404,
                            headers={"Cache-Control": "no-store"})
    return HTMLResponse(_page(f"{snap['name']} · 材料清单", render_html(snap)),
                        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"})


_GONE = ('<main class="share-sheet"><h1 class="card-title">这个清单不存在或已过期</h1>'
         '<p>分享的材料清单保存30天。请回到导办助手重新生成，或拨打 12345 咨询。</p>'
         '<p><a class="btn" href="/">打开导办助手</a></p></main>')


def render_html(snap: dict[str, Any]) -> str:
    """The checklist as static HTML: read-only, printable, nothing to send back."""
    out = ['<main class="share-sheet"><article class="card checklist shared" aria-label="材料清单">',
           f'<h1 class="card-title">“{escape(snap["name"])}”材料清单</h1>',
           '<p class="readonly">只读副本，不能修改；到窗口前请以最新告知为准。</p>']
    for g in snap.get("groups", []):
        out.append('<section class="group">')
        if g.get("title"):
            out.append(f'<h2 class="member">{escape(g["title"])}</h2>')
        out.append("<ul>")
        for m in g.get("materials", []):
            mark, label = STATES.get(m.get("state", ""), ("☐", m.get("label", "")))
            out.append(
                f'<li class="mat {escape(m.get("state", ""))}"><span class="box" aria-hidden="true">'
                f'{escape(mark)}</span><span class="name">{escape(m["name"])}</span>'
                f'<span class="amount">{escape(m.get("amount", ""))}</span>'
                f'<span class="state">{escape(label)}</span></li>')
        out.append("</ul></section>")
    out.append('<dl class="facts">')
    for label, key in (("在哪办", "where"), ("多久办好", "time_limit"), ("咨询电话", "phone")):
        if snap.get(key):
            out.append(f"<dt>{label}</dt><dd>{escape(str(snap[key]))}</dd>")
    out.append("</dl>")
    until = str(snap.get("expires_at", ""))[:10]
    if until:
        out.append(f'<p class="expires">此链接保存到 {escape(until)}。</p>')
    out.append('</article><p class="share-actions">'
               '<button type="button" id="print" class="btn primary">打印清单</button></p></main>')
    return "".join(out)


def _page(title: str, body: str) -> str:
    return ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="robots" content="noindex">'
            f'<title>{escape(title)}</title><link rel="stylesheet" href="/static/chat.css">'
            f'</head><body class="share-page">{body}'
            '<script src="/static/share.js"></script></body></html>')
