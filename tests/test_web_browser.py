"""The citizen page in a real browser: Debian's chromium driven by Playwright, against a
real ``daoban serve`` process. Set DAOBAN_SCREENSHOTS=1 to refresh docs/screenshots/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import daoban_server, launch_chromium, require_chromium

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "screenshots"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    with daoban_server(tmp_path_factory.mktemp("browser")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser: object, server: str) -> Iterator[object]:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")  # type: ignore[attr-defined]
    pg = ctx.new_page()
    pg.goto(server + "/")
    pg.wait_for_function("window.daoban && window.daoban.state().connected")
    yield pg
    ctx.close()


def shot(page: object, name: str) -> None:
    if os.environ.get("DAOBAN_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name), full_page=False)  # type: ignore[attr-defined]


def ask(page: object, text: str) -> None:
    page.fill("#msg", text)  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]


def bot_rows(page: object) -> int:
    return int(page.locator(".row.bot:not(.intro)").count())  # type: ignore[attr-defined]


def test_question_shows_answer_card(page: object) -> None:
    ask(page, "社保卡丢了咋整")
    title = page.locator("article.card .card-title").first  # type: ignore[attr-defined]
    title.wait_for(timeout=15_000)
    assert title.inner_text() == "社会保障卡挂失补换"
    buttons = page.locator(".row.bot:not(.intro) button").all_inner_texts()  # type: ignore[attr-defined]
    assert {"查看材料", "逐项核对材料", "在哪办", "转人工"} <= {b.strip() for b in buttons}
    shot(page, "01-answer-card.png")


def test_materials_walkthrough_by_clicking(page: object) -> None:
    ask(page, "居住证怎么办")
    page.locator("article.card").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    page.get_by_role("button", name="逐项核对材料").last.click()  # type: ignore[attr-defined]
    # Answer every question with the first offered choice (有 / a situation option).
    for i in range(25):
        # Settle: every sent message acknowledged and its reply frames rendered.
        page.wait_for_function("window.daoban.state().pending === 0")  # type: ignore[attr-defined]
        page.wait_for_timeout(400)  # type: ignore[attr-defined]
        if page.locator("article.card.checklist").count():  # type: ignore[attr-defined]
            break
        last = page.locator(".row.bot:not(.intro)").last  # type: ignore[attr-defined]
        labels = [t.strip() for t in last.locator("button:not([disabled])").all_inner_texts()]
        if not labels:
            continue
        target = "没有" if "没有" in labels and i % 3 == 0 else labels[0]
        last.get_by_role("button", name=target, exact=True).click()
    checklist = page.locator("article.card.checklist")  # type: ignore[attr-defined]
    assert checklist.count() == 1
    text = checklist.inner_text()
    assert "✔" in text or "✘" in text
    checklist.scroll_into_view_if_needed()
    shot(page, "02-checklist.png")


def test_connection_drop_resumes_with_nothing_lost(page: object) -> None:
    ask(page, "驾照到期了怎么换")
    page.locator("article.card").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    page.evaluate("window.daoban.dropConnection()")  # type: ignore[attr-defined]
    page.wait_for_function("!window.daoban.state().connected")  # type: ignore[attr-defined]
    ask(page, "要多久")  # typed while the network is down
    page.wait_for_function(  # type: ignore[attr-defined]
        "window.daoban.state().connected && window.daoban.state().pending === 0",
        timeout=20_000,
    )
    page.get_by_text("多久办好").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    citizen = [t.strip() for t in page.locator(".row.citizen .text").all_inner_texts()]  # type: ignore[attr-defined]
    assert citizen.count("要多久") == 1 and citizen.count("驾照到期了怎么换") == 1


def test_reload_shows_transcript(page: object) -> None:
    ask(page, "孩子出生了要办啥")
    page.locator("article.card").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    before = bot_rows(page)
    cid = page.evaluate("window.daoban.state().cid")  # type: ignore[attr-defined]
    page.reload()  # type: ignore[attr-defined]
    page.wait_for_function("window.daoban.state().connected")  # type: ignore[attr-defined]
    page.locator("article.card").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    assert page.evaluate("window.daoban.state().cid") == cid  # type: ignore[attr-defined]
    page.wait_for_function(f"document.querySelectorAll('.row.bot:not(.intro)').length >= {before}")  # type: ignore[attr-defined]
    assert "孩子出生了要办啥" in page.locator(".row.citizen").first.inner_text()  # type: ignore[attr-defined]


def test_elder_mode_is_larger_and_remembered(page: object) -> None:
    def size() -> float:
        return float(page.evaluate(  # type: ignore[attr-defined]
            "parseFloat(getComputedStyle(document.querySelector('#msg')).fontSize)"
        ))

    normal = size()
    page.click("#elder-toggle")  # type: ignore[attr-defined]
    assert page.evaluate("document.body.classList.contains('elder')")  # type: ignore[attr-defined]
    assert size() >= normal * 1.2 and size() >= 22
    ask(page, "社保卡丢了咋整")
    page.locator("article.card").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    shot(page, "03-elder-mode.png")
    page.reload()  # type: ignore[attr-defined]
    page.wait_for_function("window.daoban.state().connected")  # type: ignore[attr-defined]
    assert page.evaluate("document.body.classList.contains('elder')")  # type: ignore[attr-defined]
    assert page.get_attribute("#elder-toggle", "aria-pressed") == "true"  # type: ignore[attr-defined]


def test_widget_opens_the_chat(browser: object, server: str, tmp_path: Path) -> None:
    ctx = browser.new_context(viewport={"width": 1024, "height": 768})  # type: ignore[attr-defined]
    pg = ctx.new_page()
    pg.set_content(  # any site: one script tag
        f'<html><body><h1>某单位网站</h1><script src="{server}/widget.js"></script></body></html>'
    )
    bubble = pg.get_by_role("button", name="打开导办助手")
    bubble.wait_for(timeout=10_000)
    bubble.click()
    frame = pg.frame_locator("iframe")
    frame.locator("#msg").wait_for(timeout=15_000)
    frame.locator("#msg").fill("社保卡丢了咋整")
    frame.locator("#msg").press("Enter")
    frame.locator("article.card").first.wait_for(timeout=15_000)
    shot(pg, "04-widget.png")
    ctx.close()
