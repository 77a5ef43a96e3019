"""Issue 15 finding 10: a message that meets a database outage is re-sent by the page.

The server answers a transient failure (database, timeout, event bus) with a retryable
``unavailable`` error frame and stores nothing of the message; the page keeps it pending
and re-sends it with back-off on the same socket; the retry is stored once. Checked at the
socket with a fault injected inside the store's transaction, and end to end with a real
``daoban serve`` on PostgreSQL whose database refuses every connection for about 5 s
(SQLite cannot be made to fail by permissions here: the tests run as root, which ignores
them)."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from starlette.testclient import WebSocketTestSession

from channels.settings import Settings
from tests.conftest import PG_ADMIN
from tests.consoles import recv, until
from tests.harness import app_for
from tests.servers import daoban_process, launch_chromium, require_chromium
from tests.test_web_browser import ask, wait_js

# ---- the socket, in-process ----------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'retry.db'}",
                        index_dir=tmp_path / "idx")
    app = app_for(settings)
    with TestClient(app) as c:
        yield c


def hello(ws: WebSocketTestSession) -> dict[str, Any]:
    ws.send_text(json.dumps({"type": "hello", "conversation_id": None, "token": None,
                             "last_seq": 0}))
    return recv(ws)


def message(ws: WebSocketTestSession, client_id: str, text: str) -> list[dict[str, Any]]:
    """Sends a message; the frames up to its ack or its error."""
    ws.send_text(json.dumps({"type": "message", "client_id": client_id, "text": text}))
    return until(ws, lambda f: f["type"] in ("ack", "error"), limit=30)


class Outage:
    """Makes the conversation store's writes fail mid-transaction, as a database that goes
    away does: the statement that records the message as processed raises
    ``OperationalError`` after the message's events were inserted in the same transaction."""

    def __init__(self, client: TestClient, error: Exception | None = None) -> None:
        self.engine = client.app.state.services.assistant.store.engine  # type: ignore[attr-defined]
        self.error = error
        self.failures = 0
        self.on = False

    def _fail(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.on and statement.lstrip().upper().startswith("INSERT INTO PROCESSED_MESSAGES"):
            self.failures += 1
            raise self.error or OperationalError(
                statement, None, sqlite3.OperationalError("disk I/O error"))

    def __enter__(self) -> Outage:
        self.on = True
        event.listen(self.engine, "before_cursor_execute", self._fail)
        return self

    def __exit__(self, *exc: object) -> None:
        self.on = False
        event.remove(self.engine, "before_cursor_execute", self._fail)


def citizen_texts(client: TestClient, cid: str) -> list[str]:
    store = client.app.state.services.assistant.store  # type: ignore[attr-defined]
    return [e["text"] for e in store.events(cid) if e["type"] == "user"]


def test_a_database_failure_gives_a_retryable_frame_and_the_retry_is_stored_once(
        client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        cid = hello(ws)["conversation_id"]
        with Outage(client) as outage:
            frames = message(ws, "c-retry-1", "社保卡丢了咋整")
        assert outage.failures == 1
        err = frames[-1]
        assert err["type"] == "error", frames
        assert err["code"] == "unavailable" and err["retryable"] is True
        assert err["client_id"] == "c-retry-1" and err["retry_after"] >= 1
        assert err["message"] and "Traceback" not in err["message"]
        assert not any(f["type"] == "ack" for f in frames)  # not accepted: the page keeps it
        # Not half-stored: the failed transaction left no trace of the message.
        assert citizen_texts(client, cid) == []
        # The page re-sends with the same client id: stored and answered once.
        frames = message(ws, "c-retry-1", "社保卡丢了咋整")
        assert frames[-1] == {"type": "ack", "client_id": "c-retry-1"}
        shown = until(ws, lambda f: f["type"] == "message" and f["from"] == "bot", limit=30)
        assert [f["client_id"] for f in shown if f["from"] == "citizen"] == ["c-retry-1"]
        # A second re-send (the ack was lost, say) is acknowledged and processed once.
        frames = message(ws, "c-retry-1", "社保卡丢了咋整")
        assert frames[-1] == {"type": "ack", "client_id": "c-retry-1"}
        assert citizen_texts(client, cid) == ["社保卡丢了咋整"]
        ws.send_text(json.dumps({"type": "ping"}))
        assert recv(ws) == {"type": "pong"}  # nothing else was sent: no duplicate echo


def test_a_bug_is_not_retryable(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        hello(ws)
        with Outage(client, ValueError("a bug, not an outage")):
            err = message(ws, "c-bug-1", "社保卡丢了咋整")[-1]
        assert err["type"] == "error" and err["code"] == "internal"
        assert "retryable" not in err and "Traceback" not in err["message"]


def test_a_hello_that_meets_the_outage_is_retryable(client: TestClient) -> None:
    engine = client.app.state.services.assistant.store.engine  # type: ignore[attr-defined]

    def down(*args: Any) -> None:
        raise OperationalError("SELECT", None, sqlite3.OperationalError("unable to open database file"))

    event.listen(engine, "before_cursor_execute", down)
    try:
        with client.websocket_connect("/ws/chat") as ws:
            err = hello(ws)
    finally:
        event.remove(engine, "before_cursor_execute", down)
    assert err["type"] == "error" and err["code"] == "unavailable"
    assert err["retryable"] is True and err["client_id"] is None


# ---- the page, in chromium, against daoban serve on PostgreSQL ---------------------------

TEXTS = ["居住证怎么办", "护照怎么办理", "公积金怎么提取", "新生儿落户要带什么", "驾驶证到期换证"]


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def _get(url: str, token: str) -> dict[str, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body: dict[str, Any] = json.loads(r.read())
    return body


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.parametrize("drop", [False, True], ids=["same-socket", "reconnect-in-outage"])
def test_messages_sent_during_a_database_outage_are_resent_by_the_page(
        pg_url: str, tmp_path: Path, drop: bool) -> None:
    """``drop``: the network also drops during the outage, so the page's hello meets the
    outage too (the old page then waited forever for a welcome that never came)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    db = pg_url.rsplit("/", 1)[1]
    with daoban_process(tmp_path, DAOBAN_DATABASE_URL=pg_url) as (base, _), \
            sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_context(locale="zh-CN").new_page()
        sockets: list[Any] = []
        errors: list[dict[str, Any]] = []

        def on_socket(ws: Any) -> None:
            sockets.append(ws)
            ws.on("framereceived", lambda payload: _note_error(payload, errors))

        page.on("websocket", on_socket)
        page.goto(base + "/")
        wait_js(page, "window.daoban && window.daoban.state().connected")
        try:
            # The outage: the database refuses new connections and loses the open ones.
            _admin(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
            _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
            down_at = time.monotonic()
            for text in TEXTS:
                ask(page, text)
            wait_js(page, f"window.daoban.state().pending === {len(TEXTS)}", 5_000)
            # Every one of them met the outage and was refused as retryable.
            deadline = time.monotonic() + 4
            while len({e.get("client_id") for e in errors}) < len(TEXTS):
                assert time.monotonic() < deadline, errors
                page.wait_for_timeout(50)
            assert all(e["code"] == "unavailable" and e["retryable"] is True for e in errors)
            assert page.locator(".row.pending .status", has_text="未发送").count() >= 1
            if drop:
                page.evaluate("window.daoban.dropConnection()")
                deadline = time.monotonic() + 4
                while not any(e.get("client_id") is None for e in errors):
                    assert time.monotonic() < deadline, "the hello did not meet the outage"
                    page.wait_for_timeout(50)
            page.wait_for_timeout(max(0, int((5 - (time.monotonic() - down_at)) * 1000)))
        finally:
            _admin(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
        # Re-sent (on the same socket, unless it dropped) and all acknowledged.
        up_at = time.monotonic()
        wait_js(page, "window.daoban.state().pending === 0", 45_000)
        print(f"all acknowledged {time.monotonic() - up_at:.1f} s after the database came back")
        assert len(sockets) >= 3 if drop else len(sockets) == 1
        wait_js(page, f"document.querySelectorAll('.row.bot:not(.intro)').length >= {len(TEXTS)}",
                15_000)
        shown = [t.strip() for t in page.locator(".row.citizen .text").all_inner_texts()]
        assert sorted(shown) == sorted(TEXTS)  # each exactly once on the page
        cid = page.evaluate("window.daoban.state().cid")
        token = page.evaluate("localStorage.getItem('daoban.token')")
        browser.close()
        transcript = _get(f"{base}/api/v1/conversations/{cid}", token)["transcript"]
    log = (tmp_path / "server.log").read_text()
    assert "database or event bus is unavailable" in log
    assert "web chat frame failed" not in log  # an outage is not logged as a bug
    said = [t["text"] for t in transcript if t["from"] == "citizen"]
    assert sorted(said) == sorted(TEXTS)  # each stored exactly once
    for text in TEXTS:  # and each answered by the bot
        i = next(i for i, t in enumerate(transcript) if t["from"] == "citizen" and t["text"] == text)
        assert i + 1 < len(transcript) and transcript[i + 1]["from"] == "bot", transcript


def _note_error(payload: str | bytes, into: list[dict[str, Any]]) -> None:
    try:
        frame = json.loads(payload)
    except ValueError:
        return
    if isinstance(frame, dict) and frame.get("type") == "error":
        into.append(frame)
