"""The operations dashboard (/admin/dashboard) over the real app: who may see it, its numbers
after real traffic (REST messages, a handoff, a rating, a door-sign scan), Harbin day
boundaries, the date-range filter, a formula-safe CSV, and — in chromium — a supervisor who
signs in, sees the charts drawn and downloads the CSV."""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from assistant.agents import HandoffRow, Role
from assistant.agents import migrate as migrate_agents
from assistant.desk import AgentDesk
from assistant.store import ConversationRow, EventRow, RatingRow, UnansweredRow
from assistant.store import migrate as migrate_conversations
from channels.dashboard_data import Range, cell, dashboard, parse_range, today
from doorplate.service import Doorplates, open_doorplates
from doorplate.tokens import Keyring
from knowledge.db import make_engine
from tests.consoles import PASSWORD
from tests.harness import doorplate_app, rest_conversation
from tests.servers import launch_chromium, require_chromium

KEYS = "k1:dashboard-secret-0123456789"
FORMULA = '=HYPERLINK("http://evil.example")咕噜咕噜'
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"


def _desk(app: Any) -> AgentDesk:
    desk: AgentDesk = app.state.desk
    return desk


def _staff(app: Any) -> None:
    agents = _desk(app).agents
    agents.add("boss", PASSWORD, display_name="李值班长", role=Role.SUPERVISOR)
    agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))


def _bearer(app: Any, user: str) -> dict[str, str]:
    got = _desk(app).agents.login(user, PASSWORD, timedelta(hours=1))
    assert got is not None
    return {"Authorization": f"Bearer {got[0]}"}


def _traffic(client: TestClient | httpx.Client, dp: Doorplates) -> None:
    """Two REST conversations (an answer and its rating; a fallback and a handoff) and one
    door-sign scan."""
    for texts in (["社保卡丢了咋整", "给5分"], [FORMULA, "转人工"]):
        cid, headers = rest_conversation(client)  # type: ignore[arg-type]
        for text in texts:
            r = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": text},
                            headers=headers)
            assert r.status_code == 200, r.text
    token = dp.issue(dp.places.by_plate[1003])  # 红星街7号楼
    assert client.get(f"/d/{token}").status_code == 200


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Doorplates]]:
    app, dp = doorplate_app(tmp_path_factory.mktemp("dashboard"), "dash", KEYS)
    with TestClient(app) as c:
        _staff(app)
        _traffic(c, dp)
        yield c, dp


def test_sign_in_and_roles(bed: tuple[TestClient, Doorplates]) -> None:
    client, _ = bed
    r = client.get("/admin/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/agent?next=/admin/dashboard"
    assert client.get("/admin/dashboard/data").status_code == 401
    assert client.get("/admin/dashboard.csv").status_code == 401
    agent = _bearer(client.app, "wang")
    assert client.get("/admin/dashboard", headers=agent).status_code == 403
    assert client.get("/admin/dashboard/data", headers=agent).status_code == 403
    assert client.get("/admin/dashboard.csv", headers=agent).status_code == 403
    boss = _bearer(client.app, "boss")
    page = client.get("/admin/dashboard", headers=boss)
    assert page.status_code == 200 and "导办运营看板" in page.text
    assert "<script>" not in page.text  # the CSP allows no inline script
    assert "script-src 'self'" in page.headers["content-security-policy"]
    lib = client.get("/static/vendor/chart.umd.min.js")
    assert lib.status_code == 200 and lib.headers["content-type"].startswith("text/javascript")
    assert "Chart.js v4" in lib.text[:200]
    assert "MIT" in client.get("/static/vendor/chart.js.LICENSE.md").text
    assert client.get("/static/vendor/..%2Fdashboard.js").status_code == 404


def test_numbers_after_traffic(bed: tuple[TestClient, Doorplates]) -> None:
    client, _ = bed
    day = today().isoformat()
    r = client.get(f"/admin/dashboard/data?from={day}&to={day}",
                   headers=_bearer(client.app, "boss"))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["days"] == [day]
    assert d["messages"] == {"rest": [4]} and d["conversations"] == {"rest": [2]}
    t = d["totals"]
    assert t["messages"] == 4 and t["conversations"] == 2
    assert t["unanswered"] == 1 and t["no_match_rate"] == 0.25
    assert t["handoffs"] == 1 and t["handoff_rate"] == 0.5
    assert d["top_items"][0]["name"] == "社会保障卡挂失补换"
    assert [(x["name"], x["count"], x["average"], x["good"]) for x in d["ratings"]] == [
        ("社会保障卡挂失补换", 1, 5.0, 1)]
    assert d["unanswered_questions"] == [{"text": FORMULA, "count": 1}]
    dp = d["doorplate"]
    assert [(p["name"], p["count"]) for p in dp["plates"]] == [
        ("尚志街道 红星社区 红星街7号楼（示例）", 1)]
    assert dp["communities"] == [{"name": "红星社区", "count": 1}]
    assert dp["streets"] == [{"name": "尚志街道", "count": 1}]


def test_date_range(bed: tuple[TestClient, Doorplates]) -> None:
    client, _ = bed
    boss = _bearer(client.app, "boss")
    r = client.get("/admin/dashboard/data?from=2020-01-01&to=2020-01-31", headers=boss)
    d = r.json()
    assert len(d["days"]) == 31 and d["totals"]["messages"] == 0
    assert d["doorplate"]["plates"] == [] and d["ratings"] == []
    default = client.get("/admin/dashboard/data", headers=boss).json()
    assert len(default["days"]) == 30 and default["to"] == today().isoformat()
    assert default["totals"]["messages"] == 4
    for bad in ("from=2020-02-01&to=2020-01-01", "from=2020-13-01", "from=2020-01-01&to=2022-01-01"):
        r = client.get(f"/admin/dashboard/data?{bad}", headers=boss)
        assert r.status_code == 422 and r.json()["code"] == "bad_range", bad


def test_harbin_days(db_url: str) -> None:
    """16:30 UTC is already the next day in Harbin; the range ends at Harbin midnight (on
    SQLite, which keeps UTC without a zone, and on PostgreSQL's timestamptz)."""
    engine = make_engine(db_url)
    migrate_conversations(engine)
    migrate_agents(engine)
    dp = open_doorplates(engine, Keyring.parse(KEYS))
    try:
        late = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # 2026-03-02 00:30 in Harbin
        _rows(engine, "c1", "web", late, ["a", "b"])
        _rows(engine, "c2", "wechat", datetime(2026, 3, 1, 15, 59, tzinfo=UTC), ["c"])
        with Session(engine) as s, s.begin():
            s.add(HandoffRow(conversation_id="c1", channel="web", status="queued",
                             reason="requested", department=None, entry_id=None,
                             requested_at=late, queued_at=late, told_overdue=False,
                             transfers=0, agents_seen=[]))
        dp.store.record("sz-hongxing-7", "scan", late, "2026-03-02")
        dp.store.record("sz-hongxing-7", "scan", late, "2026-03-03")  # outside the range
        got = dashboard(engine, parse_range("2026-03-01", "2026-03-02"), str, dp)
        assert got["messages"] == {"web": [0, 2], "wechat": [1, 0]}
        assert got["conversations"] == {"web": [0, 1], "wechat": [1, 0]}
        assert got["unanswered"] == [1, 1] and got["no_match_rate"] == [1.0, 0.5]
        assert got["handoffs"] == [0, 1] and got["handoff_rate"] == [0.0, 1.0]
        assert got["ratings"][0]["scores"] == [0, 2, 0, 0, 0]
        assert got["doorplate"]["plates"][0]["count"] == 1
        only_first = dashboard(engine, parse_range("2026-03-01", "2026-03-01"), str, dp)
        assert only_first["totals"]["messages"] == 1 and only_first["doorplate"]["plates"] == []
    finally:
        engine.dispose()


def _rows(engine: Engine, cid: str, channel: str, at: datetime, texts: list[str]) -> None:
    """A conversation started at ``at`` with ``texts`` from the citizen; the first one
    unanswered, the last one rated 2 on 社保卡 (history the dashboard reads)."""
    with Session(engine) as s, s.begin():
        s.add(ConversationRow(id=cid, channel=channel, mode="BOT", current=None, state={},
                              created_at=at, updated_at=at))
        s.flush()
        for i, text in enumerate(texts, 1):
            s.add(EventRow(conversation_id=cid, seq=i, type="user",
                           payload={"text": text, "channel": channel}, created_at=at))
        s.add(UnansweredRow(conversation_id=cid, text=texts[0], normalized=texts[0],
                            reason="no_match", created_at=at))
        s.add(RatingRow(conversation_id=cid, entry_id="social-security-card-replace", score=2,
                        created_at=at))


def test_csv_is_formula_safe(bed: tuple[TestClient, Doorplates]) -> None:
    client, _ = bed
    r = client.get("/admin/dashboard.csv", headers=_bearer(client.app, "boss"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="daoban-dashboard-')
    text = r.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["类别", "日期或编号", "名称", "渠道", "数值"]
    assert ["未答问题", "", "'" + FORMULA, "", "1"] in rows
    assert ["门牌扫码", "sz-hongxing-7", "尚志街道 红星社区 红星街7号楼（示例）", "", "1"] in rows
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for c in row)
    assert [cell(x) for x in ("=1", "+1", "-1", "@a", "\tx", "\rx", "ok", 3)] == [
        "'=1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "ok", "3"]


def test_default_range_is_thirty_harbin_days() -> None:
    r = parse_range(None, None, now=date(2026, 3, 31))
    assert r == Range(date(2026, 3, 2), date(2026, 3, 31))
    assert r.start == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert r.end == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)


# --- in chromium ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app behind uvicorn in a thread (a real HTTP server), with traffic and a few
    days of history."""
    require_chromium()
    app, dp = doorplate_app(tmp_path_factory.mktemp("dashweb"), "web", KEYS)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    _staff(app)
    engine = app.state.services.assistant.store.engine
    now = datetime.now(UTC)
    for back, (channel, n) in enumerate([("web", 5), ("wechat", 3), ("web", 7), ("rest", 2)], 1):
        _rows(engine, f"h{back}", channel, now - timedelta(days=back), [f"问题{i}" for i in range(n)])
    with httpx.Client(base_url=base, timeout=30) as c:
        _traffic(c, dp)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.browser
def test_browser_supervisor_sees_charts_and_downloads_csv(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            ctx = b.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                accept_downloads=True)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server}/admin/dashboard")
            assert page.url == f"{server}/agent?next=/admin/dashboard"
            page.fill("#username", "boss")
            page.fill("#password", PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.wait_for_url(f"{server}/admin/dashboard")
            page.wait_for_function("() => document.body.dataset.ready === '1'")
            assert page.inner_text("#t-messages") == "21"  # 17 of history + 4 today
            assert page.inner_text("#t-conversations") == "6"
            drawn = page.evaluate("""() => ['c-messages', 'c-items', 'c-plates'].map(id => {
                const c = document.getElementById(id);
                const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < px.length; i += 4) { if (px[i] > 0) n++; }
                return n;
            })""")
            assert all(n > 500 for n in drawn), drawn  # pixels painted on every canvas
            per_channel = page.evaluate("""() => Chart.getChart('c-messages').data.datasets
                .map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])""")
            assert dict(per_channel) == {"网页": 12, "微信": 3, "接口": 6}
            assert "红星街7号楼" in page.inner_text("body") or page.evaluate(
                "() => Chart.getChart('c-plates').data.labels.join()").find("红星街7号楼") >= 0
            if os.environ.get("DAOBAN_SCREENSHOTS"):
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / "09-dashboard.png"), full_page=True)
            with page.expect_download() as download:
                page.click("#csv")
            saved = download.value.path()
            text = Path(saved).read_text(encoding="utf-8-sig")
            assert text.startswith("类别,日期或编号,名称,渠道,数值")
            assert "'" + FORMULA.replace('"', '""') in text
            # The range filter: a month long ago has nothing.
            page.fill("#from", "2020-01-01")
            page.fill("#to", "2020-01-31")
            page.get_by_role("button", name="查询").click()
            page.wait_for_function("() => document.body.dataset.ready === '1' && "
                                   "document.getElementById('t-messages').textContent === '0'")
            assert "from=2020-01-01" in page.url
            assert page.get_attribute("#csv", "href") == \
                "/admin/dashboard.csv?from=2020-01-01&to=2020-01-31"
            assert errors == []
            ctx.close()
        finally:
            b.close()
