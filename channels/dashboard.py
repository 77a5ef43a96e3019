"""The operations dashboard: ``GET /admin/dashboard`` (the page), ``/admin/dashboard/data``
(its numbers as JSON) and ``/admin/dashboard.csv`` (the same numbers as CSV), for a date
range. Staff sign in as for the agent console; supervisors, admins and editors may look.

The page draws its charts with Chart.js, vendored in ``channels/static/vendor/`` (its
LICENSE beside it) and served here: no CDN, and the pages' CSP (script-src 'self') holds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from assistant.agents import Agent
from channels.dashboard_data import BadRange, Range, dashboard, parse_range, to_csv
from channels.staff import MaybeStaff, StaffRefused, sign_in_url

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
VENDOR = STATIC / "vendor"
# Who may see the numbers. "editor" is the guide editors' role (issue 18.1); an account
# holds it once that role exists.
ROLES = frozenset({"supervisor", "admin", "editor"})
_NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter()

From = Annotated[str | None, Query(alias="from", max_length=10)]
To = Annotated[str | None, Query(alias="to", max_length=10)]


def may_see(agent: Agent) -> bool:
    return str(agent.role.value) in ROLES and not agent.disabled


def _allowed(staff: Agent | None) -> Agent:
    if staff is None:
        raise StaffRefused(401, "请先登录，或登录已过期", "unauthorized")
    if not may_see(staff):
        raise StaffRefused(403, "只有值班长、管理员或编辑可以查看", "forbidden")
    return staff


def _range(first: str | None, last: str | None) -> Range:
    try:
        return parse_range(first, last)
    except BadRange as exc:
        raise StaffRefused(422, str(exc), "bad_range") from exc


async def _numbers(request: Request, r: Range) -> dict[str, Any]:
    services = request.app.state.services
    guide = services.assistant.guide

    def name(eid: str) -> str:
        e = guide.entry(eid)
        return e.name if e else eid

    result: dict[str, Any] = await anyio.to_thread.run_sync(
        dashboard, services.assistant.store.engine, r, name,
        getattr(services, "doorplates", None))
    return result


_FORBIDDEN = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>无权查看 — 运营看板</title><link rel="stylesheet" href="/static/dashboard.css">
</head><body class="plain">
<h1>您没有查看运营看板的权限</h1>
<p>运营看板只对值班长、管理员和指南编辑开放。如需查看，请联系管理员开通。</p>
<p><a href="/agent">返回人工帮办工作台</a></p>
</body></html>
"""


@router.get("/admin/dashboard", include_in_schema=False)
async def page(request: Request, staff: MaybeStaff) -> Response:
    if staff is None:
        return RedirectResponse(sign_in_url(request), status_code=303, headers=_NO_STORE)
    if not may_see(staff):
        return HTMLResponse(_FORBIDDEN, status_code=403, headers=_NO_STORE)
    html = await anyio.Path(STATIC / "dashboard.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers=_NO_STORE)


@router.get("/admin/dashboard/data", include_in_schema=False)
async def data(request: Request, staff: MaybeStaff, first: From = None,
               last: To = None) -> JSONResponse:
    _allowed(staff)
    numbers = await _numbers(request, _range(first, last))
    return JSONResponse(numbers, headers=_NO_STORE)


@router.get("/admin/dashboard.csv", include_in_schema=False)
async def csv_export(request: Request, staff: MaybeStaff, first: From = None,
                     last: To = None) -> Response:
    who = _allowed(staff)
    r = _range(first, last)
    numbers = await _numbers(request, r)
    log.info("dashboard numbers %s..%s downloaded by %s", r.first, r.last, who.username)
    # A BOM: spreadsheet programs on Chinese Windows read UTF-8 without one as GBK.
    body = "\ufeff" + to_csv(numbers)
    name = f"daoban-dashboard-{r.first.isoformat()}-{r.last.isoformat()}.csv"
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"', **_NO_STORE})


@router.get("/static/vendor/{name}", include_in_schema=False)
async def vendor(name: str) -> Response:
    path = (VENDOR / name).resolve()
    if path.parent != VENDOR.resolve() or not path.is_file():
        return Response(status_code=404)
    types = {".js": "text/javascript", ".md": "text/plain"}
    return FileResponse(path, media_type=types.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=86400"})
