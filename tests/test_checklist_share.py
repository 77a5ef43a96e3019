"""Issue 14 parts 4 and 5 without a browser: the card leads with the Harbin facts, sources
as one publisher line, other places folded, unambiguous amounts, checklists grouped by
member item; the checklist shared by link (read-only, 30 days, nothing personal) and sent
as one WeChat message."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from assistant import checklist
from assistant.model import Conversation, Walk
from assistant.render import Entry, amount, applicable, card, card_text, material_line, members
from assistant.shares import ChecklistShareRow, create_share, load_share
from assistant.sources import publishers, source_line
from assistant.store import migrate as migrate_conversations
from channels.wechat_render import (
    MAX_BYTES,
    NO_CHECKLIST,
    checklist_messages,
    checklist_reply,
    is_checklist_command,
    render,
)
from knowledge.db import make_engine
from knowledge.schema import Bundle, Form, MaterialUse
from knowledge.validate import GuideBase, load_guide
from tests.harness import Chat, make_assistant, rest_client

_URL = re.compile(r"https?://|www\.")


@pytest.fixture(scope="module")
def guide() -> GuideBase:
    return load_guide()


def entries(guide: GuideBase) -> list[Entry]:
    return [*guide.items.values(), *guide.bundles.values()]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with rest_client(tmp_path_factory.mktemp("share"), "share") as c:
        yield c


def _conversation(client: TestClient) -> tuple[str, dict[str, str]]:
    """A new REST conversation and the headers that open it (a token when the server
    hands one out)."""
    body = client.post("/api/v1/conversations").json()
    token = body.get("token")
    return str(body["id"]), ({"Authorization": f"Bearer {token}"} if token else {})


def _say(client: TestClient, cid: str, headers: dict[str, str], text: str) -> list[dict[str, Any]]:
    r = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": text}, headers=headers)
    assert r.status_code == 200, r.text
    replies: list[dict[str, Any]] = r.json()["replies"]
    return replies


# --- 4. the card on a phone ------------------------------------------------------------------


def test_card_text_leads_with_what_where_how_long_cost_online(guide: GuideBase) -> None:
    for e in entries(guide):
        lines = card_text(guide, e, 3).split("\n")
        heads = [next(i for i, line in enumerate(lines) if line.startswith(h))
                 for h in ("在哪办：", "多久办好：", "收费：", "网上/掌上办：", "谁能办：", "需要材料：")]
        assert heads == sorted(heads) and heads[0] == 2, (e.id, lines)  # title, what, then facts


def test_no_raw_urls_and_one_source_line(guide: GuideBase) -> None:
    for e in entries(guide):
        text = card_text(guide, e, 2)
        assert not _URL.search(text), (e.id, text)
        sources = [line for line in text.split("\n") if line.startswith("来源：")]
        assert len(sources) == 1 and not _URL.search(sources[0])
        d = card(guide, e, 2)
        assert d["source"].startswith("来源：") and not _URL.search(d["source"])
        assert not any(_URL.search(r) for r in d.get("reductions", []))
        if "http" in e.provenance.source:
            assert d["source_url"] and d["source_url"].startswith("http")


def test_publishers_are_named_not_addressed() -> None:
    assert publishers("《中华人民共和国社会保险法》第十条；医保发〔2021〕43号") == [
        "全国人大常委会", "国家医保局"]
    assert source_line("https://www.harbin.gov.cn/x.html；国办发〔2024〕38号") == \
        "来源：哈尔滨市人民政府、国务院办公厅"
    assert source_line("http://m.example.com/a") == "来源：网络公开资料"


def test_other_places_figures_are_folded_under_their_label(guide: GuideBase) -> None:
    b = guide.bundles["newborn-bundle"]
    text = card_text(guide, b, 5)
    assert "青海" in text
    folded = [line for line in text.split("\n") if "青海" in line or "湖北" in line]
    assert folded and all(line.startswith("其他地方的做法") for line in folded)
    # nowhere else in the bundle's Harbin facts (the time limit once quoted 青海's figure)
    assert "青海" not in b.time_limit.text and "青海" not in b.summary
    assert [x.split("：")[0] for x in card(guide, b, 5)["elsewhere"]] == [
        "青海", "湖北（新生儿落户一事联办）"]


def test_amounts_say_original_one_and_copies(guide: GuideBase) -> None:
    both = MaterialUse.model_validate({"ref": "id-card", "form": "原件和复印件", "copies": 2})
    assert both.form is Form.ORIGINAL_AND_COPY
    assert amount(both).startswith("原件1份、复印件2份")
    for e in guide.items.values():
        for m in applicable(guide, e, {}):
            line = material_line(guide, m)
            assert amount(m.use) in line
            if m.use.form is Form.ORIGINAL_AND_COPY:
                assert f"原件1份、复印件{m.use.copies}份" in line


# --- 5. the checklist -------------------------------------------------------------------------


def _walked(guide: GuideBase, entry_id: str, answers: list[str]) -> Conversation:
    e = guide.entry(entry_id)
    assert e is not None
    refs = [m.ref for m in applicable(guide, e, {})]
    conv = Conversation("x", current=entry_id)
    conv.walk = Walk(entry_id, refs[len(answers):], dict(zip(refs, answers, strict=False)))
    return conv


def test_bundle_checklist_is_grouped_under_member_names(
        guide: GuideBase, tmp_path: Path) -> None:
    a = make_assistant(f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "idx")
    b = guide.bundles["newborn-bundle"]
    assert isinstance(b, Bundle)
    snap = checklist.snapshot(_walked(guide, b.id, ["ready", "missing"]), a.ctx)
    assert snap is not None
    titles = [g["title"] for g in snap["groups"]]
    member_names = [m.name for m in members(guide, b)]
    assert titles and all(t in member_names for t in titles)
    assert titles == sorted(titles, key=member_names.index)
    states = [m["state"] for g in snap["groups"] for m in g["materials"]]
    assert states[:2] == ["ready", "missing"] and set(states[2:]) <= {"pending"}
    text = checklist.text(snap)
    for t in titles:
        assert f"【{t}】" in text
    assert all(m["amount"] for g in snap["groups"] for m in g["materials"])


def test_list_card_for_a_reply(guide: GuideBase, tmp_path: Path) -> None:
    a = make_assistant(f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "idx")
    assert checklist.card(Conversation("x"), a.ctx) is None
    c = checklist.card(Conversation("x", current="newborn-bundle"), a.ctx)
    assert c is not None and c["type"] == "checklist" and c["walked"] is False
    states = {m["state"] for g in c["groups"] for m in g["materials"]}
    assert states == {"listed", "skipped"}  # shared / e-licence materials: not on paper


def test_share_link_opens_a_read_only_copy(client: TestClient) -> None:
    cid, headers = _conversation(client)
    _say(client, cid, headers, "社保卡丢了咋整")
    _say(client, cid, headers, "/materials")
    r = client.post(f"/api/v1/conversations/{cid}/checklist/share", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"url", "qr_svg", "expires_at"}
    token = body["url"].rsplit("/c/", 1)[1]
    assert len(token) >= 22 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert body["qr_svg"].startswith("<svg") and "</svg>" in body["qr_svg"]
    left = datetime.fromisoformat(body["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
    page = client.get(f"/c/{token}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    state = client.get(f"/api/v1/conversations/{cid}", headers=headers).json()
    assert state["current_item"]["name"] in page.text
    services = client.app.state.services  # type: ignore[attr-defined]
    conv = services.assistant.store.load(cid)
    snap = checklist.snapshot(conv, services.assistant.ctx)
    assert snap is not None
    names = [m["name"] for g in snap["groups"] for m in g["materials"]]
    assert names and all(n in page.text for n in names)
    assert "<form" not in page.text and "<input" not in page.text  # nothing to change or send
    assert cid not in page.text


def test_share_holds_nothing_personal(client: TestClient) -> None:
    cid, headers = _conversation(client)
    _say(client, cid, headers, "我叫王小明，电话13900001111，社保卡丢了咋整")
    r = client.post(f"/api/v1/conversations/{cid}/checklist/share", headers=headers)
    assert r.status_code == 200, r.text
    token = r.json()["url"].rsplit("/c/", 1)[1]
    engine = client.app.state.services.assistant.store.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        row = s.execute(select(ChecklistShareRow).where(ChecklistShareRow.token == token)).scalar_one()
        stored = json.dumps(row.snapshot, ensure_ascii=False)
    assert set(row.snapshot) <= {"entry", "name", "kind", "walked", "groups", "where",
                                 "time_limit", "phone"}
    for personal in (cid, "王小明", "13900001111"):
        assert personal not in stored


def test_unknown_and_expired_links_get_the_same_404(client: TestClient) -> None:
    engine = client.app.state.services.assistant.store.engine  # type: ignore[attr-defined]
    old = create_share(engine, {"entry": "x", "name": "过期的清单", "groups": []},
                       now=datetime.now(UTC) - timedelta(days=31))
    expired = client.get(f"/c/{old.token}")
    unknown = client.get("/c/AAAAAAAAAAAAAAAAAAAAAA")
    odd = client.get("/c/%3Cscript%3E")
    long = client.get("/c/" + "A" * 500)
    assert expired.status_code == unknown.status_code == odd.status_code == long.status_code == 404
    assert expired.text == unknown.text == odd.text == long.text
    assert "过期的清单" not in expired.text
    assert "不存在或已过期" in expired.text


def test_share_store_on_both_databases(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate_conversations(engine)  # Alembic, a003 included
    snap = {"entry": "e", "name": "清单", "groups": [{"title": "", "materials": []}]}
    now = datetime.now(UTC)
    made = create_share(engine, snap, now=now)
    assert load_share(engine, made.token, now=now + timedelta(days=29))["name"] == "清单"  # type: ignore[index]
    assert load_share(engine, made.token, now=now + timedelta(days=30, seconds=1)) is None
    create_share(engine, snap, now=now + timedelta(days=31))  # sweeps the expired one
    with Session(engine) as s:
        left = s.execute(select(ChecklistShareRow.token)).scalars().all()
    assert made.token not in left and len(left) == 1
    engine.dispose()


def test_share_access_is_checked_like_get_conversation(client: TestClient) -> None:
    cid, headers = _conversation(client)
    _say(client, cid, headers, "社保卡丢了咋整")
    for h in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, headers):
        got = client.get(f"/api/v1/conversations/{cid}", headers=h).status_code
        shared = client.post(f"/api/v1/conversations/{cid}/checklist/share", headers=h).status_code
        assert shared == got, h
    assert client.post("/api/v1/conversations/nope/checklist/share",
                       headers=headers).status_code in (401, 404)


def test_share_before_any_item_is_a_polite_409(client: TestClient) -> None:
    cid, headers = _conversation(client)
    r = client.post(f"/api/v1/conversations/{cid}/checklist/share", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "no_checklist"


# --- the whole checklist as one WeChat message ----------------------------------------------


def test_wechat_checklist_is_one_message_within_the_limit(
        guide: GuideBase, tmp_path: Path) -> None:
    a = make_assistant(f"sqlite:///{tmp_path / 'w.db'}", tmp_path / "idx")
    snap = checklist.snapshot(_walked(guide, "newborn-bundle", ["ready"]), a.ctx)
    [one] = checklist_messages(snap)
    assert len(one.encode()) <= MAX_BYTES and "材料清单" in one
    assert snap is not None
    for g in snap["groups"]:
        assert f"【{g['title']}】" in one
        for m in g["materials"]:
            assert m["name"] in one


def test_wechat_long_checklist_splits_cleanly() -> None:
    mats = [{"name": f"材料{i:03d}", "amount": "原件1份、复印件2份（原件核验后退还）",
             "state": "listed"} for i in range(120)]
    snap = {"name": "很长的一件事", "groups": [{"title": "某事项", "materials": mats}],
            "where": "各区政务服务中心", "time_limit": "即办", "phone": "12345"}
    parts = checklist_messages(snap)
    assert len(parts) > 1 and all(len(p.encode()) <= MAX_BYTES for p in parts)
    assert parts[0].startswith(f"（1/{len(parts)}）")
    body = "\n".join(p.split("\n", 1)[1] for p in parts)
    assert all(re.search(rf"\d+\. {m['name']}：", body) for m in mats)  # no line cut in two
    assert checklist_messages(None)[0].startswith("还没有材料清单")


def test_wechat_checklist_command_and_no_raw_link(chat: Callable[[], Chat]) -> None:
    assert is_checklist_command("清单") and is_checklist_command("发清单。")
    assert not is_checklist_command("清单里有身份证吗")
    c = chat()
    c.say("社保卡丢了咋整")
    [text] = render(c.last, "https://daoban.example.gov.cn/")
    assert "回复“清单”" in text
    assert '<a href="https://daoban.example.gov.cn/">' in text
    outside = re.sub(r"<a href=\"[^\"]*\">", "", text)
    assert not _URL.search(outside)


def test_wechat_checklist_reply_is_the_conversations_checklist(
        chat: Callable[[], Chat]) -> None:
    c = chat()
    assert checklist_reply(c.assistant, c.cid) == [NO_CHECKLIST]  # nothing in hand yet
    c.say("社保卡丢了咋整")
    [one] = checklist_reply(c.assistant, c.cid)
    conv = c.assistant.store.load(c.cid)
    snap = checklist.snapshot(conv, c.assistant.ctx) if conv else None
    assert snap is not None and one.startswith(f"“{snap['name']}”材料清单")
    for g in snap["groups"]:
        for m in g["materials"]:
            label = checklist.STATES[m["state"]][1]
            assert f"{m['name']}：{m['amount']}（{label}）" in one


@pytest.fixture
def chat(tmp_path: Path) -> Callable[[], Chat]:
    a = make_assistant(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "idx")
    return lambda: Chat(a)
