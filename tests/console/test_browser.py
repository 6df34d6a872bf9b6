"""The console in a real browser: Debian's chromium, headless, driven by Playwright.

An agent logs in through the form, a customer writes on Telegram and the message appears in
the open page by itself (Server-Sent Events, no reload); the agent opens it, replies, the send
job runs and the fake Telegram Bot API receives the reply. Skips when /usr/bin/chromium is
missing (``apt-get install chromium``; ``.ci/run`` does).
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, write_config
from tests.console.conftest import PASSWORD, TEAMS
from tests.helpers import drain_all, run_outbound, tg_update
from tongdai.core.workspace import users

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
TEXT_IN = "Mình muốn nạp thẻ 100k"
NAME = "Nguyễn Thị Lan 阮氏兰"  # Vietnamese and Chinese in one name
TEXT_OUT = "Dạ shop kiểm tra ngay ạ, anh/chị chờ chút nhé"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"no {CHROMIUM}: install Debian's chromium "
                                       "(apt-get install chromium; .ci/run does)")
playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="the playwright Python package is not installed")


@pytest.fixture
def config_file(tmp_path, tg_fake):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=TEAMS)


@pytest.fixture
def server(app, hub):
    """The web server as `tongdai up` runs it: the ASGI front (webhooks/asgi.py) under
    uvicorn, in a thread: the console's live stream is the fan-out server's."""
    import asyncio
    import socket

    import uvicorn

    from tongdai.webhooks.asgi import create

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(create(hub, heartbeat_s=2), log_level="warning",
                                        lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve(sockets=[sock])),
                              name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


def open_browser(p, problems: list[str]):
    """Headless chromium; page errors and console errors are collected into ``problems``."""
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="vi-VN")
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.set_default_timeout(20_000)
    return browser, page


@contextmanager
def chromium(problems: list[str]):
    """``open_browser``'s page in a running Playwright; the browser closes whatever happens."""
    with playwright_api.sync_playwright() as p:
        browser, page = open_browser(p, problems)
        try:
            yield page
        finally:
            browser.close()


def sign_in(page, server: str, name: str) -> None:
    """The log-in form, filled and sent as a person would (the password of tests/staff.py)."""
    page.goto(server + "/login")
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORD)
    page.click("button[type=submit]")


def test_agent_sees_a_telegram_message_live_and_replies(hub, server, tg_fake):
    started = time.monotonic()
    users.create(hub, users.User(name="lan", role="agent", teams=["billing"],
                                 display_name="Lan Nguyễn"), PASSWORD)
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:

        # log in through the form
        page.goto(server + "/console")
        assert page.url.endswith("/login")
        page.fill("#login-name", "lan")
        page.fill("#login-password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(server + "/console")
        expect(page.locator("body")).to_have_attribute("data-live", "1")  # stream open
        page.evaluate("window.__sameDocument = true")
        expect(page.locator("#conv-list")).to_contain_text("Không có hội thoại nào.")

        # a customer writes on Telegram; the worker ingests it
        update = tg_update(1, 777001, 1, TEXT_IN, date=int(time.time()), first_name=NAME)
        r = httpx.post(server + "/webhooks/tg-test", content=update,
                       headers={"Content-Type": "application/json",
                                "X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert r.status_code == 200
        assert drain_all(hub)["stored"] == 1

        # it appears in the open inbox by itself
        row = page.locator("#conv-list li.conv").first
        expect(row).to_contain_text(TEXT_IN)
        expect(row.locator(".conv-name")).to_have_text(NAME)
        assert page.evaluate("window.__sameDocument") is True  # no reload happened

        # open it: the timeline shows the Vietnamese text exactly
        row.click()
        incoming = page.locator("#timeline li.msg.in .msg-text")
        expect(incoming).to_have_text(TEXT_IN)
        assert incoming.text_content() == TEXT_IN
        expect(page.locator("#channel-pick")).to_have_value("tg-test")
        expect(page.locator("#conv-title")).to_have_text(NAME)
        expect(page.locator("#customer-body .customer-name")).to_have_text(NAME)

        # reply; a double click still sends once (one Idempotency-Key per draft)
        page.fill("#draft", TEXT_OUT)
        page.dblclick("#send")
        outgoing = page.locator("#timeline li.msg.out")
        expect(outgoing).to_have_count(1)
        expect(outgoing.locator(".msg-text")).to_have_text(TEXT_OUT)
        expect(page.locator("#draft")).to_have_value("")

        # the sender delivers it to Telegram; the tick turns to "sent" live
        run_outbound(hub)
        sent = tg_fake.sent("sendMessage")
        assert [(str(s["chat_id"]), s["text"]) for s in sent] == [("777001", TEXT_OUT)]
        expect(outgoing).to_have_attribute("data-status", "sent")
        # an icon served with the console, not an emoji (boxes without an emoji font)
        expect(outgoing.locator(".tick svg")).to_have_attribute("data-icon", "check")
        expect(outgoing.locator(".tick svg")).to_have_attribute("aria-label", "đã gửi")

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "console-reply.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot: {shot}  (browser test took {time.monotonic() - started:.1f} s)")

        # a date range (the agent's days): from tomorrow shows nothing, the request carries
        # since as that day's midnight; cleared, the conversation is back
        tomorrow = page.evaluate("(() => { const d = new Date(); d.setDate(d.getDate() + 1);"
                                 " return [d.toLocaleDateString('en-CA'),"
                                 " new Date(d.toDateString()).getTime()]; })()")
        with page.expect_request(lambda r: "/inbox?" in r.url and "since=" in r.url) as req:
            page.fill("#f-since", tomorrow[0])
        assert f"since={tomorrow[1]}&" in req.value.url + "&"
        expect(page.locator("#conv-list")).to_contain_text("Không có hội thoại nào.")
        page.fill("#f-since", "")
        expect(page.locator("#conv-list li.conv")).to_have_count(1)
    assert problems == []


def test_keyboard_workflow_notes_and_language_with_the_plain_conversation_list(hub, server):
    """Shortcuts (j, c, n, e, ?), a note with an @mention, English; /inbox is made to answer
    404 so the console falls back to GET /conversations (a server without the inbox)."""
    for name, shown in (("lan", "Lan Nguyễn"), ("minh", "Minh Trần")):
        users.create(hub, users.User(name=name, role="agent", teams=["billing"],
                                     display_name=shown), PASSWORD)
    from tests.helpers import post
    from tongdai.webhooks import create_app

    assert post(create_app(hub).test_client(), tg_update(
        5, 777005, 5, "充值100元没到账", date=int(time.time()), first_name=NAME)).status_code == 200
    drain_all(hub)
    expect = playwright_api.expect
    problems: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            # vi-VN as the team's browsers say (Accept-Language picks the page's language)
            page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="vi-VN")
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.set_default_timeout(20_000)
            page.route("**/api/v1/inbox?*", lambda route: route.fulfill(
                status=404, content_type="application/json",
                body='{"error": {"code": "NotFound", "message": '
                     '"The requested URL was not found on the server."}}'))
            sign_in(page, server, "lan")
            expect(page.locator("body")).to_have_attribute("data-live", "1")

            row = page.locator("#conv-list li.conv").first
            expect(row.locator(".conv-preview")).to_have_text("充值100元没到账")
            expect(page.locator("#search")).to_be_hidden()  # no search without /inbox

            page.keyboard.press("j")
            expect(page.locator("#conv-title")).to_have_text(NAME)
            page.keyboard.press("c")
            expect(page.locator("#conv-meta .assignee")).to_have_text("@lan")
            expect(page.locator("#conv-actions [data-action=claim]")).to_be_hidden()

            page.keyboard.press("n")
            expect(page.locator("#draft")).to_be_focused()
            page.keyboard.type("Khách nạp 100 tệ, nhờ @mi")
            page.locator("#mention-list li", has_text="@minh").dispatch_event("mousedown")
            expect(page.locator("#draft")).to_have_value("Khách nạp 100 tệ, nhờ @minh ")
            page.keyboard.type("kiểm tra giúp")
            page.keyboard.press("Control+Enter")
            note = page.locator("#timeline li.msg.note .msg-text")
            expect(note).to_have_text("Khách nạp 100 tệ, nhờ @minh kiểm tra giúp")

            page.keyboard.press("Escape")
            page.keyboard.press("e")
            expect(page.locator("#conv-meta .status")).to_have_text("đã xử lý")
            expect(page.locator("#conv-actions [data-action=reopen]")).to_be_visible()

            page.keyboard.press("?")
            expect(page.locator("#help")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.locator("#help")).to_be_hidden()

            with page.expect_navigation():
                page.select_option("#language", "en")  # saved, then the page reloads
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("body")).to_have_attribute("data-live", "1")
            expect(page.locator("#language")).to_have_value("en")
            expect(page.locator("#logout")).to_have_text("Log out")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "console-english.png"))

            # Chinese: offered because webhooks/static/i18n/zh.json exists, named by itself
            expect(page.locator("#language option[value=zh]")).to_have_text("简体中文")
            expect(page.locator("#language option[value=zh-Hant]")).to_have_text("繁體中文")
            with page.expect_navigation():
                page.select_option("#language", "zh")
            expect(page.locator("html")).to_have_attribute("lang", "zh")
            expect(page.locator("#logout")).to_have_text("退出登录")
            expect(page.locator("#conv-list")).to_have_text("暂无会话。")  # only open ones
            page.select_option("#f-status", "resolved")
            expect(page.locator("#f-status option:checked")).to_have_text("已解决")
            # the preview is the latest message, not the hub's (English) "lan resolved …" line
            expect(page.locator("#conv-list li.conv .conv-preview")).to_have_text(
                "Khách nạp 100 tệ, nhờ @minh kiểm tra giúp")
            page.locator("#conv-list li.conv").first.click()
            expect(page.locator("#conv-meta .status")).to_have_text("已解决")
            expect(page.locator("#conv-actions [data-action=reopen]")).to_have_text("重新打开")
            page.set_viewport_size({"width": 1440, "height": 900})
            page.screenshot(path=str(ARTIFACTS / "console-chinese.png"))

            # Traditional characters (Taiwan usage): zh-Hant.json
            with page.expect_navigation():
                page.select_option("#language", "zh-Hant")
            expect(page.locator("html")).to_have_attribute("lang", "zh-Hant")
            expect(page.locator("#logout")).to_have_text("登出")
            expect(page.locator("#f-status option[value=resolved]")).to_have_text("已解決")
            expect(page.locator("#conv-list")).to_have_text("暫無對話。")
            page.screenshot(path=str(ARTIFACTS / "console-traditional-chinese.png"))
        finally:
            browser.close()
    assert problems == []
    assert users.get(hub, "lan").language == "zh-Hant"
