"""The citizen page in a real browser: Debian's chromium driven by Playwright, against a
real ``daoban serve`` process. Set DAOBAN_SCREENSHOTS=1 to refresh docs/screenshots/."""

from __future__ import annotations

import os
import re
import shutil
import time
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
    wait_js(pg, "window.daoban && window.daoban.state().connected")
    yield pg
    ctx.close()


def wait_js(page: object, expression: str, timeout: int = 30_000) -> None:
    """Until ``expression`` is true in the page. Polls with ``evaluate``: Playwright's own
    ``wait_for_function`` evals its predicate inside the page, which the chat page's
    Content-Security-Policy (script-src 'self') rightly refuses."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(f"Boolean({expression})"):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def shot(page: object, name: str) -> None:
    if os.environ.get("DAOBAN_SCREENSHOTS"):
        page.wait_for_timeout(800)  # type: ignore[attr-defined]  # smooth scrolling settles
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


def walk_to_checklist(page: object, question: str = "居住证怎么办") -> object:
    """Ask, press 逐项核对材料 and answer every question by clicking: the checklist card."""
    ask(page, question)
    page.locator("article.card").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    page.get_by_role("button", name="逐项核对材料").last.click()  # type: ignore[attr-defined]
    # Answer every question with the first offered choice (有 / a situation option).
    for i in range(25):
        # Settle: every sent message acknowledged and its reply frames rendered.
        wait_js(page, "window.daoban.state().pending === 0")
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
    return checklist


def material_names(checklist: object) -> list[str]:
    names = checklist.locator(".mat .name").all_inner_texts()  # type: ignore[attr-defined]
    return [n.strip() for n in names]


def test_materials_walkthrough_by_clicking(page: object) -> None:
    checklist = walk_to_checklist(page)
    text = checklist.inner_text()  # type: ignore[attr-defined]
    assert "✔" in text or "✘" in text
    # every material with how many of what, and its state
    assert material_names(checklist)
    amounts = checklist.locator(".mat .amount").all_inner_texts()  # type: ignore[attr-defined]
    assert len(amounts) == len(material_names(checklist)) and all("份" in a or "填写" in a
                                                                  for a in amounts)
    # the page itself never scrolls away under the fixed header and composer
    assert page.evaluate("document.scrollingElement.scrollTop") == 0  # type: ignore[attr-defined]
    shot(page, "02-checklist.png")


def test_long_card_opens_at_its_title(page: object) -> None:
    page.click("#elder-toggle")  # type: ignore[attr-defined]  # large type: the card is long
    ask(page, "孩子出生了要办啥")
    title = page.locator("article.card .card-title").first  # type: ignore[attr-defined]
    title.wait_for(timeout=15_000)
    wait_js(page, "window.daoban.state().pending === 0")
    page.wait_for_timeout(800)  # type: ignore[attr-defined]  # smooth scrolling settles
    log = page.locator("#log").bounding_box()  # type: ignore[attr-defined]
    card = page.locator("article.card").first.bounding_box()  # type: ignore[attr-defined]
    top = title.bounding_box()
    assert card["height"] > log["height"], "the card must be longer than the screen"
    assert log["y"] - 1 <= top["y"] <= log["y"] + 80, (log, top)
    # the Harbin facts come first; other places' figures are folded away
    facts = page.locator("article.card .facts dt").all_inner_texts()  # type: ignore[attr-defined]
    assert facts[:4] == ["在哪办", "多久办好", "收费", "网上办"]
    folded = page.locator("article.card details.elsewhere")  # type: ignore[attr-defined]
    assert folded.count() == 1 and folded.get_attribute("open") is None
    source = page.locator("article.card .source").first  # type: ignore[attr-defined]
    assert not re.search(r"https?://", source.inner_text())
    shot(page, "06-long-card-elder.png")


def test_printed_checklist_is_the_checklist_alone(page: object) -> None:
    checklist = walk_to_checklist(page, "孩子出生了要办啥")
    names = material_names(checklist)
    members = checklist.locator(".member-name").all_inner_texts()  # type: ignore[attr-defined]
    assert len(members) >= 2  # a 一件事: grouped under each member item
    page.emulate_media(media="print")  # type: ignore[attr-defined]
    for chrome in (".top", "#composer", ".row.intro", "#conn"):
        assert not page.locator(chrome).is_visible(), chrome  # type: ignore[attr-defined]
    assert not checklist.locator("button").first.is_visible()  # type: ignore[attr-defined]
    rows = page.locator(".row:visible")  # type: ignore[attr-defined]
    assert rows.count() == 1  # only the checklist's row
    shown = checklist.locator(".mat .name")  # type: ignore[attr-defined]
    assert shown.count() == len(names) and all(
        shown.nth(i).is_visible() for i in range(shown.count()))
    size = float(page.evaluate(  # type: ignore[attr-defined]
        "parseFloat(getComputedStyle(document.querySelector('.checklist .mat .name')).fontSize)"))
    assert size >= 18  # 14pt and up: readable on paper
    boxes = checklist.locator(".mat .box")  # type: ignore[attr-defined]
    assert boxes.count() == len(names)
    shot(page, "07-checklist-print.png")
    page.emulate_media(media="screen")  # type: ignore[attr-defined]


def test_share_link_opens_read_only_on_another_phone(browser: object, page: object) -> None:
    page.click("#elder-toggle")  # type: ignore[attr-defined]
    checklist = walk_to_checklist(page)
    names = material_names(checklist)
    shot(page, "05-checklist-elder.png")
    checklist.get_by_role("button", name="发到手机").click()  # type: ignore[attr-defined]
    link = checklist.locator("a.share-link")  # type: ignore[attr-defined]
    link.wait_for(timeout=10_000)
    url = link.get_attribute("href")
    assert re.search(r"/c/[A-Za-z0-9_-]{22,}$", url)
    assert checklist.locator("img.share-qr").count() == 1  # type: ignore[attr-defined]
    other = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")  # type: ignore[attr-defined]
    try:
        pg = other.new_page()
        r = pg.goto(url)
        assert r.status == 200
        shown = [n.strip() for n in pg.locator(".mat .name").all_inner_texts()]
        assert shown == names
        assert pg.locator("input, textarea, form, #msg").count() == 0  # read-only
        assert "只读" in pg.inner_text("body")
        shot(pg, "08-shared-checklist.png")
        gone = pg.goto(url.rsplit("/", 1)[0] + "/AAAAAAAAAAAAAAAAAAAAAA")
        assert gone.status == 404
    finally:
        other.close()


def test_connection_drop_resumes_with_nothing_lost(page: object) -> None:
    ask(page, "驾照到期了怎么换")
    page.locator("article.card").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    page.evaluate("window.daoban.dropConnection()")  # type: ignore[attr-defined]
    wait_js(page, "!window.daoban.state().connected")
    ask(page, "要多久")  # typed while the network is down
    wait_js(page,
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
    wait_js(page, "window.daoban.state().connected")
    page.locator("article.card").first.wait_for(timeout=15_000)  # type: ignore[attr-defined]
    assert page.evaluate("window.daoban.state().cid") == cid  # type: ignore[attr-defined]
    wait_js(page, f"document.querySelectorAll('.row.bot:not(.intro)').length >= {before}")
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
    wait_js(page, "window.daoban.state().connected")
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
