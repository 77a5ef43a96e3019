"""Personal data (issue 15, finding 7): 身份证号, 手机号 and bank card numbers are masked
wherever a citizen's words are kept outside the live transcript; the transcript keeps them."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, Table, func, select, text, update
from sqlalchemy.exc import IntegrityError

from assistant.agents import Role, SqlAgentStore
from assistant.agents import migrate as migrate_agents
from assistant.core import Assistant
from assistant.desk import AgentDesk
from assistant.model import UserMessage
from channels.app import Services, create_app
from channels.cli import main as cli_main
from channels.settings import Settings
from channels.wechat_store import SqlWeChatUsers
from doorplate.service import Doorplates
from knowledge.db import make_engine
from nlu.pii import mask
from tests.consoles import PASSWORD
from tests.harness import doorplate_app, make_assistant, rest_client

KEYS = "k1:privacy-test-secret-0123456789"
ID = "230102199001011234"  # a made-up number in the 18-character format (示例)
PHONE = "13812345678"
CARD = "6222021234567890123"


@pytest.mark.parametrize(("raw", "masked"), [
    (f"我的身份证号是{ID}", "我的身份证号是2301**********1234"),
    ("身份证23010219900101123X丢了", "身份证2301**********123X丢了"),
    (f"电话{PHONE}，卡号{CARD}", "电话138****5678，卡号6222***********0123"),
    ("手机 138 1234 5678", "手机 138****5678"),
    ("手机号138-1234-5678。", "手机号138****5678。"),
    ("２３０１０２１９９００１０１１２３４", "２３０１**********１２３４"),
    ("卡号6222 0212 3456 7890", "卡号6222********7890"),
])
def test_mask(raw: str, masked: str) -> None:
    assert mask(raw) == masked


@pytest.mark.parametrize("keep", [
    "社保卡丢了咋整", "2024-11-29 去办", "12345678901", "办件编号 20241129 00001",
    "收费 150 元", "12345", "1234567890",
])
def test_mask_keeps_other_numbers(keep: str) -> None:
    assert mask(keep) == keep


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Doorplates]]:
    d = tmp_path_factory.mktemp("privacy")
    app, dp = doorplate_app(d, "p", KEYS)
    with TestClient(app) as c:
        desk: AgentDesk = c.app.state.desk  # type: ignore[attr-defined]
        desk.agents.add("boss", PASSWORD, display_name="李值班长", role=Role.SUPERVISOR)
        yield c, dp


def _assistant(client: TestClient) -> Assistant:
    a: Assistant = client.app.state.services.assistant  # type: ignore[attr-defined]
    return a


def _say(client: TestClient, cid: str, words: str, place: str | None = None) -> str:
    replies = asyncio.run(_assistant(client).handle(
        UserMessage(cid, words, channel="test", place=place), create=True))
    return "\n".join(r.text for r in replies)


def _boss(client: TestClient) -> dict[str, str]:
    desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
    got = desk.agents.login("boss", PASSWORD, timedelta(hours=1))
    assert got is not None
    return {"Authorization": f"Bearer {got[0]}"}


def _user_texts(client: TestClient, cid: str) -> list[str]:
    return [e["text"] for e in _assistant(client).store.events(cid) if e["type"] == "user"]


def test_unanswered_questions_are_masked(env: tuple[TestClient, Doorplates]) -> None:
    client, _ = env
    words = f"今天天气怎么样？我的手机号{PHONE}，身份证号{ID}"
    _say(client, "pii-unanswered", words)
    kept = [u["text"] for u in _assistant(client).store.unanswered()
            if u["conversation_id"] == "pii-unanswered"]
    assert kept, "the question was expected to be recorded as unanswered"
    assert ID not in kept[0] and PHONE not in kept[0]
    assert "2301**********1234" in kept[0] and "138****5678" in kept[0]
    # The live transcript the agent works from keeps what the citizen typed.
    assert _user_texts(client, "pii-unanswered") == [words]


def test_door_sign_statistics_are_masked(env: tuple[TestClient, Doorplates]) -> None:
    client, dp = env
    words = f"出生登记在哪办，我电话{PHONE}"
    _say(client, "pii-plate", words, place="ql-hupan-5")
    boss = _boss(client)
    page = client.get("/doorplate/stats", headers=boss)
    csv_text = client.get("/doorplate/stats.csv", headers=boss).text
    assert page.status_code == 200
    for shown in (page.text, csv_text, str(dp.stats().questions)):
        assert PHONE not in shown
        assert "138****5678" in shown


def test_rating_comments_are_masked(env: tuple[TestClient, Doorplates]) -> None:
    client, _ = env
    cid = "pii-rating"
    _say(client, cid, "身份证丢了")
    assert "打个分" in _say(client, cid, "再见")
    _say(client, cid, "满意")
    comment = f"窗口让我留了银行卡号{CARD}和电话{PHONE}"
    _say(client, cid, comment)
    [rating] = _assistant(client).store.ratings(cid)
    assert rating["comment"] == "窗口让我留了银行卡号6222***********0123和电话138****5678"
    shown = [e for e in _assistant(client).store.events(cid) if e["type"] == "rating_comment"]
    assert shown and CARD not in shown[0]["comment"]


def test_handoff_summaries_are_masked(env: tuple[TestClient, Doorplates]) -> None:
    client, _ = env
    desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
    h = desk.agents.request("pii-handoff", "test", "citizen", None, None)
    assert desk.agents.end(h.id, "closed", f"已帮市民（身份证{ID}）预约，回访电话{PHONE}")
    ended = desk.agents.get_handoff(h.id)
    assert ended is not None and ended.summary == (
        "已帮市民（身份证2301**********1234）预约，回访电话138****5678")


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_database_errors_do_not_carry_parameters(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (f"sqlite:///{tmp_path}/e.db" if kind == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (v VARCHAR(40) PRIMARY KEY)"))
        c.execute(text("INSERT INTO t VALUES (:v)"), {"v": ID})
    with pytest.raises(IntegrityError) as caught, engine.begin() as c:
        c.execute(text("INSERT INTO t VALUES (:v)"), {"v": ID})
    assert "parameters hidden" in str(caught.value)
    if kind == "sqlite":  # PostgreSQL's own DETAIL line may quote a duplicate key value
        assert ID not in str(caught.value)
    engine.dispose()


def test_logs_are_masked(tmp_path: Path) -> None:
    """A handler in place before the app starts (as the server's are) masks every line."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with rest_client(tmp_path, "logs"):
            log = logging.getLogger("channels.test")
            log.error("message from %s failed: %s", "c1", f"电话{PHONE}")
            try:
                raise ValueError(f"Key (v)=({ID}) already exists")
            except ValueError:
                log.exception("saving failed")
    finally:
        root.removeHandler(handler)
    written = out.getvalue()
    assert "138****5678" in written and "2301**********1234" in written
    assert PHONE not in written and ID not in written
    assert "ValueError" in written  # the traceback is still there


# --- retention: purge and forget -------------------------------------------------------------


def _rows(engine: Any, cid: str) -> dict[str, int]:
    meta = MetaData()
    meta.reflect(engine)
    out = {}
    with engine.connect() as c:
        for t in meta.sorted_tables:
            col = t.c.get("conversation_id") if "conversation_id" in t.c else (
                t.c.id if t.name == "conversations" else None)
            if col is not None:
                n = c.scalar(select(func.count()).select_from(t).where(col == cid))
                if n:
                    out[t.name] = int(n)
    return out


def _citizen(assistant: Assistant, cid: str) -> None:
    for words in ("今天天气怎么样", "身份证丢了", "再见", "满意", "窗口很热情"):
        asyncio.run(assistant.handle(UserMessage(cid, words, channel="wechat"), create=True))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_forget_and_purge_delete_a_citizens_data_everywhere(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = (f"sqlite:///{tmp_path}/r.db" if kind == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    monkeypatch.setenv("DAOBAN_DATABASE_URL", url)
    assistant = make_assistant(url, tmp_path / "idx")
    engine = assistant.store.engine
    migrate_agents(engine)
    users = SqlWeChatUsers(engine)
    users.create_table()
    agents = SqlAgentStore(engine)
    cids = {}
    for who in ("oForgetMe", "oKeepMe", "oOld"):
        cid = users.remember(who)
        _citizen(assistant, cid)
        agents.request(cid, "wechat", "citizen", None, None)
        cids[who] = cid
    gone = _rows(engine, cids["oForgetMe"])
    assert {"conversations", "conversation_events", "ratings", "unanswered_questions",
            "handoffs", "wechat_users"} <= set(gone), gone

    assert cli_main(["forget", "oForgetMe"]) == 0  # the openid, as the citizen knows it
    assert "已删除 1 个会话" in capsys.readouterr().out
    assert _rows(engine, cids["oForgetMe"]) == {}
    assert _rows(engine, cids["oKeepMe"]) == _rows(engine, cids["oOld"]) != {}
    assert cli_main(["forget", "oForgetMe"]) == 1  # nothing left to find

    conversations = Table("conversations", MetaData(), autoload_with=engine)
    with engine.begin() as c:
        c.execute(update(conversations).where(conversations.c.id == cids["oOld"]).values(
            updated_at=datetime.now(UTC) - timedelta(days=100)))
    assert cli_main(["purge", "--older-than", "30"]) == 0
    assert _rows(engine, cids["oOld"]) == {}
    assert "conversation_events" in _rows(engine, cids["oKeepMe"])
    engine.dispose()


def test_scheduled_purge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    assistant = make_assistant(url, tmp_path / "idx")
    for cid in ("old-one", "new-one"):
        asyncio.run(assistant.handle(UserMessage(cid, "身份证丢了", channel="test"), create=True))
    conversations = Table("conversations", MetaData(), autoload_with=assistant.store.engine)
    with assistant.store.engine.begin() as c:
        c.execute(update(conversations).where(conversations.c.id == "old-one").values(
            updated_at=datetime.now(UTC) - timedelta(days=31)))
    settings = Settings(database_url=url, index_dir=tmp_path / "idx", retention_days=30,
                        retention_every=0.2)
    with TestClient(create_app(settings, Services(settings, assistant, "t"))):
        deadline = time.monotonic() + 10
        while assistant.store.load("old-one") is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert assistant.store.load("old-one") is None
        assert assistant.store.load("new-one") is not None
