"""The agent console's daily basics in a real browser (Debian chromium + Playwright) against
a real ``daoban serve``: the conversation view (button presses as titles, sides, opening at
the latest message, the multi-line composer, the checklist panel), 常用语 with variables,
attention (unread, sound, title, previews, SLA), typing indicators both ways and the
direct transfer to a named colleague. Citizens are /ws/chat clients or the citizen page.
Set DAOBAN_SCREENSHOTS=1 to refresh docs/screenshots/10-console.png."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.consoles import PASSWORD, Reader
from tests.servers import add_agent, daoban_server, launch_chromium, require_chromium
from tests.test_agent_multiprocess import two_servers  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SLA = 3  # seconds: DAOBAN_SLA_SECONDS of the server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    d = tmp_path_factory.mktemp("console")
    add_agent(d, "wang", "--name", "王帮办", "--skills", "人社", "--max-chats", "10")
    add_agent(d, "li", "--name", "李帮办", "--skills", "公安", "--max-chats", "10")
    add_agent(d, "zhao", "--name", "赵帮办", "--skills", "人社", "--max-chats", "10")
    add_agent(d, "boss", "--name", "孙值班长", "--role", "supervisor")
    with daoban_server(d, DAOBAN_SLA_SECONDS=str(SLA), DAOBAN_AGENT_WAIT_LIMIT="600",
                       DAOBAN_AGENT_GRACE_SECONDS="600") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


class Citizen:
    """A /ws/chat citizen: ``say`` returns once the server acknowledged."""

    def __init__(self, server: str) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(server.replace("http", "ws") + "/ws/chat"))
        self.reader = Reader(self.ws)
        self.ws.send(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        self.cid = self.reader.until(lambda f: f["type"] == "welcome")[-1]["conversation_id"]
        self.n = 0

    def say(self, *texts: str) -> None:
        for text in texts:
            self.n += 1
            ack = f"m{self.n}"
            self.ws.send(json.dumps({"type": "message", "client_id": ack, "text": text}))
            self.reader.until(lambda f: f["type"] == "ack" and f["client_id"] == ack)  # noqa: B023

    def close(self) -> None:
        self._stack.close()


def console(browser: Any, server: str, user: str) -> Any:
    page = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800}).new_page()
    page.on("dialog", lambda d: pytest.fail(f"the console used a browser dialog: {d.message}"))
    page.goto(server + "/agent")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="登录").click()
    until(page, "window.daobanAgent && window.daobanAgent.state().connected")
    return page


def until(page: Any, condition: str, timeout: int = 20_000) -> None:
    page.wait_for_function(f"() => {condition}", timeout=timeout)  # a function: the CSP forbids eval


def state(page: Any) -> dict[str, Any]:
    got: dict[str, Any] = page.evaluate("() => window.daobanAgent.state()")
    return got


def claim(page: Any, cid: str) -> None:
    item = page.locator(f'#queue .item[data-cid="{cid}"]')
    item.get_by_role("button", name="接入").click(timeout=15_000)
    page.locator(f'#chats .item[data-cid="{cid}"]').wait_for(timeout=15_000)
    until(page, f"window.daobanAgent.state().current === {json.dumps(cid)}")


def test_conversation_view(server: str, browser: Any) -> None:
    citizen = browser.new_context(locale="zh-CN").new_page()
    citizen.goto(server + "/")
    citizen.wait_for_function("() => window.daoban && window.daoban.state().connected")
    citizen.fill("#msg", "社保卡丢了咋整")
    citizen.keyboard.press("Enter")
    for title in ("逐项核对材料", "代办", "有", "没有"):
        citizen.get_by_role("button", name=title, exact=True).last.click(timeout=15_000)
        citizen.wait_for_function("() => window.daoban.state().pending === 0")
    citizen.get_by_role("button", name="转人工").first.click()
    citizen.locator(".row.system", has_text="正在为您转接人工帮办").wait_for(timeout=15_000)
    for i in range(6):  # messages left while waiting: the log is longer than the screen
        citizen.fill("#msg", f"我再补充一点情况，第{i + 1}条")
        citizen.keyboard.press("Enter")
    citizen.wait_for_function("() => window.daoban.state().pending === 0")
    cid = citizen.evaluate("() => window.daoban.state().cid")

    page = console(browser, server, "wang")
    claim(page, cid)
    page.locator(".row.citizen .text", has_text="第6条").wait_for()
    log = page.locator("#log").inner_text()
    # Button presses as their titles, never as payloads.
    for payload in ("/walk", "/sit:", "/have", "/missing", "/human"):
        assert payload not in log
    pressed = page.locator(".row.citizen .text.pressed").all_inner_texts()
    assert pressed == ["逐项核对材料", "代办", "有", "没有", "转人工"]
    # Citizen left, bot and agent right.
    left = page.locator(".row.citizen .bubble").first.bounding_box()
    right = page.locator(".row.bot .bubble").first.bounding_box()
    assert left["x"] + left["width"] < right["x"] + right["width"] and left["x"] < right["x"]
    # Opened at the latest message, composer in view, without scrolling the page.
    until(page, "(() => { const l = document.getElementById('log'); "
                "return l.scrollHeight > l.clientHeight && "
                "l.scrollTop + l.clientHeight >= l.scrollHeight - 2; })()")
    last = page.locator("#log .row").last.bounding_box()
    box = page.locator("#log").bounding_box()
    assert box["y"] <= last["y"] and last["y"] + last["height"] <= box["y"] + box["height"] + 2
    msg = page.locator("#msg").bounding_box()
    assert msg["y"] + msg["height"] <= 800 and page.evaluate("() => window.scrollY") == 0
    # The checklist panel: every material with its state.
    page.locator("#materials li[data-state]").first.wait_for()
    states = page.locator("#materials li[data-state]").evaluate_all(
        "els => els.map(e => [e.querySelector('.name').textContent, e.dataset.state])")
    assert [s for _, s in states] == ["ready", "missing", "unchecked"]
    assert "居民身份证" in states[0][0] and "授权委托书" in states[1][0]
    assert "已备 1 · 缺 1 · 未核对 1" in page.locator("#materials-count").inner_text()

    # Typing, both ways.
    page.locator("#msg").press_sequentially("您好")
    citizen.locator(".typing-hint", has_text="帮办人员正在输入…").wait_for(timeout=10_000)
    citizen.locator("#msg").press_sequentially("在吗")
    page.locator("#typing", has_text="市民正在输入…").wait_for(timeout=10_000)

    # Multi-line composer: Shift+Enter is a new line, Enter sends.
    page.fill("#msg", "")
    page.locator("#msg").press_sequentially("第一行")
    page.keyboard.press("Shift+Enter")
    page.locator("#msg").press_sequentially("第二行")
    assert page.input_value("#msg") == "第一行\n第二行"
    page.keyboard.press("Enter")
    assert page.input_value("#msg") == ""
    citizen.locator(".row.agent", has_text="第二行").wait_for(timeout=15_000)
    assert "第一行\n第二行" in citizen.locator(".row.agent").last.inner_text()
    assert citizen.locator(".typing-hint").inner_text() == ""  # the message ends "typing"
    if os.environ.get("DAOBAN_SCREENSHOTS"):
        page.wait_for_timeout(500)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "10-console.png"))
    page.context.close()
    citizen.context.close()


def test_canned_replies_typed_and_picked(server: str, browser: Any) -> None:
    boss = console(browser, server, "boss")
    boss.select_option("#canned-scope", "shared")
    boss.fill("#canned-shortcut", "hi")
    boss.fill("#canned-text", "您好，这里是人工帮办，您在{citizen_channel}咨询的{item}由我来跟进。")
    boss.click("#canned-save")
    boss.locator("#canned-list li", has_text="/hi").wait_for()
    boss.context.close()

    c = Citizen(server)
    c.say("社保卡丢了咋整", "/walk", "/sit:agent", "/have", "/missing", "/human")
    page = console(browser, server, "wang")
    # An agent may not add shared replies: only personal is offered.
    assert page.locator("#canned-scope option").all_inner_texts() == ["个人"]
    page.fill("#canned-shortcut", "cl")
    page.fill("#canned-text", "{item}的材料核对情况：\n{checklist}")
    page.click("#canned-save")
    page.locator("#canned-list li", has_text="/cl").wait_for()
    claim(page, c.cid)

    page.locator("#msg").press_sequentially("/c")
    page.locator("#canned-menu button", has_text="/cl").wait_for()
    assert page.locator("#canned-menu button").count() == 1  # filtered by the shortcut
    page.keyboard.press("Enter")  # takes the reply, does not send "/c"
    until(page, "document.getElementById('msg').value.indexOf('材料核对情况') >= 0")
    text = page.input_value("#msg")
    assert text.startswith("社会保障卡挂失补换的材料核对情况：\n")
    assert "✔ 居民身份证（已备好）" in text and "✘ 授权委托书（还要准备）" in text
    assert "（还没核对）" in text
    page.keyboard.press("Enter")
    got = c.reader.until(lambda f: f.get("from") == "agent")
    assert got[-1]["text"] == text

    page.click("#canned-open")  # the picker
    page.locator("#canned-menu button", has_text="/hi").click()
    until(page, "document.getElementById('msg').value.indexOf('您好') === 0")
    assert page.input_value("#msg") == ("您好，这里是人工帮办，您在网页导办咨询的社会保障卡挂失补换"
                                        "由我来跟进。")
    page.context.close()
    c.close()


def test_attention_unread_sound_title_sla(server: str, browser: Any) -> None:
    a, b = Citizen(server), Citizen(server)
    a.say("社保卡丢了咋整", "转人工")
    b.say("社保卡丢了咋整", "转人工")
    page = console(browser, server, "zhao")
    claim(page, b.cid)
    claim(page, a.cid)  # a is open; b is not
    base = state(page)
    b.say("请问补卡要带什么？")
    item = page.locator(f'#chats .item[data-cid="{b.cid}"]')
    item.locator(".badge", has_text="1").wait_for()
    assert "市民：请问补卡要带什么？" in item.locator(".preview").inner_text()
    s = state(page)
    n = base["unread"] + 1  # 0 + 1 on a fresh server
    assert s["unread"] == n and s["title"].startswith(f"({n}) ")
    assert page.title().startswith(f"({n}) ")
    assert s["beeps"] == base["beeps"] + 1 and not s["muted"], (base, s)
    # Waiting past DAOBAN_SLA_SECONDS: highlighted, in the chat list and in the queue.
    item.locator(".sla-tag").wait_for(timeout=15_000)
    assert "sla" in (item.get_attribute("class") or "")

    page.check("#mute")
    page.wait_for_timeout(900)  # past the beep's own rate limit
    b.say("在吗？")
    item.locator(".badge", has_text="2").wait_for()
    s2 = state(page)
    assert s2["muted"] and s2["beeps"] == s["beeps"] and s2["rings"] == s["rings"] + 1

    # Opening the chat reads it: the count and the title go back.
    item.click()
    until(page, f"window.daobanAgent.state().unread === {base['unread']}")
    assert page.title().startswith("(") == bool(base["unread"])

    # A new queued chat rings and shows in the title; the mute setting survives a reload.
    page.reload()
    until(page, "window.daobanAgent.state().connected")
    assert page.is_checked("#mute")
    page.uncheck("#mute")
    until(page, "document.querySelectorAll('#chats .item').length >= 2")
    before = state(page)
    q = Citizen(server)
    q.say("社保卡丢了咋整", "转人工")
    page.locator(f'#queue .item.new[data-cid="{q.cid}"]').wait_for()
    s3 = state(page)
    assert s3["newQueued"] == 1 and s3["beeps"] == before["beeps"] + 1
    assert page.title().startswith(f"({before['unread'] + 1}) ")
    page.locator(f'#queue .item.sla[data-cid="{q.cid}"] .sla-tag').wait_for(timeout=15_000)

    boss = console(browser, server, "boss")  # supervisors see the breaches counted
    boss.locator("#breaches", has_text="超时").wait_for(timeout=15_000)
    boss.context.close()
    page.context.close()
    for c in (a, b, q):
        c.close()


def test_direct_transfer_to_a_named_colleague(server: str, browser: Any) -> None:
    c = Citizen(server)
    c.say("社保卡丢了咋整", "转人工")
    li = console(browser, server, "li")  # 公安: not in 人社's queue, online with capacity
    page = console(browser, server, "wang")
    claim(page, c.cid)
    option = page.locator("#to-agent option", has_text="李帮办（在线")
    option.wait_for(state="attached")
    page.select_option("#to-agent", label=option.inner_text())
    page.click("#transfer")
    page.locator("#chat-head", has_text="已转出：李帮办").wait_for()
    assert page.locator("#desk-error").is_hidden()
    li.locator(f'#chats .item[data-cid="{c.cid}"]').click(timeout=15_000)
    li.locator(".row.system", has_text="李帮办已接入").wait_for()
    li.fill("#msg", "您好，我是李帮办，由我继续为您服务。")
    li.keyboard.press("Enter")
    got = c.reader.until(lambda f: f.get("from") == "agent")
    assert got[-1]["text"] == "您好，我是李帮办，由我继续为您服务。"
    assert page.locator(f'#chats .item[data-cid="{c.cid}"]').count() == 0
    li.context.close()
    page.context.close()
    c.close()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_typing_and_replies_across_two_processes(two_servers: tuple[str, str],  # noqa: F811
                                                 browser: Any) -> None:
    """The citizen's page on process A, the console on process B (PostgreSQL + Redis):
    typing indicators and messages cross the bus both ways."""
    a, b = two_servers
    citizen = browser.new_context(locale="zh-CN").new_page()
    citizen.goto(a + "/")
    citizen.wait_for_function("() => window.daoban && window.daoban.state().connected")
    citizen.fill("#msg", "社保卡丢了咋整")
    citizen.keyboard.press("Enter")
    citizen.get_by_role("button", name="逐项核对材料").last.click(timeout=15_000)
    citizen.get_by_role("button", name="转人工").first.click()
    citizen.locator(".row.system", has_text="正在为您转接人工帮办").wait_for(timeout=15_000)
    cid = citizen.evaluate("() => window.daoban.state().cid")

    page = console(browser, b, "wang")
    claim(page, cid)
    page.locator(".row.citizen .text.pressed", has_text="转人工").wait_for()
    assert page.locator(".row.citizen .text.pressed").all_inner_texts() == [
        "逐项核对材料", "转人工"]
    page.locator("#msg").press_sequentially("稍等")
    citizen.locator(".typing-hint", has_text="帮办人员正在输入…").wait_for(timeout=10_000)
    citizen.locator("#msg").press_sequentially("好的")
    page.locator("#typing", has_text="市民正在输入…").wait_for(timeout=10_000)
    page.fill("#msg", "")
    page.locator("#msg").press_sequentially("您好")
    page.keyboard.press("Shift+Enter")
    page.locator("#msg").press_sequentially("请问您是本人办理吗？")
    page.keyboard.press("Enter")
    citizen.locator(".row.agent", has_text="请问您是本人办理吗？").wait_for(timeout=15_000)
    citizen.keyboard.press("Enter")  # sends "好的"
    page.locator(".row.citizen .text", has_text="好的").wait_for(timeout=15_000)
    assert page.locator("#typing").inner_text() == ""  # the message ends "typing"
    page.context.close()
    citizen.context.close()
