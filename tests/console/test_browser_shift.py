"""The defects an afternoon's shift found (issue #17), checked in one page session of Debian's
chromium: what the agent sees, in the Vietnamese console.

A customer, Nguyễn Văn An, wrote on Telegram and then by mail to a mailbox whose channel has
no outbound relay; an agent merged the two. Agent ``an`` (team support) opens the Telegram
conversation. Skips like tests/console/test_browser.py when chromium or playwright is missing.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.console.conftest import TEAMS
from tests.console.test_browser import chromium, playwright_api, pytestmark, server, sign_in  # noqa: F401  (fixtures and the skip mark)
from tests.helpers import run_outbound
from tests.identity.people import config_extra, feed, mail, tg_text
from tongdai.core.identity import graph as identity
from tongdai.core.pipeline import store
from tongdai.core.workspace import assignment, canned, workflow
from tongdai.core.workspace.access import Principal


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=config_extra() + TEAMS)


def test_a_shift_in_the_vietnamese_console(hub, server, people):  # noqa: F811
    feed(hub, tg_text(9401, "Chào shop, mình hỏi đơn hàng", name="Nguyễn Văn An"))
    feed(hub, mail("an.nguyen@example.vn", "Đơn #55 giao chưa?", dmarc=True))  # more recent
    first, second = store.get_conversation(hub, "1"), store.get_conversation(hub, "2")
    identity.merge(hub, first.customer_id, second.customer_id, "admin", "same person")
    cuong = Principal("cuong", "supervisor", frozenset({"support"}))
    workflow.add_note(hub, cuong, "2", "@an xem đơn #55 nhé", "note-1")
    canned.create(hub, cuong, "chao", "Chào {{customer.first_name}}, shop giúp gì được ạ?")
    expect = playwright_api.expect
    problems: list[str] = []
    with chromium(problems) as page:
        sign_in(page, server, "an")
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        page.locator("#conv-list li.conv[data-id='1']").click()

        # the reply goes out where the conversation is, not where the customer wrote last;
        # the mailbox cannot send at all, and says why, in Vietnamese
        picker = page.locator("#channel-pick")
        expect(picker).to_have_value("tg-test")
        mail_option = picker.locator("option[value=mail]")
        expect(mail_option).to_be_disabled()
        expect(mail_option).to_contain_text("chỉ nhận, không gửi được")
        expect(page.locator("#channel-why")).to_have_text("")
        # the mail conversation: its own channel cannot send, so Telegram, and the reason
        page.locator("#conv-list li.conv[data-id='2']").click()
        expect(page.locator("#channel-why")).to_contain_text(
            "Không trả lời được qua mail: kênh này chỉ nhận, không gửi được")
        expect(picker).to_have_value("tg-test")
        page.locator("#conv-list li.conv[data-id='1']").click()
        expect(page.locator("#channel-why")).to_have_text("")
        # queues by the name of the team that works them
        expect(page.locator("#conv-meta .queue")).to_have_text("Hỗ trợ")

        # @mentions: offered only to colleagues who may see it, picked with the keyboard;
        # bich (billing) is shown greyed with why, and said not mentioned if typed anyway
        page.keyboard.press("n")
        page.keyboard.type("Nhờ @")
        offered = page.locator("#mention-list li[role=option] strong")
        expect(offered).to_have_text(["@admin", "@cuong"])
        expect(page.locator("#mention-list li.blocked")).to_contain_text(
            "@bich không xem được hội thoại này")
        page.keyboard.press("ArrowDown")
        expect(page.locator("#mention-list li.active strong")).to_have_text("@cuong")
        page.keyboard.press("Enter")
        expect(page.locator("#draft")).to_have_value("Nhờ @cuong ")
        page.keyboard.type("xem giúp, cả @bich")
        page.keyboard.press("Escape")
        page.focus("#draft")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#timeline li.msg.note .msg-text")).to_have_text(
            "Nhờ @cuong xem giúp, cả @bich")
        expect(page.locator("#toasts .toast")).to_have_text(
            "Không nhắc được: @bich: không xem được hội thoại này (khác nhóm)")
        page.locator("#toasts .toast").click()
        page.keyboard.press("r")
        # the mentions view: conversations whose notes name me, that note as the preview
        page.check("#f-mentions")
        rows = page.locator("#conv-list li.conv")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-id", "2")
        expect(rows.first.locator(".conv-preview")).to_have_text("@cuong: @an xem đơn #55 nhé")
        page.uncheck("#f-mentions")
        expect(rows).to_have_count(2)

        # "/" in the reply box: the canned replies matching what follows; the customer is
        # greeted by the given name, the last word of a Vietnamese name
        page.focus("#draft")
        page.keyboard.type("/ch")
        expect(page.locator("#mention-list[data-kind=canned] li strong")).to_have_text(
            ["/chao"])
        page.keyboard.press("Tab")
        expect(page.locator("#draft")).to_have_value("Chào An, shop giúp gì được ạ?")
        page.fill("#draft", "")
        page.click("#canned-btn")
        expect(page.locator("#canned-list li strong")).to_have_text(["/chao"])
        page.click("#canned-btn")

        # a reply Telegram cannot take yet (nothing listens at its address): the tick is
        # an icon served with the console, the reason said in Vietnamese
        page.fill("#draft", "Dạ shop kiểm tra ngay ạ")
        page.click("#send")
        out = page.locator("#timeline li.msg.out")
        expect(out).to_have_count(1)
        run_outbound(hub, wait_s=0)
        expect(out.locator(".tick-reason")).to_contain_text(
            "chưa gửi được, thử lại lần 2/6 sau 1 giây")
        expect(out.locator(".tick svg")).to_have_attribute("data-icon", "clock")

        # a colleague takes it first: the refusal, the line and the header in Vietnamese
        assignment.claim(hub, cuong, "1")
        lines = page.locator("#timeline li.msg.system .system-text")
        expect(lines).to_have_text(["cuong đã nhận hội thoại"])
        page.click("#conv-actions [data-action=claim]")
        expect(page.locator("#toasts .toast.error")).to_have_text(
            "Cuong đã nhận hội thoại này rồi.")

        # resolve: the header, the line and the customer panel all say so
        page.keyboard.press("e")
        expect(page.locator("#conv-meta .status")).to_have_text("đã xử lý")
        expect(lines.last).to_have_text("an đã xử lý xong hội thoại")
        panel = page.locator("#customer-body button.link.current")
        expect(panel).to_contain_text("#1 · đã xử lý")
    assert [x for x in problems if "409 (Conflict)" not in x] == []  # (the refused claim)
