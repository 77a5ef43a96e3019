"""Agent console (``/ws/agent``) and citizen chat (``/ws/chat``) helpers: over TestClient,
and over real sockets to a ``daoban serve`` process."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

PASSWORD = "correct-horse-9"

_backlog: dict[int, list[dict[str, Any]]] = {}  # frames read past, still to be looked at


def recv(ws: WebSocketTestSession) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.receive_text())
    return frame


def until(ws: WebSocketTestSession, pred: Any, limit: int = 60) -> list[dict[str, Any]]:
    """Frames up to and including the first that satisfies ``pred``."""
    out = []
    backlog = _backlog.setdefault(id(ws), [])
    for _ in range(limit):
        f = backlog.pop(0) if backlog else recv(ws)
        out.append(f)
        if pred(f):
            return out
    raise AssertionError(f"no matching frame in {out}")


def token(client: TestClient, user: str = "wang") -> str:
    r = client.post("/agent/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert "daoban_agent" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    assert "token" not in r.json()  # the session token is in the cookie only
    t: str = r.cookies["daoban_agent"]
    return t


def agent_ws(client: TestClient, tok: str) -> Any:
    return client.websocket_connect("/ws/agent", headers={"Authorization": f"Bearer {tok}"})


def citizen_send(ws: WebSocketTestSession, client_id: str, text: str) -> list[dict[str, Any]]:
    """Frames up to the ack; those before it are also kept for the next ``until`` (the
    bus may deliver the conversation's frames before the ack)."""
    ws.send_text(json.dumps({"type": "message", "client_id": client_id, "text": text}))
    frames = until(ws, lambda f: f["type"] == "ack" and f["client_id"] == client_id)
    _backlog.setdefault(id(ws), []).extend(frames[:-1])
    return frames


# --- a real server process ------------------------------------------------------------------


def http_login(base: str, user: str = "wang") -> str:
    req = urllib.request.Request(
        base + "/agent/login", method="POST",
        data=json.dumps({"username": user, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        cookie = SimpleCookie(r.headers["Set-Cookie"])
        return cookie["daoban_agent"].value


class Reader:
    """Frames of one ``websockets`` client socket; those read past while waiting for an
    ack stay to be seen."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []

    def until(self, pred: Callable[[dict[str, Any]], bool],
              timeout: float = 15.0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.backlog:
                f = self.backlog.pop(0)
            else:
                f = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            out.append(f)
            if pred(f):
                return out
        raise AssertionError(f"no matching frame in {out}")
