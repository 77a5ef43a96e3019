"""REST API and the Rasa-compatible webhook, through the real app (no mocks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from channels.app import Services, create_app
from channels.settings import Settings
from tests.harness import make_assistant, rest_client, rest_conversation

API_TOKEN = "test-api-token-0123456789abcdef"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with rest_client(tmp_path_factory.mktemp("rest"), "rest", api_token=API_TOKEN) as c:
        yield c


def test_health(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["guide"]["items"] >= 150


def test_conversation_round_trip(client: TestClient) -> None:
    cid, auth = rest_conversation(client)
    r = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": "社保卡丢了咋整"},
                    headers=auth)
    assert r.status_code == 200
    replies = r.json()["replies"]
    assert replies and all(set(x) == {"text", "buttons", "card"} for x in replies)
    card = next(x["card"] for x in replies if x["card"])
    assert card["name"] == "社会保障卡挂失补换"
    titles = [b["title"] for b in replies[0]["buttons"]]
    assert titles == ["查看材料", "逐项核对材料", "在哪办", "转人工"]
    # Sending a button's payload as the text acts like the click.
    walk = next(b["payload"] for b in replies[0]["buttons"] if b["title"] == "逐项核对材料")
    r = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": walk}, headers=auth)
    texts = "".join(x["text"] for x in r.json()["replies"])
    assert "核对" in texts or "您的情况" in texts
    state = client.get(f"/api/v1/conversations/{cid}", headers=auth).json()
    assert state["mode"] == "BOT"
    assert state["current_item"]["id"] == "social-security-card-replace"
    assert state["stage"] in ("walk", "situation")
    said = [t["text"] for t in state["transcript"] if t["from"] == "citizen"]
    assert said == ["社保卡丢了咋整", walk]


def test_repeated_message_id_is_processed_once(client: TestClient) -> None:
    cid, auth = rest_conversation(client)
    body = {"text": "孩子出生了要办啥", "message_id": "m-1"}
    a = client.post(f"/api/v1/conversations/{cid}/messages", json=body, headers=auth).json()
    b = client.post(f"/api/v1/conversations/{cid}/messages", json=body, headers=auth).json()
    assert a == b
    transcript = client.get(f"/api/v1/conversations/{cid}", headers=auth).json()["transcript"]
    assert sum(1 for t in transcript if t["from"] == "citizen") == 1


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b'{"text": ', 400, "invalid_json"),
        (b"{}", 422, "invalid_request"),
        (b'{"text": 5}', 422, "invalid_request"),
        (b'{"text": "   "}', 422, "message_rejected"),
        (('{"text": "' + "很" * 1001 + '"}').encode(), 422, "message_rejected"),
        (b'{"text": "' + b"x" * 70_000 + b'"}', 413, "body_too_large"),
        (b'{"text": "a\\u0000b"}', 422, "invalid_request"),  # PostgreSQL refuses NUL
        (b'{"text": "\\ud800"}', 422, "invalid_request"),  # a lone surrogate
        (b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "invalid_json"),  # deep
    ],
)
def test_bad_input_gets_clear_4xx(
    client: TestClient, payload: bytes, status: int, code: str
) -> None:
    cid, auth = rest_conversation(client)
    r = client.post(
        f"/api/v1/conversations/{cid}/messages",
        content=payload,
        headers={"content-type": "application/json", **auth},
    )
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["error"]
    assert "Traceback" not in r.text


def test_unknown_conversation_and_bad_id(client: TestClient) -> None:
    _, auth = rest_conversation(client)
    r = client.post("/api/v1/conversations/nope-123/messages", json={"text": "你好"},
                    headers=auth)
    assert r.status_code == 404 and r.json()["code"] == "conversation_not_found"
    assert client.get("/api/v1/conversations/nope-123", headers=auth).status_code == 404
    r = client.get("/api/v1/conversations/" + "%20bad", headers=auth)
    assert r.status_code in (404, 422)
    assert client.get("/no/such/path").json()["code"] == "http_error"


def test_rasa_webhook(client: TestClient) -> None:
    r = client.post("/webhooks/rest/webhook", json={"sender": "user-42", "message": "怎么取公积金"})
    assert r.status_code == 200
    out = r.json()
    assert out and all(m["recipient_id"] == "user-42" for m in out)
    buttons = out[0]["buttons"]
    assert 2 <= len(buttons) <= 5 and all(set(b) == {"title", "payload"} for b in buttons)
    # The sender names the conversation: the next message continues it.
    r = client.post("/webhooks/rest/webhook", json={"sender": "user-42", "message": "1"})
    assert "【住房公积金提取" in r.json()[0]["text"]
    assert "buttons" not in client.post(
        "/webhooks/rest/webhook", json={"sender": "user-42", "message": "谢谢"}
    ).json()[0]
    # Only the server's API token reads a webhook conversation through the REST API.
    api = {"Authorization": f"Bearer {API_TOKEN}"}
    state = client.get("/api/v1/conversations/rasa:user-42", headers=api).json()
    assert state["current_item"]["name"].startswith("住房公积金提取")


def test_rasa_webhook_bad_input(client: TestClient) -> None:
    assert client.post("/webhooks/rest/webhook", json={"message": "x"}).status_code == 422
    r = client.post("/webhooks/rest/webhook", json={"sender": "奇怪的 id/..", "message": "你好"})
    assert r.status_code == 200 and r.json()[0]["recipient_id"] == "奇怪的 id/.."


def test_internal_error_is_polite(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", index_dir=tmp_path / "i")
    assistant = make_assistant(settings.database_url, settings.index_dir)
    assistant.store.engine.dispose()
    (tmp_path / "x.db").unlink()
    (tmp_path / "x.db").mkdir()  # the database file became a directory: every query fails
    app = create_app(settings, Services(settings, assistant, "test"))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/v1/conversations")
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error" and "12345" in r.json()["error"]
    assert "Traceback" not in r.text
