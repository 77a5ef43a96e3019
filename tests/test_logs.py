"""Request ids and ``DAOBAN_LOG_FORMAT=json``: the id a client sends (or a new one) comes back
in ``X-Request-ID`` and is on every log line written while its message is handled, over
REST and over the web chat socket."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from channels.logs import REQUEST_ID, JsonFormatter, request_id
from channels.settings import Settings
from tests.consoles import citizen_send, recv
from tests.harness import app_for, rest_conversation


def _lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_json_lines_carry_the_request_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'l.db'}", index_dir=tmp_path / "idx",
                        log_format="json")
    with TestClient(app_for(settings)) as client:
        cid, headers = rest_conversation(client)
        url = f"/api/v1/conversations/{cid}/messages"
        r = client.post(url, json={"text": "社保卡丢了咋整"},
                        headers={**headers, "X-Request-ID": "req-42.a"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42.a"
        r = client.post(url, json={"text": "在哪办"},
                        headers={**headers, "X-Request-ID": "evil id <script>"})
        fresh = r.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", fresh)
        with client.websocket_connect("/ws/chat", headers={"X-Request-ID": "socket-7"}) as ws:
            ws.send_text(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
            recv(ws)
            citizen_send(ws, "m1", "转人工")
    handled = [x for x in _lines(capsys.readouterr().err)
               if x["logger"] == "channels.logs" and x["message"].startswith("message handled")]
    assert [(x["request_id"], x["channel"], x["outcome"]) for x in handled] == [
        ("req-42.a", "rest", "answered"), (fresh, "rest", "answered"),
        ("socket-7", "web", "handoff")]
    assert all(x["level"] == "INFO" and x["seconds"] >= 0 and x["time"].endswith("+00:00")
               for x in handled)
    # Uninstalled with the app: nothing is left on the root logger.
    assert not any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def test_text_is_the_default_and_ids_are_returned(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.db'}", index_dir=tmp_path / "idx")
    with TestClient(app_for(settings)) as client:
        r = client.get("/health", headers={"X-Request-ID": "h-1"})
        assert r.headers["x-request-id"] == "h-1"
        assert re.fullmatch(r"[0-9a-f]{32}", client.get("/health").headers["x-request-id"])
    assert _lines(capsys.readouterr().err) == []


async def test_the_id_follows_into_worker_threads() -> None:
    token = REQUEST_ID.set("thread-check")
    try:
        assert await anyio.to_thread.run_sync(REQUEST_ID.get) == "thread-check"
        record = logging.LogRecord("assistant.core", logging.ERROR, __file__, 1, "boom %s",
                                   ("x",), None)
        line = await anyio.to_thread.run_sync(JsonFormatter().format, record)
        assert json.loads(line)["request_id"] == "thread-check"
    finally:
        REQUEST_ID.reset(token)
    assert request_id("x" * 65) != "x" * 65 and request_id("ok-1") == "ok-1"


def test_a_handler_shared_by_uvicorns_loggers_gets_its_own_formatter_back() -> None:
    from channels.logs import JsonLogs

    shared = logging.StreamHandler()
    plain = logging.Formatter("%(message)s")
    shared.setFormatter(plain)
    loggers = [logging.getLogger("uvicorn"), logging.getLogger("uvicorn.access")]
    for lg in loggers:
        lg.addHandler(shared)
    try:
        logs = JsonLogs()
        logs.install()
        assert isinstance(shared.formatter, JsonFormatter)
        logs.remove()
        assert shared.formatter is plain
    finally:
        for lg in loggers:
            lg.removeHandler(shared)
