"""Canned replies (常用语): storage and who may change what (SQLite and PostgreSQL), the
variables, and the REST endpoints under /agent/api with their role checks; the console's
checklist panel endpoint."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from assistant.agents import Agent, Role, SqlAgentStore
from assistant.agents import migrate as migrate_agents
from assistant.canned import CannedError, Scope, SqlCannedStore, render
from assistant.desk import AgentDesk
from assistant.model import UserMessage
from channels.settings import Settings
from knowledge.db import make_engine
from tests.consoles import PASSWORD
from tests.harness import app_for


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[SqlAgentStore, SqlCannedStore]]:
    engine = make_engine(db_url)
    migrate_agents(engine)
    assert "canned_replies" in inspect(engine).get_table_names()
    yield SqlAgentStore(engine), SqlCannedStore(engine)
    engine.dispose()


def test_scopes_permissions_and_precedence(stores: tuple[SqlAgentStore, SqlCannedStore]) -> None:
    agents, canned = stores
    wang = agents.add("wang", PASSWORD, skills=("人社",))
    li = agents.add("li", PASSWORD, skills=("公安",))
    boss = agents.add("boss", PASSWORD, role=Role.SUPERVISOR)
    with pytest.raises(CannedError) as refused:
        canned.add(wang, scope="shared", shortcut="hi", text="您好")
    assert refused.value.status == 403
    with pytest.raises(CannedError) as refused:
        canned.add(wang, scope="department", department="人社", shortcut="hi", text="您好")
    assert refused.value.status == 403
    shared = canned.add(boss, scope="shared", shortcut="hi", text="您好，我是帮办人员。")
    dept = canned.add(boss, scope="department", department="人社", shortcut="sbk",
                      text="社保卡挂失请拨 12333。")
    canned.add(boss, scope="department", department="公安", shortcut="hz", text="户政窗口……")
    own = canned.add(wang, scope="personal", shortcut="hi", text="您好，我是王帮办。")
    with pytest.raises(CannedError) as twice:
        canned.add(wang, scope="personal", shortcut="hi", text="again")
    assert twice.value.status == 409
    with pytest.raises(CannedError) as bad:
        canned.add(boss, scope="department", shortcut="x", text="no department")
    assert bad.value.status == 422
    with pytest.raises(CannedError):
        canned.add(wang, scope="personal", shortcut="有 空格", text="x")

    # Personal before department before shared; departments by skill; others' personal never.
    assert [(c.shortcut, c.scope) for c in canned.for_agent(wang)] == [
        ("hi", Scope.PERSONAL), ("hi", Scope.SHARED), ("sbk", Scope.DEPARTMENT)]
    assert [c.shortcut for c in canned.for_agent(li)] == ["hi", "hz"]
    assert {c.shortcut for c in canned.for_agent(boss)} == {"hi", "sbk", "hz"}
    assert own.id not in {c.id for c in canned.for_agent(boss)}

    # Changes: shared/department by supervisors, personal by the owner only.
    with pytest.raises(CannedError) as refused:
        canned.update(wang, shared.id, shortcut="hi", text="改了")
    assert refused.value.status == 403
    with pytest.raises(CannedError) as hidden:
        canned.delete(boss, own.id)
    assert hidden.value.status == 404  # another's personal reply is not even there
    assert canned.update(boss, dept.id, shortcut="sbk2", text="新内容").shortcut == "sbk2"
    assert canned.update(wang, own.id, shortcut="hello", text="您好！").text == "您好！"
    canned.delete(wang, own.id)
    assert canned.get(own.id) is None
    assert all(isinstance(a, Agent) for a in (wang, li, boss))


def test_render_fills_known_variables_only() -> None:
    vals = {"item": "社会保障卡挂失补换", "checklist": "✔ 身份证（已备好）",
            "citizen_channel": "微信公众号"}
    got = render("关于{item}（{citizen_channel}）：\n{checklist}\n{unknown} {ITEM}", vals)
    assert got == "关于社会保障卡挂失补换（微信公众号）：\n✔ 身份证（已备好）\n{unknown} {ITEM}"


# --- REST ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d: Path = tmp_path_factory.mktemp("canned")
    settings = Settings(database_url=f"sqlite:///{d / 'c.db'}", index_dir=d / "idx",
                        agent_wait_limit=600, agent_grace_seconds=600)
    app = app_for(settings)
    with TestClient(app) as c:
        desk: AgentDesk = app.state.desk
        desk.agents.add("wang", PASSWORD, display_name="王帮办", skills=("人社",))
        desk.agents.add("li", PASSWORD, display_name="李帮办", skills=("公安",))
        desk.agents.add("boss", PASSWORD, display_name="赵值班长", role=Role.SUPERVISOR)
        yield c


def _as(client: TestClient, user: str) -> dict[str, str]:
    r = client.post("/agent/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.cookies.clear()  # the bearer header only: several users in one client
    return {"Authorization": f"Bearer {r.cookies['daoban_agent']}"}


def _walked_and_queued(client: TestClient, cid: str) -> None:
    desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
    portal = client.portal
    assert portal is not None  # inside the client's ``with``
    for text in ("社保卡丢了咋整", "/walk", "/sit:agent", "/have", "/missing", "/human"):
        portal.call(functools.partial(desk.assistant.handle_logged,
                                      UserMessage(cid, text, channel="web"), create=True))


def test_rest_roles_render_and_materials(client: TestClient) -> None:
    wang, li, boss = _as(client, "wang"), _as(client, "li"), _as(client, "boss")
    assert client.get("/agent/api/canned").status_code == 401
    denied = client.post("/agent/api/canned", headers=wang,
                         json={"scope": "shared", "shortcut": "hi", "text": "您好"})
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    made = client.post("/agent/api/canned", headers=boss, json={
        "scope": "department", "department": "人社", "shortcut": "cl",
        "text": "您办理{item}（{citizen_channel}）的材料情况：\n{checklist}"})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    mine = client.post("/agent/api/canned", headers=wang,
                       json={"scope": "personal", "shortcut": "bye", "text": "再见"})
    assert mine.status_code == 201 and mine.json()["editable"] is True
    listed = client.get("/agent/api/canned", headers=wang).json()
    assert [(r["shortcut"], r["editable"]) for r in listed["replies"]] == [
        ("bye", True), ("cl", False)]
    assert listed["manages_shared"] is False
    assert [r["shortcut"] for r in client.get("/agent/api/canned", headers=li).json()["replies"]
            ] == []
    assert client.put(f"/agent/api/canned/{rid}", headers=wang,
                      json={"shortcut": "cl", "text": "x"}).status_code == 403
    assert client.delete(f"/agent/api/canned/{mine.json()['id']}", headers=boss
                         ).status_code == 404
    assert client.post("/agent/api/canned", headers=boss, json={
        "scope": "shared", "shortcut": "bad shortcut", "text": "x"}).status_code == 422

    _walked_and_queued(client, "rest-canned-1")
    got = client.post(f"/agent/api/canned/{rid}/render", headers=wang,
                      json={"conversation_id": "rest-canned-1"})
    assert got.status_code == 200, got.text
    text = got.json()["text"]
    assert text.startswith("您办理社会保障卡挂失补换（网页导办）的材料情况：\n")
    assert "（已备好）" in text and "（还要准备）" in text and "（还没核对）" in text
    assert "{" not in text
    # A conversation of another department: not for 李帮办 (公安); nor the reply.
    assert client.post(f"/agent/api/canned/{rid}/render", headers=li,
                       json={"conversation_id": "rest-canned-1"}).status_code == 404
    assert client.get("/agent/api/conversations/rest-canned-1/materials", headers=li
                      ).status_code == 403

    panel = client.get("/agent/api/conversations/rest-canned-1/materials", headers=wang).json()
    cl = panel["checklist"]
    assert cl["name"] == "社会保障卡挂失补换" and cl["walked"] is True
    cats = [m["category"] for m in cl["materials"]]
    assert cats[:2] == ["ready", "missing"] and set(cats[2:]) == {"unchecked"}
    assert cl["counts"] == {"ready": 1, "missing": 1, "unchecked": len(cats) - 2}
    assert client.delete(f"/agent/api/canned/{rid}", headers=boss).status_code == 204
