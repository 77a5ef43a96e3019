"""The agent console in a real browser (Debian chromium + Playwright) against a real
``daoban serve``: sign in, claim, reply, hand back. The citizen is a /ws/chat client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.consoles import PASSWORD, Reader
from tests.servers import add_agent, daoban_server, launch_chromium, require_chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    require_chromium()
    add_agent(tmp_path, "wang", "--name", "王帮办", "--skills", "人社")
    with daoban_server(tmp_path) as base:
        yield base


def sign_in_and_claim(page: Any, server: str) -> None:
    """Signs in as 王帮办 in the console and takes the first waiting conversation."""
    page.goto(server + "/agent")
    page.fill("#username", "wang")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.get_by_role("button", name="接入").first.click(timeout=15_000)
    page.locator(".row.citizen .text", has_text="转人工").wait_for(timeout=15_000)


def test_console_sign_in_claim_reply_hand_back(server: str) -> None:
    from playwright.sync_api import sync_playwright
    from websockets.sync.client import connect

    with sync_playwright() as p, connect(server.replace("http", "ws") + "/ws/chat") as cws:
        citizen = Reader(cws)
        cws.send(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        citizen.until(lambda f: f["type"] == "welcome")
        for i, text in enumerate(["社保卡丢了咋整", "转人工"]):
            cws.send(json.dumps({"type": "message", "client_id": f"c{i}", "text": text}))
            ack = f"c{i}"
            citizen.until(lambda f: f["type"] == "ack" and f["client_id"] == ack)  # noqa: B023
        b = launch_chromium(p)
        try:
            page = b.new_page(locale="zh-CN")
            sign_in_and_claim(page, server)
            page.fill("#msg", "您好，我是王帮办，请问有什么可以帮您？")
            page.keyboard.press("Enter")
            got = citizen.until(lambda f: f.get("from") == "agent")
            assert got[-1]["text"] == "您好，我是王帮办，请问有什么可以帮您？"
            cws.send(json.dumps({"type": "message", "client_id": "c9", "text": "补卡要多久"}))
            page.locator(".row.citizen .text", has_text="补卡要多久").wait_for(timeout=15_000)
            page.get_by_role("button", name="交回机器人").click()
            citizen.until(lambda f: f.get("from") == "bot" and "打个分" in f["text"])
        finally:
            b.close()


def test_console_close_shows_the_citizen_page_a_line(server: str) -> None:
    from playwright.sync_api import sync_playwright

    closed_line = "人工帮办已结束本次服务，您可以继续向导办助手提问。"
    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            citizen = b.new_context(locale="zh-CN").new_page()  # own storage: two people
            citizen.goto(server + "/")
            citizen.wait_for_function("() => window.daoban && window.daoban.state().connected")
            for text in ("社保卡丢了咋整", "转人工"):
                citizen.fill("#msg", text)
                citizen.keyboard.press("Enter")
            citizen.locator(".row.system", has_text="正在为您转接人工帮办").wait_for(timeout=15_000)

            agent = b.new_context(locale="zh-CN").new_page()
            sign_in_and_claim(agent, server)
            citizen.locator(".row.system", has_text="人工帮办已接入").wait_for(timeout=15_000)
            agent.fill("#summary", "已告知补卡流程")
            agent.get_by_role("button", name="结束并保存小结").click()

            citizen.locator(".row.system", has_text=closed_line).wait_for(timeout=15_000)
            citizen.locator(".row.bot", has_text="打个分").wait_for(timeout=15_000)
            lines = [t.strip() for t in citizen.locator(".row.system").all_inner_texts()]
            assert lines == ["正在为您转接人工帮办……", "人工帮办已接入。", closed_line]
            assert "已告知补卡流程" not in citizen.locator("#log").inner_text()
        finally:
            b.close()


class Network:
    """The console's /ws/agent socket through Playwright's WebSocket routing: the test cuts
    it, keeps it down, and drops the server's acks."""

    def __init__(self) -> None:
        self.down = False
        self.drop_acks = False
        self.open: list[tuple[Any, Any]] = []

    def route(self, ws: Any) -> None:
        if self.down:
            ws.close(code=4000, reason="offline")
            return
        upstream = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            if self.drop_acks and isinstance(message, str) and json.loads(message)["type"] == "ack":
                return
            ws.send(message)

        upstream.on_message(from_server)
        self.open.append((ws, upstream))

    def cut(self) -> None:
        for ws, upstream in self.open:
            ws.close(code=4000, reason="offline")
            upstream.close()
        self.open.clear()


def test_console_outbox_keeps_replies_typed_while_disconnected(server: str) -> None:
    import re

    from playwright.sync_api import sync_playwright
    from websockets.sync.client import connect

    ws_base = server.replace("http", "ws")
    with sync_playwright() as p, connect(ws_base + "/ws/chat") as cws:
        citizen = Reader(cws)
        cws.send(json.dumps({"type": "hello", "conversation_id": None, "last_seq": 0}))
        welcome = citizen.until(lambda f: f["type"] == "welcome")[-1]
        for i, text in enumerate(["社保卡丢了咋整", "转人工"]):
            cws.send(json.dumps({"type": "message", "client_id": f"o{i}", "text": text}))
            ack = f"o{i}"
            citizen.until(lambda f: f["type"] == "ack" and f["client_id"] == ack)  # noqa: B023
        b = launch_chromium(p)
        net = Network()
        try:
            page = b.new_page(locale="zh-CN")
            page.route_web_socket(re.compile(r".*/ws/agent$"), net.route)
            sign_in_and_claim(page, server)
            state = "window.daobanAgent.state()"

            def until_page(condition: str) -> None:  # a function: the page's CSP forbids eval
                page.wait_for_function(f"() => {condition}", timeout=20_000)


            # The connection drops; the agent types anyway.
            net.down = True
            net.cut()
            until_page(f"!{state}.connected")
            page.fill("#msg", "断线时写的回复")
            page.keyboard.press("Enter")
            assert page.input_value("#msg") == ""
            page.locator(".row.pending", has_text="断线时写的回复").wait_for()
            assert "未发送" in page.locator(".row.pending .status").inner_text()
            assert "未发送 1 条" in page.locator("#outbox").inner_text()
            page.reload()  # even a reload keeps it
            until_page(f"{state}.pending === 1")
            net.down = False
            # (Playwright relays the routed socket only while the test waits on the page.)
            until_page(f"{state}.connected && {state}.pending === 0")
            assert page.locator("#outbox").is_hidden()
            got = citizen.until(lambda f: f.get("from") == "agent")
            assert got[-1]["text"] == "断线时写的回复"

            # Delivered, but the ack is lost with the connection: re-sent, stored once.
            page.locator("#chats .item").first.click()  # the reload closed the chat view
            net.drop_acks = True
            page.fill("#msg", "确认丢了的回复")
            page.keyboard.press("Enter")
            page.locator(".row.agent:not(.pending) .text", has_text="确认丢了的回复").wait_for()
            page.wait_for_timeout(500)
            assert page.evaluate(f"() => {state}.pending") == 1
            net.drop_acks = False
            net.cut()
            until_page(f"{state}.connected && {state}.pending === 0")
            page.locator(".row.agent .text", has_text="确认丢了的回复").wait_for()
            assert page.locator(".row.pending").count() == 0
        finally:
            b.close()
        with connect(ws_base + "/ws/chat") as again:
            replay = Reader(again)
            again.send(json.dumps({"type": "hello", "conversation_id": welcome["conversation_id"],
                                   "token": welcome.get("token"), "last_seq": 0}))
            again.send(json.dumps({"type": "message", "client_id": "o9", "text": "好的"}))
            frames = replay.until(lambda f: f["type"] == "ack" and f["client_id"] == "o9")
        agent = [f["text"] for f in frames if f.get("from") == "agent"]
        assert agent == ["断线时写的回复", "确认丢了的回复"]
